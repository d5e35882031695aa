"""BODY-NONCE and NONCE-REUSE: a retry needs a session; without a valid one nothing may run."""

from __future__ import annotations

import secrets

from retry_contract.exchange import Expectation
from retry_contract.scenarios.context import ScenarioContext

REJECTED_STATUSES = frozenset({400, 401, 403})


def never_issued_nonce(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.failed_execution()
    forged = secrets.token_urlsafe(16)
    ctx.retry(
        execution_id,
        expect=Expectation("BODY-NONCE", REJECTED_STATUSES),
        origin="BODY-NONCE well-formed nonce never issued",
        nonce=forged,
    )


def reused_nonce(ctx: ScenarioContext) -> None:
    first, second = ctx.provisioner.failed_execution(), ctx.provisioner.failed_execution()
    nonce = ctx.client.create_nonce()
    used = ctx.retry(
        first,
        expect=Expectation("STATE-RETRYABLE", frozenset({200})),
        origin="NONCE-REUSE first use of a nonce",
        nonce=nonce,
    )
    if not ctx.retried(used):
        ctx.judge.ledger.not_covered_because("NONCE-REUSE", "the first use of a fresh nonce did not succeed")
        return
    ctx.retry(
        second,
        expect=Expectation("NONCE-REUSE", REJECTED_STATUSES),
        origin="NONCE-REUSE second use of the same nonce",
        nonce=nonce,
    )


SCENARIOS = (never_issued_nonce, reused_nonce)
