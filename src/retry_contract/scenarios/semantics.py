"""SEM-*: what a retry does to the tasks, observed through the detailed execution before and after."""

from __future__ import annotations

import threading

from retry_contract import execution_view
from retry_contract.checks.retry_effects import limit_after_failure, retry_effects, took_effect
from retry_contract.domain import RETRYABLE_EXECUTION_STATUSES, ExecutionStatus, TaskStatus
from retry_contract.exchange import Exchange, Expectation, brief
from retry_contract.execution_view import Detailed
from retry_contract.polling import RETRY_SETTLE_SECONDS
from retry_contract.provisioning import SHAPES, SIMPLE_TASK
from retry_contract.scenarios.context import ScenarioContext

ACCEPTED = Expectation("STATE-RETRYABLE", frozenset({200}), "execution in a retryable state")
CONCURRENT_REQUESTS = 4
# The seed: "each retry request permits these tasks a single additional retry", so one retry of an
# execution proves little; the shapes execution is retried this many times in a row.
REPEATED_RETRIES = 3
SEM_REQUIREMENTS = ("SEM-TARGETED", "SEM-OPTIONAL", "SEM-COMPLETED", "SEM-NESTED", "SEM-LIMIT")


def settled_after_retry(ctx: ScenarioContext, execution_id: str, before: Detailed) -> Detailed:
    """The execution once the retry has visibly taken effect (bounded wait)."""
    return ctx.client.await_execution(
        execution_id,
        lambda after: took_effect(before, after),
        timeout=RETRY_SETTLE_SECONDS,
    )


def judge_retry_effects(
    ctx: ScenarioContext, execution_id: str, before: Detailed, exchange: Exchange
) -> Detailed:
    """Read the execution once the retry took effect and judge SEM-*; the reading, for what follows."""
    after = settled_after_retry(ctx, execution_id, before)
    ctx.judge.ledger.record(retry_effects(before, after, exchange))
    return after


def effects_of(
    ctx: ScenarioContext, execution_id: str, before: Detailed, exchange: Exchange
) -> Detailed | None:
    """The execution once the retry took effect, what it did judged (SEM-*); None when it did not.
    A retry re-sent after a lost answer may have taken effect although refused: its effects were
    judged with it, from the reading that showed them."""
    if exchange.first_attempt_took_effect:
        return exchange.after
    if exchange.status != 200:
        return None
    return judge_retry_effects(ctx, execution_id, before, exchange)


def task_shapes(ctx: ScenarioContext) -> None:
    """Retry the execution of every task shape several times in a row; between two retries the task
    at its limit fails its extra attempt, which fails the execution again (SEM-LIMIT)."""
    execution_id = ctx.provisioner.shapes_execution()
    before: Detailed = ctx.client.detailed(execution_id)
    for attempt in range(1, REPEATED_RETRIES + 1):
        exchange = ctx.retry(
            execution_id,
            expect=ACCEPTED,
            origin=f"SEM-* retry {attempt} of {REPEATED_RETRIES} of an execution of every task shape",
            before=before,
        )
        after = effects_of(ctx, execution_id, before, exchange)
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
        before = final


def _fail_extra_attempt(ctx: ScenarioContext, execution_id: str, after: Detailed) -> Detailed | None:
    """End the new attempt of the task at its limit as FAILED; the execution once it has reacted."""
    name = SHAPES.at_limit
    if not any(a.get("externalId") == name for a in execution_view.pending(after)):
        return None
    ready = ctx.client.await_execution(
        execution_id,
        lambda d: bool(execution_view.in_progress(d, name)),
        timeout=RETRY_SETTLE_SECONDS,
    )
    running = execution_view.in_progress(ready, name)
    if not running:
        return None
    ctx.client.update_task(str(running[-1]["id"]), TaskStatus.FAILED)
    return ctx.client.await_execution(
        execution_id,
        lambda d: d.get("status") != ExecutionStatus.RUNNING,
        timeout=RETRY_SETTLE_SECONDS,
    )


def named_executions(ctx: ScenarioContext) -> None:
    """Executions the user named explicitly (`--retry-execution`): retried once each, judged generically."""
    for execution_id in ctx.named_executions:
        before = ctx.client.detailed(execution_id)
        if execution_view.text_at(before, "status") not in RETRYABLE_EXECUTION_STATUSES:
            ctx.judge.ledger.notes.append(
                f"named execution {execution_id} is {brief(before.get('status'))}: not retried"
            )
            continue
        exchange = ctx.retry(
            execution_id,
            expect=ACCEPTED,
            origin=f"retry of the named execution {execution_id}",
            before=before,
        )
        effects_of(ctx, execution_id, before, exchange)


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
    # Refused after being re-sent, a request whose first attempt was lost may be the one that succeeded.
    maybe = [e for e in exchanges if e.maybe_replayed and e.status != 200]
    gained = execution_view.new_attempts(before, settled_after_retry(ctx, execution_id, before))
    problems = []
    if not len(succeeded) <= 1 <= len(succeeded) + len(maybe):
        problems.append(
            f"{len(succeeded)} of {CONCURRENT_REQUESTS} simultaneous retries succeeded, expected 1"
        )
    if gained[SIMPLE_TASK] != 1:
        problems.append(f"the failed task got {gained[SIMPLE_TASK]} new attempts, expected 1")
    ctx.observe("SEM-CONCURRENT", "; ".join(problems) or None, succeeded[0] if succeeded else exchanges[0])


SCENARIOS = (task_shapes, concurrent_retries, named_executions)
