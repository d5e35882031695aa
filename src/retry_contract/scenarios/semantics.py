"""SEM-*: what a retry does to the tasks, observed through the detailed execution before and after."""

from __future__ import annotations

import threading

from retry_contract import execution_view
from retry_contract.domain import (
    COMPLETED_TASK_STATUSES,
    RETRYABLE_EXECUTION_STATUSES,
    RETRYABLE_TASK_STATUSES,
    TASK_RETRIES_DEFAULT,
    ExecutionStatus,
    TaskStatus,
)
from retry_contract.exchange import Exchange, Expectation
from retry_contract.execution_view import Detailed
from retry_contract.polling import poll
from retry_contract.provisioning import SHAPES, SIMPLE_TASK
from retry_contract.scenarios.context import ScenarioContext

ACCEPTED = Expectation("STATE-RETRYABLE", frozenset({200}), "execution in a retryable state")
CONCURRENT_REQUESTS = 4
# How long a retry may take to show its new attempts on a server that starts them asynchronously.
SETTLE_SECONDS = 5.0


def settled_after_retry(ctx: ScenarioContext, execution_id: str, before: Detailed) -> Detailed:
    """The execution once the retry has visibly taken effect: every task that must run again has a
    new attempt, or the execution has ended again. A server may start attempts asynchronously."""
    failed = {
        n for n, a in execution_view.latest(before).items() if a.get("status") in RETRYABLE_TASK_STATUSES
    }
    expected = failed - execution_view.optional_tasks(before) - execution_view.container_tasks(before)

    def took_effect(after: Detailed) -> bool:
        gained = execution_view.new_attempts(before, after)
        return after.get("status") != ExecutionStatus.RUNNING or all(gained[name] for name in expected)

    return poll(lambda: ctx.client.detailed(execution_id), took_effect, timeout=SETTLE_SECONDS)


def judge_retry_effects(ctx: ScenarioContext, before: Detailed, after: Detailed, exchange: Exchange) -> None:
    """SEM-TARGETED, -OPTIONAL, -COMPLETED, -NESTED and the first half of SEM-LIMIT, for any execution:
    the roles of its tasks come from its own workflowDefinition, not from what the suite planned."""
    optional, containers = execution_view.optional_tasks(before), execution_view.container_tasks(before)
    latest_before, latest_after = execution_view.latest(before), execution_view.latest(after)
    gained = execution_view.new_attempts(before, after)
    failed = {
        name for name, attempt in latest_before.items() if attempt.get("status") in RETRYABLE_TASK_STATUSES
    }

    expected = failed - optional - containers
    problems = [
        f"{name}: {gained[name]} new attempts, expected 1" for name in sorted(expected) if gained[name] != 1
    ]
    problems += [f"{name} ran again unexpectedly" for name in sorted(set(gained) - expected - containers)]
    problems += [
        f"{name}: new attempt is {latest_after.get(name, {}).get('status')}, not IN_PROGRESS"
        for name in sorted(expected)
        if gained[name] and latest_after.get(name, {}).get("status") != TaskStatus.IN_PROGRESS
    ]
    ctx.observe("SEM-TARGETED", "; ".join(problems) or None, exchange)

    if optional:
        retried = [f"{n} ({latest_before[n].get('status')})" for n in sorted(optional) if gained[n]]
        ctx.observe(
            "SEM-OPTIONAL", f"optional tasks retried: {', '.join(retried)}" if retried else None, exchange
        )
    completed = sorted(
        n
        for n, attempt in latest_before.items()
        if attempt.get("status") in COMPLETED_TASK_STATUSES and gained[n]
    )
    ctx.observe(
        "SEM-COMPLETED", f"completed tasks ran again: {', '.join(completed)}" if completed else None, exchange
    )
    if containers:
        nested = [f"container {n!r} got {gained[n]} new attempts" for n in sorted(containers) if gained[n]]
        nested += [
            f"failed nested task {n!r} got {gained[n]} new attempts"
            for n, attempt in latest_before.items()
            if attempt.get("parentTaskExternalId") in containers and n in expected and gained[n] != 1
        ]
        ctx.observe("SEM-NESTED", "; ".join(nested) or None, exchange)
    at_limit = _at_limit(before) & expected
    if at_limit:
        over = [
            f"{n!r} at its retries limit got {gained[n]} new attempts, expected 1"
            for n in sorted(at_limit)
            if gained[n] != 1
        ]
        ctx.observe("SEM-LIMIT", "; ".join(over) or None, exchange)


def _at_limit(detailed: Detailed) -> set[str]:
    """Tasks that have used every attempt their `retries` allows."""
    counts = execution_view.attempt_counts(detailed)
    return {
        name
        for name, task in execution_view.task_definitions(detailed).items()
        if counts[name] >= 1 + int(task.get("retries", TASK_RETRIES_DEFAULT))
    }


def task_shapes(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.shapes_execution()
    before = ctx.client.detailed(execution_id)
    exchange = ctx.retry(
        execution_id, expect=ACCEPTED, origin="SEM-* retry of an execution of every task shape", before=before
    )
    if exchange.status != 200:
        for requirement in ("SEM-TARGETED", "SEM-OPTIONAL", "SEM-COMPLETED", "SEM-NESTED", "SEM-LIMIT"):
            ctx.judge.ledger.not_covered_because(requirement, f"the retry answered {exchange.status}")
        return
    after = settled_after_retry(ctx, execution_id, before)
    judge_retry_effects(ctx, before, after, exchange)
    _check_limit(ctx, execution_id, after, exchange)


def named_executions(ctx: ScenarioContext) -> None:
    """Executions the user named explicitly (`--retry-execution`): retried once each, judged generically."""
    for execution_id in ctx.named_executions:
        before = ctx.client.detailed(execution_id)
        if before.get("status") not in RETRYABLE_EXECUTION_STATUSES:
            ctx.judge.ledger.notes.append(
                f"named execution {execution_id} is {before.get('status')}: not retried"
            )
            continue
        exchange = ctx.retry(
            execution_id,
            expect=ACCEPTED,
            origin=f"retry of the named execution {execution_id}",
            before=before,
        )
        if exchange.status == 200:
            judge_retry_effects(ctx, before, settled_after_retry(ctx, execution_id, before), exchange)


def _check_limit(ctx: ScenarioContext, execution_id: str, after: Detailed, exchange: Exchange) -> None:
    """Second half of SEM-LIMIT, on the suite's own fixture: when the extra attempt of the task at
    its limit fails, the execution fails again with no further automatic attempt."""
    name = SHAPES.at_limit
    running = execution_view.in_progress(after, name)
    if not running:
        return  # the first half already failed SEM-LIMIT or SEM-TARGETED for this task
    used = execution_view.attempt_counts(after)[name]
    ctx.client.update_task(str(running[-1]["id"]), TaskStatus.FAILED)
    final = poll(
        lambda: ctx.client.detailed(execution_id),
        lambda d: d.get("status") != ExecutionStatus.RUNNING,
        timeout=SETTLE_SECONDS,
    )
    problems = []
    if final.get("status") != ExecutionStatus.FAILED:
        problems.append(f"after the extra attempt failed the execution is {final.get('status')}, not FAILED")
    extra = execution_view.attempt_counts(final)[name] - used
    if extra:
        problems.append(
            f"{name!r} got {extra} automatic attempts after the extra one failed (counter was reset)"
        )
    ctx.observe("SEM-LIMIT", "; ".join(problems) or None, exchange)


def concurrent_retries(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.failed_execution()
    before = ctx.client.detailed(execution_id)
    nonces = [ctx.client.create_nonce() for _ in range(CONCURRENT_REQUESTS)]
    start = threading.Barrier(CONCURRENT_REQUESTS)
    exchanges: list[Exchange] = []
    lock = threading.Lock()

    def send(nonce: str) -> None:
        start.wait()
        exchange = ctx.retry(
            execution_id, expect=None, origin="SEM-CONCURRENT simultaneous retries", nonce=nonce
        )
        with lock:
            exchanges.append(exchange)

    threads = [threading.Thread(target=send, args=(nonce,)) for nonce in nonces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    succeeded = [e for e in exchanges if e.status == 200]
    gained = execution_view.new_attempts(before, settled_after_retry(ctx, execution_id, before))
    problems = []
    if len(succeeded) != 1:
        problems.append(
            f"{len(succeeded)} of {CONCURRENT_REQUESTS} simultaneous retries succeeded, expected 1"
        )
    if gained[SIMPLE_TASK] != 1:
        problems.append(f"the failed task got {gained[SIMPLE_TASK]} new attempts, expected 1")
    ctx.observe("SEM-CONCURRENT", "; ".join(problems) or None, succeeded[0] if succeeded else exchanges[0])


SCENARIOS = (task_shapes, concurrent_retries, named_executions)
