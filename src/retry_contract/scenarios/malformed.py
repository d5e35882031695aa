"""PATH-UUID, BODY-SHAPE and METHOD: malformed requests aimed at a retryable execution, so that only
the malformation, not the state, can explain a refusal."""

from __future__ import annotations

import json

from retry_contract.exchange import Expectation
from retry_contract.scenarios.context import ScenarioContext

BAD_ID = Expectation("PATH-UUID", frozenset({400, 404}))
BAD_BODY = Expectation("BODY-SHAPE", frozenset({400}))
OTHER_METHOD = Expectation("METHOD", frozenset({404, 405}))


def malformed_ids(ctx: ScenarioContext) -> None:
    real = ctx.provisioner.failed_execution()
    variants = {
        "35 characters": real[:-1],
        "37 characters": real + "0",
        "36 characters, not hex": "z" * 8 + real[8:],
        "32 hex digits without dashes": real.replace("-", "") + "abcd",
        "braced": "{" + real[1:-1] + "}",
        "plain word": "not-a-uuid",
        "SQL-ish": "1' OR '1'='1",
        "unicode": "ü" * 36,
    }
    for label, execution_id in variants.items():
        ctx.retry(execution_id, expect=BAD_ID, origin=f"PATH-UUID {label}")


def malformed_bodies(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.failed_execution()
    json_type = {"content-type": "application/json"}
    raw_variants: dict[str, bytes] = {
        "missing body": b"",
        "not JSON": b"authentication=nonce",
        "truncated JSON": b'{"authentication": {"nonce": "abc"',
    }
    json_variants: dict[str, object] = {
        "JSON array": [{"authentication": {"nonce": "x"}}],
        "JSON string": "authentication",
        "JSON null": None,
        "empty object": {},
        "authentication is a string": {"authentication": "nonce"},
        "authentication is null": {"authentication": None},
        "authentication is an array": {"authentication": ["nonce"]},
        "nonce missing": {"authentication": {}},
        "nonce empty": {"authentication": {"nonce": ""}},
        "nonce is a number": {"authentication": {"nonce": 12345}},
        "nonce is null": {"authentication": {"nonce": None}},
        "nonce is an object": {"authentication": {"nonce": {"value": "x"}}},
    }
    for label, content in raw_variants.items():
        ctx.retry(
            execution_id, expect=BAD_BODY, origin=f"BODY-SHAPE {label}", content=content, headers=json_type
        )
    for label, body in json_variants.items():
        ctx.retry(
            execution_id,
            expect=BAD_BODY,
            origin=f"BODY-SHAPE {label}",
            content=json.dumps(body).encode(),
            headers=json_type,
        )


def other_methods(ctx: ScenarioContext) -> None:
    execution_id = ctx.provisioner.failed_execution()
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        ctx.retry(execution_id, expect=OTHER_METHOD, origin=f"METHOD {method}", method=method)
    # HEAD's status is open (a server may answer it as it would GET), but it never retries. OPTIONS is
    # open altogether (CORS preflights get 2xx), so it is not sent.
    # Without a body, as real clients send HEAD: one with a body is not framed alike by every proxy.
    ctx.retry(execution_id, expect=None, origin="METHOD HEAD (status open)", method="HEAD", content=b"")


SCENARIOS = (malformed_ids, malformed_bodies, other_methods)
