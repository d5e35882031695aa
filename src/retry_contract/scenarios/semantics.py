"""SEM-*: what a retry does to the tasks, observed through the detailed execution before and after."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from retry_contract import execution_view
from retry_contract.domain import (
    COMPLETED_TASK_STATUSES,
    RETRYABLE_TASK_STATUSES,
    ExecutionStatus,
    TaskStatus,
)
from retry_contract.exchange import Exchange, Expectation
from retry_contract.provisioning import SHAPES, SIMPLE_TASK
from retry_contract.scenarios.context import ScenarioContext

ACCEPTED = Expectation("STATE-RETRYABLE", frozenset({200}), "execution in a retryable state")
CONCURRENT_REQUESTS = 4


def _expected_targets(before: Mapping[str, Any]) -> set[str]:
    """Tasks that must get exactly one new attempt: not optional, not containers, latest attempt failed."""
    return {
        name
        for name, attempt in execution_view.latest(before).items()
        if attempt.get("status") in RETRYABLE_TASK_STATUSES
        and name not in SHAPES.optional
        and name not in SHAPES.containers
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
    after = ctx.client.detailed(execution_id)
    gained = execution_view.new_attempts(before, after)
    latest_before = execution_view.latest(before)

    expected = _expected_targets(before)
    got = {name for name, count in gained.items() if name not in SHAPES.containers}
    problems = [f"{name}: {gained[name]} new attempts" for name in sorted(expected) if gained[name] != 1]
    problems += [f"{name} was not expected to run again" for name in sorted(got - expected)]
    not_running = [
        n
        for n in sorted(expected)
        if execution_view.latest(after).get(n, {}).get("status") != TaskStatus.IN_PROGRESS
    ]
    problems += [f"{name}: new attempt is not IN_PROGRESS" for name in not_running]
    ctx.observe("SEM-TARGETED", "; ".join(problems) or None, exchange)

    optional = [f"{n} ({latest_before[n].get('status')})" for n in sorted(SHAPES.optional) if gained[n]]
    ctx.observe(
        "SEM-OPTIONAL", f"optional tasks retried: {', '.join(optional)}" if optional else None, exchange
    )

    completed = [
        n
        for n, attempt in latest_before.items()
        if attempt.get("status") in COMPLETED_TASK_STATUSES and gained[n]
    ]
    ctx.observe(
        "SEM-COMPLETED",
        f"completed tasks run again: {', '.join(sorted(completed))}" if completed else None,
        exchange,
    )

    nested: list[str] = []
    if gained[SHAPES.container]:
        nested.append(f"container {SHAPES.container!r} got {gained[SHAPES.container]} new attempts")
    if gained[SHAPES.nested_canceled] != 1:
        nested.append(
            f"failed nested task {SHAPES.nested_canceled!r} got {gained[SHAPES.nested_canceled]} new attempts"
        )
    if gained[SHAPES.nested_completed]:
        nested.append(f"completed nested task {SHAPES.nested_completed!r} ran again")
    ctx.observe("SEM-NESTED", "; ".join(nested) or None, exchange)

    _check_limit(ctx, execution_id, before, after, exchange)


def _check_limit(
    ctx: ScenarioContext,
    execution_id: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    exchange: Exchange,
) -> None:
    """The task at its limit gets one attempt; when that fails, the execution fails with no more."""
    name = SHAPES.at_limit
    used = execution_view.attempt_counts(before)[name]
    gained = execution_view.attempt_counts(after)[name] - used
    if gained != 1:
        ctx.observe(
            "SEM-LIMIT", f"{name!r} at its limit ({used} attempts used) got {gained} new attempts", exchange
        )
        return
    running = execution_view.in_progress(after, name)
    if not running:
        ctx.observe("SEM-LIMIT", f"the new attempt of {name!r} is not IN_PROGRESS", exchange)
        return
    ctx.client.update_task(str(running[-1]["id"]), TaskStatus.FAILED)
    final = ctx.client.detailed(execution_id)
    problems = []
    if final.get("status") != ExecutionStatus.FAILED:
        problems.append(f"after the extra attempt failed the execution is {final.get('status')}, not FAILED")
    extra = execution_view.attempt_counts(final)[name] - used - 1
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
    gained = execution_view.new_attempts(before, ctx.client.detailed(execution_id))
    problems = []
    if len(succeeded) != 1:
        problems.append(
            f"{len(succeeded)} of {CONCURRENT_REQUESTS} simultaneous retries succeeded, expected 1"
        )
    if gained[SIMPLE_TASK] != 1:
        problems.append(f"the failed task got {gained[SIMPLE_TASK]} new attempts, expected 1")
    ctx.observe("SEM-CONCURRENT", "; ".join(problems) or None, succeeded[0] if succeeded else exchanges[0])


SCENARIOS = (task_shapes, concurrent_retries)
