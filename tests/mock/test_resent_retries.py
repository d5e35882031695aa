"""A retry whose answer was lost after the server acted is sent again; a faithful server then refuses
it (the execution runs, or the nonce is used). That refusal is no violation: a reading of the execution
shows the first attempt took effect, its effects are judged from the reading, and the report says so.

Behind a fault proxy that cuts, delays past the client's timeout, drops or loses at a gateway the answers
of retry requests, a faithful mock gives no violation (exit 0 or 2, never 1)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from retry_contract.checks import Judge
from retry_contract.credentials import StaticToken
from retry_contract.exchange import RESENT_NOTE, Exchange, Expectation
from retry_contract.reports.model import run_facts
from retry_contract.reports.reproduction import reproduce
from retry_contract.resilience import RetryPolicy
from retry_contract.runner import RunOptions, RunResult, run
from retry_contract.scenarios.context import ALREADY_RETRIED, weigh_resent
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import ExitCode, Ledger
from support.fault_proxy import Fault, fault_proxy, nth_request
from support.project import PROJECT

WRITE, READONLY = "resent-write-token-0001", "resent-readonly-token-0001"
RETRY_REQUEST = re.compile(rb"^POST \S+/retry ")
QUICK = RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.05)
HAD_EFFECT = "a reading showed it had"
# Every third retry request: the plain-form retries of every fixture shape, the nonce's first use and
# the retries of each retryable state are among them, each expected to succeed.
EVERY_THIRD = range(1, 200, 3)


@pytest.fixture
def mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, WRITE, READONLY)) as server:
        yield server


def _run(
    mock: EmbeddedMock, faults: dict[int, Fault], *, fuzz: bool = False, timeout: float = 30.0
) -> RunResult:
    with fault_proxy(
        mock.base_url, lambda _: None, by_request=nth_request(RETRY_REQUEST, faults), delay_seconds=1.5
    ) as (url, proxy):
        result = run(
            RunOptions(
                base_url=url,
                project=PROJECT,
                credentials=StaticToken(WRITE),
                readonly_token=READONLY,
                max_examples=10,
                fuzz=fuzz,
                concurrency=1,
                request_timeout=timeout,
                retry_policy=QUICK,
            )
        )
    assert proxy.injected, "no retry request met a fault"
    return result


def _violations(result: RunResult) -> dict[str, list[str]]:
    return {
        r.requirement.id: [f"{f.message} ({f.exchange.origin if f.exchange else ''})" for f in r.failures][:3]
        for r in result.ledger.results.values()
        if r.failures
    }


def _notes_of_effect(result: RunResult) -> list[str]:
    return [note for note in result.ledger.notes if RESENT_NOTE in note and HAD_EFFECT in note]


@pytest.mark.slow
@pytest.mark.parametrize("fault", [Fault.TRUNCATE, Fault.DROP, Fault.ANSWER_LOST_AT_GATEWAY])
def test_lost_answers_of_retries_are_no_violation(mock: EmbeddedMock, fault: Fault) -> None:
    result = _run(mock, dict.fromkeys(EVERY_THIRD, fault))
    assert not _violations(result), _violations(result)
    assert result.exit_code in (ExitCode.CONFORMANT, ExitCode.COULD_NOT_RUN)
    if fault is Fault.DROP:
        # Dropped before the server saw it: the request sent again is the first it sees.
        assert not _notes_of_effect(result)
    else:
        assert len(_notes_of_effect(result)) >= 5, result.ledger.notes


@pytest.mark.slow
def test_answers_slower_than_the_client_waits_are_no_violation(mock: EmbeddedMock) -> None:
    # Each costs the client's whole timeout: a few, on retries that are expected to succeed.
    result = _run(mock, dict.fromkeys((4, 13, 28), Fault.SLOW_ANSWER), timeout=1.0)
    assert not _violations(result), _violations(result)
    assert result.exit_code in (ExitCode.CONFORMANT, ExitCode.COULD_NOT_RUN)
    assert _notes_of_effect(result), result.ledger.notes


@pytest.mark.slow
def test_a_fuzzed_retry_lost_at_a_gateway_is_weighed_on_a_reading(mock: EmbeddedMock) -> None:
    result = _run(mock, dict.fromkeys(range(1, 400, 2), Fault.ANSWER_LOST_AT_GATEWAY), fuzz=True)
    assert not _violations(result), _violations(result)
    assert result.exit_code in (ExitCode.CONFORMANT, ExitCode.COULD_NOT_RUN)
    assert any("(schemathesis" in note for note in _notes_of_effect(result)), result.ledger.notes


# -- the weighing itself, against readings given by a stand-in client -----------------------------

EXECUTION_ID = "059edaa4-a17a-4102-910e-2c3591500cce"
FAILED: dict[str, Any] = {
    "id": EXECUTION_ID,
    "status": "FAILED",
    "workflowExternalId": "retry-contract-0a1b2c3d-simple",
    "executedTasks": [{"id": "t1", "externalId": "step", "status": "FAILED", "startTime": 1}],
}
RETRIED: dict[str, Any] = {
    **FAILED,
    "status": "RUNNING",
    "executedTasks": [*FAILED["executedTasks"], {"id": "t2", "externalId": "step", "status": "IN_PROGRESS"}],
}
SUCCESS = Expectation("STATE-RETRYABLE", frozenset({200}), "execution in a retryable state")


class Readings:
    """Answers `detailed` and `await_effect` with one reading, and counts them."""

    def __init__(self, reading: dict[str, Any]) -> None:
        self.reading = reading
        self.reads = 0

    def detailed(self, execution_id: str) -> dict[str, Any]:
        self.reads += 1
        return self.reading

    def await_effect(self, execution_id: str, done: Any, timeout: float = 0) -> dict[str, Any]:
        return self.detailed(execution_id)


def _resent(status: int, body: bytes) -> Exchange:
    return Exchange(
        method="POST",
        url=f"http://127.0.0.1:9/api/v1/projects/{PROJECT}/workflows/executions/{EXECUTION_ID}/retry",
        request_headers={"content-type": "application/json", "authorization": f"Bearer {WRITE}"},
        request_body=b'{"authentication": {"nonce": "n"}}',
        status=status,
        response_headers={"content-type": "application/json", "x-request-id": "r"},
        response_body=body,
        origin="scenario: retry in the plain form",
        execution_id=EXECUTION_ID,
        before=FAILED,
        maybe_replayed=True,
    )


CONFLICT = b'{"error": {"code": 409, "message": "already running"}}'


def test_a_refusal_after_the_first_attempt_took_effect_is_judged_as_such() -> None:
    exchange = _resent(409, CONFLICT)
    conclusion = weigh_resent(Readings(RETRIED), exchange, SUCCESS)  # type: ignore[arg-type]
    assert HAD_EFFECT in conclusion
    assert exchange.first_attempt_took_effect and exchange.expectation == ALREADY_RETRIED
    observations = Judge("http://127.0.0.1:9", Ledger()).observe(exchange)
    assert not [o for o in observations if not o.passed]
    # What the first attempt did is judged from the reading, with the re-sent exchange.
    assert {"SEM-TARGETED"} <= {o.requirement for o in observations}


def test_a_refusal_when_nothing_took_effect_is_held_to_the_expectation() -> None:
    exchange = _resent(409, CONFLICT)
    conclusion = weigh_resent(Readings(FAILED), exchange, SUCCESS)  # type: ignore[arg-type]
    assert "had not" in conclusion and not exchange.first_attempt_took_effect
    failed = [o for o in Judge("http://127.0.0.1:9", Ledger()).observe(exchange) if not o.passed]
    assert [o.requirement for o in failed] == ["STATE-RETRYABLE"], failed


def test_a_refusal_that_was_due_is_held_to_without_reading() -> None:
    readings = Readings(RETRIED)
    refused = Expectation("AUTH-401", frozenset({401}))
    exchange = _resent(409, CONFLICT)
    weigh_resent(readings, exchange, refused)  # type: ignore[arg-type]
    assert readings.reads == 0 and exchange.expectation == refused


def test_the_reproduction_of_a_resent_retry_says_so() -> None:
    exchange = _resent(404, b'{"error": {"code": 404, "message": "gone"}}')
    weigh_resent(Readings(RETRIED), exchange, SUCCESS)  # type: ignore[arg-type]
    result = RunResult(
        options=RunOptions(base_url="http://127.0.0.1:9", project=PROJECT, credentials=StaticToken(WRITE)),
        target="http://127.0.0.1:9",
        ledger=Ledger(),
        secrets=SecretRegistry(),
    )
    steps = reproduce(exchange, "STATE-RETRYABLE", 1, run_facts(result), SecretRegistry()).steps
    said = [step for step in steps if RESENT_NOTE in step]
    assert said and "Retry the execution once first" in said[0], steps
