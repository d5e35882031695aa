"""Each per-exchange judge fails a crafted bad exchange and passes a good one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from retry_contract.checks import Judge
from retry_contract.checks.http import HTTP_CHECKS
from retry_contract.checks.success import SUCCESS_CHECKS
from retry_contract.exchange import Exchange, Expectation
from retry_contract.verdict import Ledger, Observation

BASE = "http://127.0.0.1:9"
EXECUTION_ID = "059edaa4-a17a-4102-910e-2c3591500cce"
URL = f"{BASE}/api/v1/projects/p/workflows/executions/{EXECUTION_ID}/retry"
GOOD_BODY: dict[str, Any] = {
    "id": EXECUTION_ID,
    "workflowExternalId": "wf",
    "version": "1",
    "status": "RUNNING",
    "engineExecutionId": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "createdTime": 1730204346000,
    "startTime": 1730204346001,
    "metadata": {"k": "v"},
}
BEFORE = {**GOOD_BODY, "status": "FAILED", "endTime": 1730204347000, "executedTasks": []}
JSON_HEADERS = {"content-type": "application/json", "x-request-id": "req-1"}


def exchange(
    status: int | None = 200,
    body: Any = GOOD_BODY,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    method: str = "POST",
    expect: Expectation | None = None,
    before: dict[str, Any] | None = BEFORE,
) -> Exchange:
    return Exchange(
        method=method,
        url=URL,
        request_headers={"content-type": "application/json", "authorization": "Bearer t"},
        request_body=b'{"authentication": {"nonce": "n"}}',
        status=status,
        response_headers=JSON_HEADERS if headers is None else headers,
        response_body=raw if raw is not None else json.dumps(body).encode(),
        execution_id=EXECUTION_ID,
        expectation=expect,
        before=before,
        transport_error=None if status is not None else "RemoteProtocolError: dropped",
    )


def custom(ex: Exchange) -> list[Observation]:
    return [o for check in (*HTTP_CHECKS, *SUCCESS_CHECKS) for o in check(ex)]


def failed(observations: list[Observation]) -> set[str]:
    return {o.requirement for o in observations if not o.passed}


def judged(observations: list[Observation]) -> set[str]:
    return {o.requirement for o in observations}


def test_a_good_success_passes_every_custom_check() -> None:
    observations = custom(exchange())
    assert not failed(observations)
    assert {
        "RESP-200",
        "RESP-ID",
        "RESP-STATUS",
        "RESP-UNCHANGED",
        "STATE-RETRYABLE",
        "HDR-REQUEST-ID",
    } <= judged(observations)


@pytest.mark.parametrize(
    ("requirement", "bad"),
    [
        ("RESP-ID", exchange(body={**GOOD_BODY, "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"})),
        ("RESP-STATUS", exchange(body={**GOOD_BODY, "status": "FAILED"})),
        ("RESP-UNCHANGED", exchange(body={**GOOD_BODY, "metadata": {}})),
        ("RESP-UNCHANGED", exchange(body={**GOOD_BODY, "createdTime": 1730204346999})),
        ("STATE-RETRYABLE", exchange(before={**BEFORE, "status": "COMPLETED"})),
        ("RESP-200", exchange(status=201)),
        ("RESP-200", exchange(headers={"content-type": "text/plain", "x-request-id": "r"}, raw=b"ok")),
        ("HDR-REQUEST-ID", exchange(headers={"content-type": "application/json"})),
        ("ROBUST", exchange(status=500, body={"error": {"code": 500, "message": "boom"}})),
        ("ROBUST", exchange(status=None, raw=b"")),
        ("ROBUST", exchange(status=400, raw=b"Bad Request", headers={"content-type": "text/plain"})),
        ("ERR-ENVELOPE", exchange(status=404, body={"message": "not found"})),
        ("ERR-ENVELOPE", exchange(status=404, body={"error": {"code": "404", "message": "nf"}})),
        ("ERR-ENVELOPE", exchange(status=404, body={"error": {"code": 404, "message": "nf", "missing": {}}})),
        (
            "ERR-ENVELOPE",
            exchange(
                status=404,
                raw=b'{"error": {"code": 404, "message": "nf"}}',
                headers={"content-type": "text/html", "x-request-id": "r"},
            ),
        ),
        ("ERR-CODE", exchange(status=404, body={"error": {"code": 400, "message": "nf"}})),
        (
            "AUTH-401",
            exchange(
                status=403,
                body={"error": {"code": 403, "message": "x"}},
                expect=Expectation("AUTH-401", frozenset({401})),
            ),
        ),
        (
            "METHOD",
            exchange(
                status=405,
                body={"error": {"code": 405, "message": "x"}},
                method="GET",
                expect=Expectation("METHOD", frozenset({404, 405})),
            ),
        ),
    ],
)
def test_a_bad_exchange_fails_its_requirement(requirement: str, bad: Exchange) -> None:
    assert requirement in failed(custom(bad))


def test_expected_error_with_envelope_passes() -> None:
    good = exchange(
        status=404,
        body={"error": {"code": 404, "message": "nf"}},
        expect=Expectation("STATE-404", frozenset({404})),
    )
    observations = custom(good)
    assert not failed(observations)
    assert {"STATE-404", "ERR-ENVELOPE", "ERR-CODE", "ROBUST"} <= judged(observations)


def test_state_404_tolerates_the_bulk_api_style() -> None:
    bulk = exchange(
        status=400,
        body={"error": {"code": 400, "message": "m", "missing": [{"id": EXECUTION_ID}]}},
        expect=Expectation("STATE-404", frozenset({404})),
    )
    assert not failed(custom(bulk))
    plain_400 = exchange(
        status=400,
        body={"error": {"code": 400, "message": "m"}},
        expect=Expectation("STATE-404", frozenset({404})),
    )
    assert "STATE-404" in failed(custom(plain_400))


def test_a_405_must_allow_post() -> None:
    without_allow = exchange(
        status=405,
        body={"error": {"code": 405, "message": "x"}},
        method="GET",
        headers={"content-type": "application/json", "x-request-id": "r"},
        expect=Expectation("METHOD", frozenset({404, 405})),
    )
    assert "METHOD" in failed(custom(without_allow))
    with_allow = exchange(
        status=405,
        body={"error": {"code": 405, "message": "x"}},
        method="GET",
        headers={"content-type": "application/json", "x-request-id": "r", "allow": "POST"},
        expect=Expectation("METHOD", frozenset({404, 405})),
    )
    assert not failed(custom(with_allow))


@pytest.mark.parametrize(
    ("requirement", "body"),
    [
        ("RESP-ID", {**GOOD_BODY, "id": "059edaa4-a17a-1102-910e-2c3591500cce"}),
        ("RESP-ENGINE-ID", {**GOOD_BODY, "engineExecutionId": "3c90c3cc-0d44-4b50-8888-8dd25736052"}),
        ("RESP-ENGINE-ID", {k: v for k, v in GOOD_BODY.items() if k != "engineExecutionId"}),
        ("RESP-XID", {**GOOD_BODY, "workflowExternalId": " wf"}),
        ("RESP-XID", {**GOOD_BODY, "workflowExternalId": "x" * 256}),
        ("RESP-VERSION", {**GOOD_BODY, "version": "1\x00"}),
        ("RESP-STATUS", {**GOOD_BODY, "status": "running"}),
        ("RESP-TIME", {**GOOD_BODY, "createdTime": "1730204346000"}),
        ("RESP-TIME", {**GOOD_BODY, "startTime": 1730204346000.5}),
        ("RESP-TIME", {**GOOD_BODY, "endTime": 2**63}),
        ("RESP-TIME", {**GOOD_BODY, "createdTime": -1}),
        ("RESP-METADATA", {**GOOD_BODY, "metadata": {f"k{i}": "v" for i in range(11)}}),
        ("RESP-METADATA", {**GOOD_BODY, "metadata": {"k" * 33: "v"}}),
        ("RESP-METADATA", {**GOOD_BODY, "metadata": {"k": "v" * 256}}),
        ("RESP-METADATA", {**GOOD_BODY, "metadata": {"k": 1}}),
        ("RESP-REASON", {**GOOD_BODY, "reasonForIncompletion": 5}),
    ],
)
def test_openapi_core_traces_schema_errors_to_their_requirement(
    requirement: str, body: dict[str, Any]
) -> None:
    judge = Judge(BASE, Ledger())
    observations = judge.openapi.judge(exchange(body=body))
    assert requirement in failed(observations)
    assert failed(observations) == {requirement}


def test_openapi_core_passes_a_good_response_and_counts_each_requirement() -> None:
    observations = Judge(BASE, Ledger()).openapi.judge(exchange())
    assert not failed(observations)
    assert {"RESP-ID", "RESP-XID", "RESP-TIME", "RESP-METADATA", "RESP-STATUS"} <= judged(observations)


def test_undocumented_status_is_traced() -> None:
    judge = Judge(BASE, Ledger())
    server_error = judge.openapi.judge(exchange(status=503, body={"error": {"code": 503, "message": "x"}}))
    assert failed(server_error) == {"ROBUST"}
    unprocessable = exchange(
        status=422,
        body={"error": {"code": 422, "message": "x"}},
        expect=Expectation("BODY-SHAPE", frozenset({400})),
    )
    assert failed(judge.openapi.judge(unprocessable)) == {"BODY-SHAPE"}


def test_judge_feeds_the_ledger_and_reports_validator_disagreement() -> None:
    ledger = Ledger()
    judge = Judge(BASE, ledger)
    judge.observe(exchange(), schemathesis_failures=[("response_schema_conformance", "made-up objection")])
    assert ledger.exchanges == 1
    assert ledger.results["RESP-ID"].judged >= 2
    assert len(ledger.disagreements) == 1
