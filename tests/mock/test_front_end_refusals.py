"""The catalogue as it stands: a 413/414/431 whose body is a front-end proxy's page is a SHOULD
finding, never a MUST one; OPTIONS and HEAD on the retry path are open, save that HEAD never retries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from cdf_workflows_mock.front_end import FrontEndLimits, error_page
from retry_contract.checks import Judge
from retry_contract.checks.openapi import OpenApiJudge
from retry_contract.exchange import Exchange, Expectation
from retry_contract.reports.model import build as report_view
from retry_contract.requirements import BY_ID, OPEN_METHODS, Level
from retry_contract.runner import RunOptions, run
from retry_contract.verdict import ExitCode, Ledger, finding_level
from support.project import PROJECT, SHARED_REFERENCE

SHARED_REQUIREMENTS = SHARED_REFERENCE / "requirements.md"
HTML = {"content-type": "text/html"}
FRONT_END_STATUSES = (413, 414, 431)
EXECUTION_ID = "059edaa4-a17a-4102-910e-2c3591500cce"


def exchange(status: int, *, headers: dict[str, str], raw: bytes, expect: Expectation) -> Exchange:
    return Exchange(
        method="POST",
        url=f"http://127.0.0.1:9/api/v1/projects/p/workflows/executions/{EXECUTION_ID}/retry",
        request_headers={"content-type": "application/json", "authorization": "Bearer t"},
        request_body=b'{"authentication": {"nonce": "n"}}',
        status=status,
        response_headers=headers,
        response_body=raw,
        execution_id=EXECUTION_ID,
        expectation=expect,
    )


def _judged(status: int, headers: dict[str, str], raw: bytes) -> Ledger:
    ledger = Ledger()
    odd_id = Expectation("PATH-UUID", frozenset({400, 404, 413, 414, 431}), "oversized executionId")
    Judge("http://127.0.0.1:9", ledger).observe(exchange(status, headers=headers, raw=raw, expect=odd_id))
    return ledger


@pytest.mark.parametrize("status", FRONT_END_STATUSES)
def test_a_front_end_page_on_an_oversized_refusal_is_a_should_finding(status: int) -> None:
    ledger = _judged(status, HTML, error_page(status))
    failed = {r.requirement.id: r for r in ledger.results.values() if r.failures}
    assert {"ROBUST", "ERR-ENVELOPE", "HDR-REQUEST-ID"} <= set(failed)
    assert all(r.failing_level is Level.SHOULD for r in failed.values()), failed
    assert all(finding_level(f) is Level.SHOULD for r in failed.values() for f in r.failures)
    assert not ledger.has_must_failure()
    assert ledger.exit_code(strict=False) is ExitCode.CONFORMANT
    assert ledger.exit_code(strict=True) is ExitCode.VIOLATIONS


def test_the_same_page_on_any_other_error_status_stays_a_must_failure() -> None:
    ledger = _judged(400, HTML, b"<html><body>400 Bad Request</body></html>")
    assert ledger.results["ROBUST"].failing_level is Level.MUST
    assert ledger.results["ERR-ENVELOPE"].failing_level is Level.MUST
    assert ledger.exit_code(strict=False) is ExitCode.VIOLATIONS


def test_a_front_end_status_does_not_excuse_what_is_not_about_the_answer() -> None:
    """Only the answer's body and headers are relaxed: a 414 where the request expected 400 is still a
    MUST failure of the requirement the request was built for."""
    ledger = Ledger()
    bad_body = Expectation("BODY-SHAPE", frozenset({400}))
    Judge("http://127.0.0.1:9", ledger).observe(
        exchange(414, headers=HTML, raw=error_page(414), expect=bad_body)
    )
    assert ledger.results["BODY-SHAPE"].failing_level is Level.MUST


def test_the_spec_declares_the_relaxed_statuses_and_the_catalogue_names_them() -> None:
    index = OpenApiJudge("http://127.0.0.1:9").index
    relaxed = [status for status in range(400, 600) if index.declared_level(status) is not None]
    assert relaxed == list(FRONT_END_STATUSES)
    for status in relaxed:
        assert index.declared_level(status) is Level.SHOULD
        assert {"ROBUST", "ERR-ENVELOPE", "HDR-REQUEST-ID"} <= index.answer_requirements(status)
    if SHARED_REQUIREMENTS.is_file():
        text = SHARED_REQUIREMENTS.read_text()
        robust = re.search(r"^\| ROBUST \|.*$", text, re.MULTILINE)
        method = re.search(r"^\| METHOD \|.*$", text, re.MULTILINE)
        assert robust and "413, 414 or 431" in robust[0] and "SHOULD finding" in robust[0]
        assert method and all(f"{m} is *open*" in method[0] for m in sorted(OPEN_METHODS))
    assert BY_ID["ERR-ENVELOPE"].level is Level.MUST


@pytest.mark.parametrize("method", sorted(OPEN_METHODS))
def test_open_methods_carry_no_status_expectation_from_the_fuzzer(method: str) -> None:
    from retry_contract import fuzzing
    from retry_contract.fuzz_protocol import CaseShape

    shape = CaseShape(method, generation_mode=None, path_mode=None, body_mode=None, declares_json=True)
    assert fuzzing._expectation(shape, our_credentials=True, steered=False) is None


def test_the_proxied_profile_answers_oversized_requests_with_the_front_ends_page() -> None:
    limits = FrontEndLimits()
    config = MockConfig.with_tokens(PROJECT, "front-write", "front-read", profile="proxied")
    with EmbeddedMock(config) as mock:
        base = f"{mock.base_url}/api/v1/projects/{PROJECT}/workflows/executions"
        with httpx.Client(headers={"authorization": "Bearer front-write"}) as client:
            long_target = client.post(f"{base}/{'a' * (limits.max_target_bytes + 1)}/retry", json={})
            big_body = client.post(f"{base}/{EXECUTION_ID}/retry", content=b"x" * (limits.max_body_bytes + 1))
            big_headers = client.post(
                f"{base}/{EXECUTION_ID}/retry", json={}, headers={"x-padding": "p" * limits.max_header_bytes}
            )
            normal = client.post(f"{base}/{EXECUTION_ID}/retry", json={"authentication": {"nonce": "n"}})
    for answer, status in ((long_target, 414), (big_body, 413), (big_headers, 431)):
        assert answer.status_code == status
        assert answer.headers["content-type"] == "text/html" and "x-request-id" not in answer.headers
        assert answer.content == error_page(status)
    # Everything the front end lets through reaches the API, which answers with its envelope.
    assert normal.status_code in (400, 404) and "error" in normal.json()


@pytest.mark.slow
@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_a_faithful_server_behind_a_front_end_passes_leniently_and_warns_strictly(
    strict: bool, tmp_path: Path
) -> None:
    result = run(
        RunOptions(
            base_url=None,
            project=PROJECT,
            credentials=None,
            mock_profile="proxied",
            strict=strict,
            max_examples=10,
        )
    )
    warned = {r.requirement.id for r in result.ledger.results.values() if r.failures}
    # The oversized probes met the front end, and only its pages were found wanting, at SHOULD level.
    assert {"ROBUST", "ERR-ENVELOPE"} <= warned
    assert all(r.failing_level is Level.SHOULD for r in result.ledger.results.values() if r.failures)
    statuses = {f.exchange.status for r in result.ledger.results.values() for f in r.failures if f.exchange}
    assert statuses <= set(FRONT_END_STATUSES)
    assert result.exit_code is (ExitCode.VIOLATIONS if strict else ExitCode.CONFORMANT)
    from retry_contract.reports import json_report

    report = json.loads(json_report.write(report_view(result), tmp_path).read_text())
    rows = {row["id"]: row for row in report["requirements"]}
    assert rows["ROBUST"]["warning"] is not strict and rows["ROBUST"]["level"] == "MUST"
    assert {f["level"] for f in rows["ERR-ENVELOPE"]["failures"]} == {"SHOULD"}
