"""Defects of the task semantics of a retry: which tasks get a new attempt (targets, optional tasks,
containers, nested tasks, tasks at their retries limit), whether the attempts start, and simultaneous
retries that all succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from cdf_workflows_mock.cdf import (
    COMPLETED_TASK_STATUSES,
    RETRYABLE_TASK_STATUSES,
    ExecutionStatus,
    TaskStatus,
)
from cdf_workflows_mock.defects.base import Defect, Patch, SteppedStore
from cdf_workflows_mock.defects.probing import (
    Prober,
    attempts,
    cancel_then_retry_gains,
    fail_the_limit_task_again,
    gained_on_retry,
    gains_differ,
    latest,
    retry_twice,
    simultaneous_retries,
    timed_out_execution,
)
from cdf_workflows_mock.engine import RetryPlan, TaskEngine
from cdf_workflows_mock.model import Attempt, Execution, JSONObject, TaskDef
from cdf_workflows_mock.render import execution_json


class _StartsNothing(TaskEngine):
    """The retry marks the execution RUNNING but never hands its tasks to the scheduler."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        execution.status = ExecutionStatus.RUNNING
        execution.end_time = None
        execution.reason = None


class _SecondRetryStartsNothing(TaskEngine):
    """The retry queues its task starts under a deduplication key made of the execution id alone: the
    first retry's starts run, every later retry's are dropped as duplicates of them, yet the record is
    updated as usual (RUNNING, containers reopened). The engine moves an execution on only when one of
    its tasks reports, and none will: the execution stays RUNNING with nothing running until cancelled."""

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        # The deduplication keys the task queue has seen: executions retried once already.
        self._queued_keys: set[str] = set()
        # Executions whose latest retry's starts were dropped: no task event will wake them.
        self._stalled: set[str] = set()

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        if execution.id not in self._queued_keys:
            self._queued_keys.add(execution.id)
            super().apply_retry(execution, plan)
            return
        super().apply_retry(execution, RetryPlan(containers=plan.containers))
        self._stalled.add(execution.id)

    def settle(self, execution: Execution) -> None:
        if execution.id in self._stalled and execution.status is ExecutionStatus.RUNNING:
            return
        super().settle(execution)


class _TerminatedRetryStartsNothing(TaskEngine):
    """The retry of a TERMINATED execution takes the cancel path's bookkeeping for done: the record is
    reopened (RUNNING) and answered as such, but its cancelled tasks are never handed to the scheduler,
    and no task event will ever move it on."""

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        # Executions reopened after a cancellation with nothing started: nothing will wake them.
        self._stalled: set[str] = set()

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        if execution.status is not ExecutionStatus.TERMINATED:
            super().apply_retry(execution, plan)
            return
        super().apply_retry(execution, RetryPlan(containers=plan.containers))
        self._stalled.add(execution.id)

    def settle(self, execution: Execution) -> None:
        if execution.id in self._stalled and execution.status is ExecutionStatus.RUNNING:
            return
        super().settle(execution)


class _TimedOutStartedTwice(TaskEngine):
    """A task that TIMED_OUT is restarted twice by the retry: once as its target, and once more as the
    automatic attempt its timeout had queued and the retry does not drop."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        timed_out = [
            (task, scope)
            for task, scope in plan.tasks
            if _latest_status(execution, task) is TaskStatus.TIMED_OUT
        ]
        super().apply_retry(execution, plan)
        for task, scope in timed_out:
            self._start_attempt(execution, task, scope)


def _latest_status(execution: Execution, task: TaskDef) -> TaskStatus | None:
    latest = execution.latest(task.external_id)
    return None if latest is None else latest.status


class _TargetWalk(TaskEngine):
    """The faithful choice of retry targets, written with the knobs that the defects below turn."""

    retried_statuses: ClassVar[frozenset[TaskStatus]] = RETRYABLE_TASK_STATUSES
    retries_optional: ClassVar[bool] = False
    enters_containers: ClassVar[bool] = True

    def select_retry_targets(self, execution: Execution) -> RetryPlan:
        plan = RetryPlan()
        self._walk(execution, None, plan)
        return plan

    def _walk(self, execution: Execution, scope: str | None, plan: RetryPlan) -> None:
        for task in execution.scope_tasks(scope):
            latest = execution.latest(task.external_id)
            if latest is None or (task.is_optional and not self.retries_optional):
                continue
            if execution.is_detached(task):
                # The recorded shape: a container that COMPLETED on spawning; its nested tasks may be targets.
                self._walk(execution, task.external_id, plan)
                continue
            if latest.status not in self.retried_statuses:
                continue
            if task.is_container:
                if self.enters_containers:
                    plan.containers.append(latest)
                    self._walk(execution, task.external_id, plan)
            elif self.is_target(execution, task, latest):
                plan.tasks.append((task, scope))

    def is_target(self, execution: Execution, task: TaskDef, latest: Attempt) -> bool:
        return True


class _IgnoresCanceled(_TargetWalk):
    """CANCELED is missing from the statuses the retry restarts."""

    retried_statuses = RETRYABLE_TASK_STATUSES - {TaskStatus.CANCELED}


class _IgnoresTimedOut(_TargetWalk):
    """TIMED_OUT is missing from the statuses the retry restarts: a timeout is taken for an answer."""

    retried_statuses = RETRYABLE_TASK_STATUSES - {TaskStatus.TIMED_OUT}


class _RetriesOptional(_TargetWalk):
    """The retry does not look at `onFailure`."""

    retries_optional = True


class _RerunsCompleted(_TargetWalk):
    """The retry restarts every task that has run, whatever its outcome."""

    retried_statuses = RETRYABLE_TASK_STATUSES | COMPLETED_TASK_STATUSES


class _SkipsNested(_TargetWalk):
    """The retry looks only at the top level: containers are neither reopened nor searched."""

    enters_containers = False


class _SkipsTasksAtLimit(_TargetWalk):
    """The retry applies the automatic-retry rule: a task that failed after all its attempts stays failed."""

    def is_target(self, execution: Execution, task: TaskDef, latest: Attempt) -> bool:
        return not (
            latest.status is TaskStatus.FAILED
            and execution.attempt_count(task.external_id) >= 1 + task.retries
        )


class _CanceledForgottenAfterRetry(_TargetWalk):
    """A cancel of an execution that was retried before is recorded as the end of that retry, and the
    retry after it restarts the failed tasks but takes the cancelled ones for superseded: once an
    execution was retried, cancelled and retried again, its cancelled tasks stay cancelled. A first
    retry, a retry of a cancel of an execution never retried, and repeated retries without a cancel
    between them all behave."""

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        # Executions retried at least once, and those of them cancelled since.
        self._retried: set[str] = set()
        self._cancelled_after_retry: set[str] = set()

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        self._retried.add(execution.id)
        super().apply_retry(execution, plan)

    def cancel(self, execution: Execution, reason: str | None) -> None:
        if execution.id in self._retried:
            self._cancelled_after_retry.add(execution.id)
        super().cancel(execution, reason)

    def is_target(self, execution: Execution, task: TaskDef, latest: Attempt) -> bool:
        return not (execution.id in self._cancelled_after_retry and latest.status is TaskStatus.CANCELED)


class _FirstTargetOnly(TaskEngine):
    """The retry restarts the first failed task it finds and stops looking."""

    def select_retry_targets(self, execution: Execution) -> RetryPlan:
        plan = super().select_retry_targets(execution)
        kept = plan.tasks[:1]
        ancestors: set[str] = set()
        for task, _ in kept:
            parent = execution.parents.get(task.external_id)
            while parent is not None:
                ancestors.add(parent)
                parent = execution.parents.get(parent)
        return RetryPlan(tasks=kept, containers=[c for c in plan.containers if c.external_id in ancestors])


class _RetriesContainers(TaskEngine):
    """A container is restarted like any task, with a new attempt, besides its failed nested tasks."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        for container in plan.containers:
            self._start_attempt(execution, container.task, container.parent)
        super().apply_retry(execution, RetryPlan(tasks=plan.tasks))


class _ResetsLimit(TaskEngine):
    """The retry resets each restarted task's attempt counter, so it gets its automatic retries again."""

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        # (execution id, task externalId) -> the attempts the task had when a retry restarted it.
        self._counted_from: dict[tuple[str, str], int] = {}

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        for task, _ in plan.tasks:
            self._counted_from[execution.id, task.external_id] = execution.attempt_count(task.external_id)
        super().apply_retry(execution, plan)

    def _step_ended(self, execution: Execution, task: TaskDef, attempt: Attempt, scope: str | None) -> bool:
        since = self._counted_from.get((execution.id, task.external_id), 0)
        used = execution.attempt_count(task.external_id) - since
        if attempt.status is TaskStatus.FAILED and not task.is_container and used < 1 + task.retries:
            self._start_attempt(execution, task, scope)
            return True
        return super()._step_ended(execution, task, attempt, scope)


class _RacyRetry(SteppedStore):
    """Check and write are two transactions with a slow write in between, and nothing holds the
    execution meanwhile: simultaneous retries all pass the check, and each starts its attempts."""

    # How long the write takes to reach the database.
    write_latency_seconds: ClassVar[float] = 0.05

    def retry(self, project: str, execution_id: str, nonce: object) -> JSONObject:
        with self._lock:
            execution = self.retry_lookup(project, execution_id)
            session = self.retry_session(project, nonce)
            self.engine.check_retryable(execution)
            plan = self.engine.select_retry_targets(execution)
        time.sleep(self.write_latency_seconds)
        with self._lock:
            before = execution_json(execution)
            self.engine.apply_retry(execution, plan)
            self.retry_consume(session)
            answer = self.retry_answer(execution, before)
            self._settle(self._state(project), execution)
            return answer


# --- probes: each defect's change, shown on the mock through its API (`probing`) -----------


def _probe_retry_starts_nothing(p: Prober) -> None:
    _, after = gains_differ(p, **{p.shapes.canceled: 0, p.shapes.nested_canceled: 0, p.shapes.at_limit: 0})
    assert after["status"] == "FAILED"


def _probe_second_retry_starts_nothing(p: Prober) -> None:
    execution_id, first, second = retry_twice(p)
    assert len(attempts(first, "step")) == 2 and latest(first, "step")["status"] == "IN_PROGRESS"
    assert len(attempts(second, "step")) == 2 and latest(second, "step")["status"] != "IN_PROGRESS"
    p.clock.advance(3600)
    assert p.api.detail(execution_id)["status"] == "RUNNING"
    assert p.api.cancel(execution_id).json()["status"] == "TERMINATED"


def _probe_terminated_retry_starts_nothing(p: Prober) -> None:
    execution_id = p.terminated()
    gained, after = gained_on_retry(p, execution_id)
    assert gained == 0 and after["status"] == "RUNNING"
    p.clock.advance(3600)
    assert p.api.detail(execution_id)["status"] == "RUNNING"
    assert gained_on_retry(p, p.failed())[0] == 1


def _probe_retry_ignores_canceled(p: Prober) -> None:
    gains_differ(p, **{p.shapes.canceled: 0, p.shapes.nested_canceled: 0})


def _probe_retry_ignores_timed_out(p: Prober) -> None:
    assert gained_on_retry(p, timed_out_execution(p))[0] == 0
    assert gained_on_retry(p, p.terminated())[0] == 1
    gains_differ(p)


def _probe_timed_out_started_twice(p: Prober) -> None:
    assert gained_on_retry(p, timed_out_execution(p))[0] == 2
    assert gained_on_retry(p, p.terminated())[0] == 1
    gains_differ(p)


def _probe_retry_first_target_only(p: Prober) -> None:
    gains_differ(p, **{p.shapes.nested_canceled: 0, p.shapes.at_limit: 0})


def _probe_optional_retried(p: Prober) -> None:
    gains_differ(p, **{p.shapes.optional_canceled: 1})


def _probe_completed_rerun(p: Prober) -> None:
    gains_differ(p, **{p.shapes.completed: 1, p.shapes.nested_completed: 1})


def _probe_container_retried(p: Prober) -> None:
    _, after = gains_differ(p, **{p.shapes.container: 1})
    assert latest(after, p.shapes.container)["status"] == "IN_PROGRESS"


def _probe_nested_skipped(p: Prober) -> None:
    gains_differ(p, **{p.shapes.nested_canceled: 0})


def _probe_limit_reset(p: Prober) -> None:
    final, extra = fail_the_limit_task_again(p)
    assert extra == 1 and final["status"] == "RUNNING"
    assert latest(final, p.shapes.at_limit)["status"] == "IN_PROGRESS"


def _probe_canceled_forgotten_after_retry(p: Prober) -> None:
    # A cancel and a retry of an execution never retried behave.
    assert cancel_then_retry_gains(p, p.running()) == 1
    # Retried once, then cancelled and retried again: the cancelled task is not restarted.
    execution_id = p.failed()
    assert p.api.retry(execution_id).status_code == 200
    assert cancel_then_retry_gains(p, execution_id) == 0


def _probe_limit_not_retried(p: Prober) -> None:
    gains_differ(p, **{p.shapes.at_limit: 0})


def _probe_concurrent_double_retry(p: Prober) -> None:
    statuses, gained = simultaneous_retries(p)
    successes = statuses.count(200)
    assert successes > 1 and gained == successes, (statuses, gained)


# Every defect of this family, in the catalogue's order.
DEFECTS: tuple[Defect, ...] = (
    Defect(
        name="retry-starts-nothing",
        breaks=("SEM-TARGETED", "SEM-NESTED", "SEM-LIMIT", "SEM-CONCURRENT"),
        description="The retry answers RUNNING but starts no task, so the execution fails again at once",
        patch=Patch(engine=_StartsNothing),
        probe=_probe_retry_starts_nothing,
    ),
    Defect(
        name="second-retry-starts-nothing",
        breaks=("SEM-TARGETED", "SEM-LIMIT", "SEM-NESTED"),
        description=(
            "Only an execution's first retry starts tasks; later ones leave it RUNNING with nothing running"
        ),
        patch=Patch(engine=_SecondRetryStartsNothing),
        probe=_probe_second_retry_starts_nothing,
    ),
    Defect(
        name="terminated-retry-starts-nothing",
        breaks=("SEM-TARGETED",),
        description="A TERMINATED execution's retry answers 200 RUNNING but starts no task; it stays RUNNING",
        patch=Patch(engine=_TerminatedRetryStartsNothing),
        probe=_probe_terminated_retry_starts_nothing,
    ),
    Defect(
        name="retry-ignores-canceled",
        breaks=("SEM-TARGETED", "SEM-NESTED"),
        description="Tasks whose latest attempt was CANCELED are not retried",
        patch=Patch(engine=_IgnoresCanceled),
        probe=_probe_retry_ignores_canceled,
    ),
    Defect(
        name="retry-ignores-timed-out",
        breaks=("SEM-TARGETED",),
        description="Tasks whose latest attempt TIMED_OUT are not retried",
        patch=Patch(engine=_IgnoresTimedOut),
        probe=_probe_retry_ignores_timed_out,
    ),
    Defect(
        name="timed-out-started-twice",
        breaks=("SEM-TARGETED",),
        description=(
            "A task that TIMED_OUT gets two new attempts from one retry (its queued automatic one is kept)"
        ),
        patch=Patch(engine=_TimedOutStartedTwice),
        probe=_probe_timed_out_started_twice,
    ),
    Defect(
        name="retry-first-target-only",
        breaks=("SEM-TARGETED", "SEM-NESTED", "SEM-LIMIT"),
        description="Only the first failed task gets a new attempt",
        patch=Patch(engine=_FirstTargetOnly),
        probe=_probe_retry_first_target_only,
    ),
    Defect(
        name="optional-retried",
        breaks=("SEM-OPTIONAL", "SEM-TARGETED"),
        description="Optional tasks (onFailure: skipTask) that failed or were canceled are retried",
        patch=Patch(engine=_RetriesOptional),
        probe=_probe_optional_retried,
    ),
    Defect(
        name="completed-rerun",
        breaks=("SEM-COMPLETED", "SEM-TARGETED", "SEM-NESTED"),
        description="Every task that ran gets a new attempt, the completed ones included",
        patch=Patch(engine=_RerunsCompleted),
        probe=_probe_completed_rerun,
    ),
    Defect(
        name="container-retried",
        breaks=("SEM-NESTED",),
        description=(
            "A subworkflow or dynamic container gets a new attempt of its own, besides its failed tasks"
        ),
        patch=Patch(engine=_RetriesContainers),
        probe=_probe_container_retried,
    ),
    Defect(
        name="nested-skipped",
        breaks=("SEM-NESTED", "SEM-TARGETED"),
        description=(
            "Failed tasks inside subworkflows and dynamic tasks are not retried; the container stays as is"
        ),
        patch=Patch(engine=_SkipsNested),
        probe=_probe_nested_skipped,
    ),
    Defect(
        name="limit-reset",
        breaks=("SEM-LIMIT",),
        description="The retry resets attempt counters: a failed new attempt is retried automatically again",
        patch=Patch(engine=_ResetsLimit),
        probe=_probe_limit_reset,
    ),
    Defect(
        name="canceled-forgotten-after-retry",
        breaks=("SEM-TARGETED",),
        description=(
            "After a retry, a cancel, then another retry: the failed tasks are restarted, the "
            "cancelled ones are not"
        ),
        patch=Patch(engine=_CanceledForgottenAfterRetry),
        probe=_probe_canceled_forgotten_after_retry,
    ),
    Defect(
        name="limit-not-retried",
        breaks=("SEM-LIMIT", "SEM-TARGETED"),
        description="A task that failed after using all its attempts is not retried",
        patch=Patch(engine=_SkipsTasksAtLimit),
        probe=_probe_limit_not_retried,
    ),
    Defect(
        name="concurrent-double-retry",
        breaks=("SEM-CONCURRENT",),
        description=(
            "Simultaneous retries all succeed (check and slow write are not atomic) and each adds attempts"
        ),
        patch=Patch(store=_RacyRetry),
        probe=_probe_concurrent_double_retry,
    ),
)
