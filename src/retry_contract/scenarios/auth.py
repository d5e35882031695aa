"""AUTH-401 and AUTH-403: the auth matrix, each attempt on a retryable execution with a valid nonce,
so that a server which skips the check would visibly retry it."""

from __future__ import annotations

import secrets

from retry_contract.exchange import Credential, Expectation
from retry_contract.scenarios.context import ScenarioContext

UNAUTHORIZED = Expectation("AUTH-401", frozenset({401}))
FORBIDDEN = Expectation("AUTH-403", frozenset({403}))


def unauthenticated_requests(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.failed_execution()
    unknown_token = "unknown-" + secrets.token_urlsafe(24)
    ctx.client.name_credential(unknown_token, Credential.UNKNOWN_TOKEN)
    variants = [
        ("no Authorization header", {}, None),
        ("Basic scheme", {"authorization": "Basic dXNlcjpwYXNzd29yZA=="}, None),
        ("Bearer without token", {"authorization": "Bearer"}, None),
        ("unknown token", {}, unknown_token),
    ]
    for label, headers, token in variants:
        ctx.retry(execution_id, expect=UNAUTHORIZED, origin=f"AUTH-401 {label}", headers=headers, token=token)


def readonly_token(ctx: ScenarioContext) -> None:
    if ctx.readonly_token is None:
        ctx.judge.ledger.not_covered_because(
            "AUTH-403", "read-only case needs CDF_READONLY_TOKEN (other-project case judged below)"
        )
        return
    ctx.client.name_credential(ctx.readonly_token, Credential.READONLY)
    execution_id = ctx.provisioner.failed_execution()
    ctx.retry(execution_id, expect=FORBIDDEN, origin="AUTH-403 read-only token", token=ctx.readonly_token)


def other_project(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.failed_execution()
    other = f"retry-contract-other-{secrets.token_hex(4)}"
    ctx.retry(
        execution_id, expect=FORBIDDEN, origin="AUTH-403 token not valid for the project", project=other
    )


SCENARIOS = (unauthenticated_requests, readonly_token, other_project)
