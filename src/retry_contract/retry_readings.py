"""The readings every retry is judged with, taken alike whoever sent it (scenarios, the fuzzer's pooled
retries, replay): the execution read just before the retry, and after it, once a successful retry has
taken effect (SEM-*, `checks.retry_effects.retry_effects`) or at once after a refusal (nothing may
have changed, `checks.retry_effects.unchanged_after_refusal`). The judges then judge both alike.
"""

from __future__ import annotations

from retry_contract.cdf_client import CdfClient
from retry_contract.checks.retry_effects import must_leave_unchanged, retried, took_effect
from retry_contract.exchange import Exchange
from retry_contract.execution_view import Detailed


def settled_after_retry(client: CdfClient, execution_id: str, before: Detailed) -> Detailed:
    """The execution once the retry has visibly taken effect; the last reading when it does not within
    the wait's bound (and the run's wait budget, `CdfClient.await_effect`)."""
    return client.await_effect(execution_id, lambda reading: took_effect(before, reading))


def read_after(client: CdfClient, exchange: Exchange, execution_id: str | None = None) -> None:
    """Give a retry that has its `before` reading its `after` one: once a success took effect, at once
    after a refusal (or any answer to another method). Other answers (a fault, a 5xx) say nothing of
    what happened: none. `execution_id`: the execution `before` is a reading of, when the path names
    it by another id (one made from its id, as a replay may send)."""
    execution_id, before = execution_id or exchange.execution_id, exchange.before
    if before is None or execution_id is None or exchange.after is not None or exchange.fault is not None:
        return
    if retried(exchange):
        exchange.after = settled_after_retry(client, execution_id, before)
    elif must_leave_unchanged(exchange):
        exchange.after = client.detailed(execution_id)
