"""SEM-*: what a retry does to the tasks, observed through the detailed execution before and after."""

from __future__ import annotations

import threading

from retry_contract import execution_view
from retry_contract.checks.retry_effects import limit_after_failure
from retry_contract.domain import RETRYABLE_EXECUTION_STATUSES, ExecutionStatus, TaskStatus
from retry_contract.exchange import Exchange, Expectation, brief
from retry_contract.execution_view import Detailed
from retry_contract.provisioning import SHAPES, SIMPLE_TASK
from retry_contract.retry_readings import settled_after_retry
from retry_contract.scenarios.context import ScenarioContext

ACCEPTED = Expectation("STATE-RETRYABLE", frozenset({200}), "execution in a retryable state")
CONCURRENT_REQUESTS = 4
# The seed: "each retry request permits these tasks a single additional retry", so one retry of an
# execution proves little; the shapes execution is retried this many times in a row.
REPEATED_RETRIES = 3
SEM_REQUIREMENTS = ("SEM-TARGETED", "SEM-OPTIONAL", "SEM-COMPLETED", "SEM-NESTED", "SEM-LIMIT")


def effects_of(exchange: Exchange) -> Detailed | None:
    """The execution once the retry took effect (its SEM-* judged with it); None when it did not."""
    return dict(exchange.after) if ScenarioContext.retried(exchange) and exchange.after is not None else None


def task_shapes(ctx: ScenarioContext) -> None:
    """Retry the execution of every task shape several times in a row; between two retries the task
    at its limit fails its extra attempt, which fails the execution again (SEM-LIMIT)."""
    execution_id = ctx.provisioner.shapes_execution()
    for attempt in range(1, REPEATED_RETRIES + 1):
        exchange = ctx.retry(
            execution_id,
            expect=ACCEPTED,
            origin=f"SEM-* retry {attempt} of {REPEATED_RETRIES} of an execution of every task shape",
        )
        after = effects_of(exchange)
        if after is None:
            if attempt == 1:
                for requirement in SEM_REQUIREMENTS:
                    ctx.judge.ledger.not_covered_because(requirement, f"the retry answered {exchange.status}")
            return
        final = _fail_extra_attempt(ctx, execution_id, after)
        if final is None:
            return  # the first half already failed SEM-LIMIT or SEM-TARGETED for this task
        ctx.judge.ledger.record(limit_after_failure(after, final, SHAPES.at_limit, exchange))
        if execution_view.text_at(final, "status") not in RETRYABLE_EXECUTION_STATUSES:
            return


def _fail_extra_attempt(ctx: ScenarioContext, execution_id: str, after: Detailed) -> Detailed | None:
    """End the new attempt of the task at its limit as FAILED; the execution once it has reacted."""
    name = SHAPES.at_limit
    if not any(a.get("externalId") == name for a in execution_view.pending(after)):
        return None
    ready = ctx.client.await_effect(execution_id, lambda d: bool(execution_view.in_progress(d, name)))
    running = execution_view.in_progress(ready, name)
    if not running:
        return None
    ctx.client.update_task(str(running[-1]["id"]), TaskStatus.FAILED)
    return ctx.client.await_effect(execution_id, lambda d: d.get("status") != ExecutionStatus.RUNNING)


def named_executions(ctx: ScenarioContext) -> None:
    """Executions the user named explicitly (`--retry-execution`): retried once each, judged generically."""
    for execution_id in ctx.named_executions:
        before = ctx.client.detailed(execution_id)
        if execution_view.text_at(before, "status") not in RETRYABLE_EXECUTION_STATUSES:
            ctx.judge.ledger.notes.append(
                f"named execution {execution_id} is {brief(before.get('status'))}: not retried"
            )
            continue
        ctx.retry(execution_id, expect=ACCEPTED, origin=f"retry of the named execution {execution_id}")


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
            execution_id,
            expect=None,
            origin="SEM-CONCURRENT simultaneous retries",
            nonce=nonce,
            at_once_after=before,
        )
        with lock:
            exchanges.append(exchange)

    threads = [threading.Thread(target=send, args=(nonce,)) for nonce in nonces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    succeeded = [e for e in exchanges if e.status == 200]
    # Refused after being re-sent, a request whose first attempt was lost may be the one that succeeded.
    maybe = [e for e in exchanges if e.maybe_replayed and e.status != 200]
    gained = execution_view.new_attempts(before, settled_after_retry(ctx.client, execution_id, before))
    problems = []
    if not len(succeeded) <= 1 <= len(succeeded) + len(maybe):
        problems.append(
            f"{len(succeeded)} of {CONCURRENT_REQUESTS} simultaneous retries succeeded, expected 1"
        )
    if gained[SIMPLE_TASK] != 1:
        problems.append(f"the failed task got {gained[SIMPLE_TASK]} new attempts, expected 1")
    ctx.observe("SEM-CONCURRENT", "; ".join(problems) or None, succeeded[0] if succeeded else exchanges[0])


SCENARIOS = (task_shapes, concurrent_retries, named_executions)
