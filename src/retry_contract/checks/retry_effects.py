"""What a retry did to its execution, from two readings of it: SEM-* for a successful retry, nothing
at all for a refused one.

Pure judgement: the drivers (scenarios, fuzzing, replay: `retry_readings`) read the detailed execution
before the retry and after it (once a successful one has taken effect, `took_effect`), and hand both
here. The role of every task comes from the
execution's own definition and attempts, never from what the suite planned, so the same judge serves
the suite's fixtures, pooled executions of fuzzed retries and executions a user names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from retry_contract import execution_view as view
from retry_contract.domain import (
    COMPLETED_TASK_STATUSES,
    PENDING_TASK_STATUSES,
    RETRYABLE_TASK_STATUSES,
    ExecutionStatus,
    TaskStatus,
)
from retry_contract.exchange import Exchange, brief
from retry_contract.execution_view import Attempt, Detailed
from retry_contract.verdict import Observation

JUDGE = "retry effects"
# What the first new attempt of a task that waits for a task update may read when first seen; a
# task with a short timeout may already have timed out.
FIRST_SEEN_STATUSES = PENDING_TASK_STATUSES | {TaskStatus.TIMED_OUT}


@dataclass(frozen=True)
class TaskRoles:
    """What each task of an execution was, just before a retry."""

    failed: frozenset[str]
    optional: frozenset[str]
    containers: frozenset[str]
    completed: frozenset[str]
    # Nested in an optional container: whether such tasks are retried, the seed leaves open.
    open: frozenset[str]
    nested: frozenset[str]
    started: frozenset[str]

    @classmethod
    def of(cls, before: Detailed) -> TaskRoles:
        latest = view.latest(before)
        optional, containers = view.optional_tasks(before), view.container_tasks(before)
        return cls(
            failed=frozenset(
                n for n, a in latest.items() if view.text_at(a, "status") in RETRYABLE_TASK_STATUSES
            ),
            optional=frozenset(optional),
            containers=frozenset(containers),
            completed=frozenset(
                n for n, a in latest.items() if view.text_at(a, "status") in COMPLETED_TASK_STATUSES
            ),
            open=frozenset(view.inside(before, optional & containers)),
            nested=frozenset(view.parents(before)),
            started=frozenset(latest),
        )

    @property
    def targets(self) -> frozenset[str]:
        """The tasks the retry must give exactly one new attempt (SEM-TARGETED)."""
        return self.failed - self.optional - self.containers - self.open


def took_effect(before: Detailed, after: Detailed) -> bool:
    """Whether a reading after the retry shows its effect: every target has a new attempt, or the
    execution has ended again. A server may start the attempts asynchronously."""
    gained = view.new_attempts(before, after)
    return after.get("status") != ExecutionStatus.RUNNING or all(
        gained[name] for name in TaskRoles.of(before).targets
    )


def retried(exchange: Exchange) -> bool:
    """Whether a request retried its execution: a POST answered 200, or re-sent and found to have taken
    effect (the answer to its second attempt may be a refusal)."""
    return exchange.method == "POST" and (exchange.status == 200 or exchange.first_attempt_took_effect)


def must_leave_unchanged(exchange: Exchange) -> bool:
    """Whether a request must have left its execution as it was: a refused retry (a 4xx, with no sign
    that an earlier attempt of it took effect), and any other method, whatever it answered (METHOD).
    A 5xx is a failure of its own (ROBUST), after which the contract says nothing of the execution."""
    status = exchange.status
    if status is None or exchange.first_attempt_took_effect:
        return False
    return exchange.method != "POST" or 400 <= status < 500


def unchanged_requirement(exchange: Exchange) -> str:
    """The requirement a refused retry that changed its execution breaks: that of its expected refusal,
    METHOD for another method (HEAD's status is open, but it never retries), and STATE-RETRYABLE for
    a refused retry that was due to succeed (a retryable execution is retried, or left as it was)."""
    expected = exchange.expectation
    if exchange.method != "POST":
        return "METHOD"
    if expected is not None and any(status >= 400 for status in expected.statuses):
        return expected.requirement
    return "STATE-RETRYABLE"


def unchanged_after_refusal(before: Detailed, after: Detailed, exchange: Exchange) -> list[Observation]:
    """A refused retry leaves its execution exactly as it was: status and attempts."""
    return [_observe(unchanged_requirement(exchange), view.changes(before, after), exchange)]


def _observe(requirement: str, problems: list[str], exchange: Exchange) -> Observation:
    return Observation(requirement, not problems, "; ".join(problems), exchange, JUDGE)


def retry_effects(before: Detailed, after: Detailed, exchange: Exchange) -> list[Observation]:
    """SEM-TARGETED, -OPTIONAL, -COMPLETED, -NESTED and the first half of SEM-LIMIT."""
    roles = TaskRoles.of(before)
    added = view.added_attempts(before, after)
    observations = [_observe("SEM-TARGETED", _targeted(roles, before, after, added), exchange)]
    retried_optional = sorted(n for n in roles.optional & roles.started if added.get(n))
    if roles.optional & roles.started:
        observations.append(
            _observe(
                "SEM-OPTIONAL",
                [f"optional task {brief(n)} got a new attempt" for n in retried_optional],
                exchange,
            )
        )
    if roles.completed:
        again = sorted(n for n in roles.completed if added.get(n))
        observations.append(
            _observe("SEM-COMPLETED", [f"completed task {brief(n)} ran again" for n in again], exchange)
        )
    failed_nested = roles.targets & roles.nested
    if failed_nested or roles.failed & roles.containers:
        # A container that had not started starts when its dependencies end, as any task (the retry
        # resumes the execution): its first attempt is no new one.
        problems = [
            f"container {brief(n)} got a new attempt"
            for n in sorted(roles.containers & roles.started)
            if added.get(n)
        ]
        problems += [
            f"failed nested task {brief(n)} got {len(added.get(n, []))} new attempts, expected 1"
            for n in sorted(failed_nested)
            if len(added.get(n, [])) != 1
        ]
        observations.append(_observe("SEM-NESTED", problems, exchange))
    at_limit = _at_limit(before) & roles.targets
    if at_limit:
        problems = [
            f"{brief(n)} at its retries limit got {len(added.get(n, []))} new attempts, expected exactly 1"
            for n in sorted(at_limit)
            if len(added.get(n, [])) != 1
        ]
        observations.append(_observe("SEM-LIMIT", problems, exchange))
    return observations


def _targeted(
    roles: TaskRoles, before: Detailed, after: Detailed, added: Mapping[str, list[Attempt]]
) -> list[str]:
    problems: list[str] = []
    latest_before = view.latest(before)
    first_seen = FIRST_SEEN_STATUSES
    if after.get("status") != ExecutionStatus.RUNNING:
        # The execution ended again (another task failed): its running attempts were cancelled.
        first_seen |= {TaskStatus.CANCELED}
    for name in sorted(roles.targets):
        new = added.get(name, [])
        was = brief(latest_before[name].get("status"))
        if not new:
            problems.append(f"{brief(name)} (latest attempt {was}) got no new attempt")
        elif len(new) > 1 and not _automatic_retries_explain(before, name, new):
            problems.append(f"{brief(name)} (latest attempt {was}) got {len(new)} new attempts, expected 1")
        elif view.is_async_complete(before, name) and view.text_at(new[0], "status") not in first_seen:
            problems.append(
                f"{brief(name)}: its new attempt is {brief(new[0].get('status'))} when first seen, not "
                "SCHEDULED or IN_PROGRESS (nobody reported on it)"
            )
    judged_elsewhere = roles.targets | roles.containers | roles.completed | roles.optional | roles.open
    for name in sorted(set(added) - judged_elsewhere):
        if name in roles.started:
            status = brief(latest_before[name].get("status"))
            problems.append(f"{brief(name)} ran again although its latest attempt was {status}")
        else:
            waiting = _unfinished_dependencies(after, name)
            if waiting:
                problems.append(f"{brief(name)} started before its dependencies {brief(waiting)} completed")
    return problems


def _automatic_retries_explain(before: Detailed, name: str, new: list[Attempt]) -> bool:
    """More than one new attempt is right when each but the last FAILED and the task still had
    automatic attempts left (a task that is not at its limit retries on its own)."""
    used = view.attempt_counts(before)[name] + 1
    automatic_left = max(0, 1 + view.retries_allowed(before, name) - used)
    return len(new) - 1 <= automatic_left and all(a.get("status") == TaskStatus.FAILED for a in new[:-1])


def _unfinished_dependencies(after: Detailed, name: str) -> list[str]:
    latest = view.latest(after)
    optional = view.optional_tasks(after)

    def done(dependency: str) -> bool:
        status = view.text_at(latest.get(dependency, {}), "status")
        return status in COMPLETED_TASK_STATUSES or (
            dependency in optional and status is not None and status not in PENDING_TASK_STATUSES
        )

    return [d for d in view.dependencies(after, name) if not done(d)]


def _at_limit(detailed: Detailed) -> set[str]:
    """Tasks that have used every attempt their `retries` allows."""
    counts = view.attempt_counts(detailed)
    return {
        name
        for name in view.task_definitions(detailed)
        if counts[name] >= 1 + view.retries_allowed(detailed, name)
    }


def limit_after_failure(
    after_retry: Detailed, final: Detailed, task: str, exchange: Exchange
) -> list[Observation]:
    """Second half of SEM-LIMIT: once the one extra attempt of a task at its limit failed, the execution
    fails again and the task gets no automatic attempt (its counter was not reset)."""
    problems = []
    if final.get("status") != ExecutionStatus.FAILED:
        problems.append(
            f"after the extra attempt of {task!r} failed the execution is {brief(final.get('status'))}"
        )
    extra = view.attempt_counts(final)[task] - view.attempt_counts(after_retry)[task]
    if extra:
        problems.append(f"{task!r} got {extra} automatic attempts after its extra one failed (counter reset)")
    return [_observe("SEM-LIMIT", problems, exchange)]
