"""Faults of the network are not contract violations: behind a fault-injecting proxy the verdict
stays right, and faults that never clear are reported as such (exit 2), not as violations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from retry_contract.credentials import StaticToken
from retry_contract.reports import json_report
from retry_contract.resilience import RetryPolicy
from retry_contract.runner import CouldNotRun, RunOptions, run
from retry_contract.verdict import ExitCode
from support.fault_proxy import Fault, fault_proxy
from support.project import PROJECT

WRITE, READONLY = "faults-write-token-0001", "faults-readonly-token-0001"

# Bounded and deterministic: a fault every few requests for the first few hundred, including bursts
# of 503 shorter than the client's retry attempts.
SCHEDULE = {
    7: Fault.DROP,
    12: Fault.UNAVAILABLE,
    13: Fault.UNAVAILABLE,
    14: Fault.UNAVAILABLE,
    21: Fault.TOO_MANY_REQUESTS,
    22: Fault.TOO_MANY_REQUESTS,
    30: Fault.DELAY,
    38: Fault.BAD_GATEWAY,
    45: Fault.GATEWAY_TIMEOUT,
    61: Fault.DROP,
    77: Fault.DELAY,
    90: Fault.UNAVAILABLE,
    120: Fault.DROP,
    150: Fault.TOO_MANY_REQUESTS,
    200: Fault.UNAVAILABLE,
    201: Fault.UNAVAILABLE,
    260: Fault.DROP,
    300: Fault.DELAY,
    340: Fault.BAD_GATEWAY,
}


@pytest.fixture
def mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, WRITE, READONLY)) as server:
        yield server


def _options(base_url: str) -> RunOptions:
    return RunOptions(
        base_url=base_url,
        project=PROJECT,
        credentials=StaticToken(WRITE),
        readonly_token=READONLY,
        max_examples=10,
    )


@pytest.mark.slow
def test_transient_faults_leave_the_verdict_right(mock: EmbeddedMock) -> None:
    with fault_proxy(mock.base_url, SCHEDULE.get) as (url, proxy):
        result = run(_options(url))
    failed = {
        r.requirement.id: [f.message for f in r.failures][:2]
        for r in result.ledger.results.values()
        if r.failures
    }
    assert not failed, f"false violations behind the fault proxy: {failed}"
    assert sum(proxy.injected.values()) >= 12, proxy.injected
    assert result.exit_code is ExitCode.CONFORMANT


@pytest.mark.slow
def test_truncated_answers_are_not_violations(mock: EmbeddedMock) -> None:
    truncations = {9: Fault.TRUNCATE, 33: Fault.TRUNCATE, 140: Fault.TRUNCATE}
    with fault_proxy(mock.base_url, truncations.get) as (url, proxy):
        result = run(_options(url))
    assert proxy.injected[Fault.TRUNCATE] == 3
    failed = {r.requirement.id for r in result.ledger.results.values() if r.failures}
    assert not failed, f"false violations from truncated answers: {failed}"
    assert result.exit_code is ExitCode.CONFORMANT


def test_a_gateway_that_never_recovers_is_an_infrastructure_error(mock: EmbeddedMock) -> None:
    quick = RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.05)
    with (
        fault_proxy(mock.base_url, lambda _: Fault.UNAVAILABLE) as (url, _),
        pytest.raises(CouldNotRun) as raised,
    ):
        run(replace(_options(url), retry_policy=quick))
    assert "503" in str(raised.value) and "3 attempts" in str(raised.value)


def _quick(url: str) -> RunOptions:
    quick = RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.05)
    return replace(_options(url), retry_policy=quick, fuzz=False, concurrency=1)


@pytest.mark.slow
def test_setup_requests_outlast_a_503_window_the_judged_ones_would_not(mock: EmbeddedMock) -> None:
    # Six 503s in a row: more than a judged request's 4 attempts, fewer than a setup request's.
    window = {n: Fault.UNAVAILABLE for n in range(40, 46)}
    with fault_proxy(mock.base_url, window.get) as (url, proxy):
        result = run(_quick(url))
    assert proxy.injected[Fault.UNAVAILABLE] == 6
    assert not result.incomplete
    assert not [r.requirement.id for r in result.ledger.results.values() if r.failures]


@pytest.mark.slow
def test_a_run_that_cannot_finish_keeps_what_it_judged(mock: EmbeddedMock, tmp_path: Path) -> None:
    with fault_proxy(mock.base_url, lambda n: Fault.UNAVAILABLE if n > 120 else None) as (url, _):
        result = run(_quick(url))
    assert result.incomplete.startswith("a request the suite needed kept failing")
    assert result.exit_code is ExitCode.COULD_NOT_RUN
    assert sum(r.judged for r in result.ledger.results.values()) > 0
    report = json.loads(json_report.write(result, tmp_path).read_text())
    assert report["incomplete"] == result.incomplete
    assert report["verdict"].startswith("inconclusive: the run could not finish")
