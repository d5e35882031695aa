"""A run always ends, and always leaves its reports: against a server that stalls requests or drips
its answers, after one stop signal or two, at --max-duration, past the cleanup deadline, and after an
internal error of the suite itself."""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from cdf_workflows_mock import EmbeddedMock, MockConfig
from retry_contract import checks, reports
from retry_contract.cli import main
from retry_contract.credentials import StaticToken
from retry_contract.exchange import Exchange
from retry_contract.interrupts import Background, StopSignals, Wake
from retry_contract.reports import json_report
from retry_contract.reports.model import build as report_view
from retry_contract.runner import WORKER_GRACE_SECONDS, RunOptions, RunResult, run
from retry_contract.scenarios import states
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import ExitCode, Ledger, Observation
from support.fault_proxy import Fault, fault_proxy
from support.project import CLI, PROJECT
from support.scenario_runs import run_scenarios

WRITE, READONLY = "ends-write-token-0001", "ends-readonly-token-0001"
# Retries answered before the server starts stalling them: enough for some judgements to be made.
RETRIES_ANSWERED = 25
# How long a run may take to end once it was told to (or reached its bound): the grace of its
# workers, cleanup against the mock, the reports, and room for a loaded machine.
ENDS_WITHIN_SECONDS = WORKER_GRACE_SECONDS + 12
REPORT_FILES = (
    "retry-contract.json",
    "retry-contract-junit.xml",
    "retry-contract.html",
    "retry-contract-summary.md",
)


@pytest.fixture
def mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, WRITE, READONLY)) as server:
        yield server


@dataclass
class HostileServer:
    """Chooses faults by request line: retries stall after the first few (when asked),
    the delete of cleanup drips (when asked); events say when each first happened."""

    stall_retries: bool = False
    drip_delete: bool = False
    retries_answered: int = RETRIES_ANSWERED
    retries: int = 0
    stalling: threading.Event = field(default_factory=threading.Event)
    deleting: threading.Event = field(default_factory=threading.Event)

    def choose(self, line: bytes) -> Fault | None:
        if self.stall_retries and line.startswith(b"POST ") and b"/retry " in line:
            self.retries += 1
            if self.retries > self.retries_answered:
                self.stalling.set()
                return Fault.STALL
        if self.drip_delete and line.startswith(b"POST ") and b"/workflows/delete " in line:
            self.deleting.set()
            return Fault.DRIP
        return None


def _start_cli(url: str, report_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "run", "--base-url", url, "--project", PROJECT, "--report-dir", str(report_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CDF_TOKEN": WRITE, "CDF_READONLY_TOKEN": READONLY, "NO_COLOR": "1"},
    )


def _ended(process: subprocess.Popen[str], within: float) -> tuple[str, str, float]:
    """Wait for the process to end by itself within `within` seconds: its output and how long it took."""
    started = time.monotonic()
    try:
        stdout, stderr = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"the run did not end within {within} s:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return stdout, stderr, time.monotonic() - started


def _reports(directory: Path) -> dict[str, Any]:
    for name in REPORT_FILES:
        assert (directory / name).is_file(), f"{name} was not written"
    report: dict[str, Any] = json.loads((directory / "retry-contract.json").read_text())
    return report


def _judged(report: dict[str, Any]) -> int:
    return sum(row["judged"] for row in report["requirements"])


def _left_in(mock: EmbeddedMock) -> list[str]:
    # A peek at the mock's own state: what the run left behind on the server.
    state = mock.app.state.store._projects.get(PROJECT)
    return list(state.workflows) if state is not None else []


def test_one_sigterm_stops_a_stalled_run_which_cleans_up_and_reports(
    mock: EmbeddedMock, tmp_path: Path
) -> None:
    server = HostileServer(stall_retries=True)
    with fault_proxy(mock.base_url, lambda _: None, by_request=server.choose) as (url, _):
        process = _start_cli(url, tmp_path)
        assert server.stalling.wait(timeout=60), "the run never reached a stalled retry"
        process.send_signal(signal.SIGTERM)
        _, stderr, took = _ended(process, ENDS_WITHIN_SECONDS)
        left = _left_in(mock)
    assert process.returncode == ExitCode.COULD_NOT_RUN, stderr
    assert "interrupted; what the run created was cleaned up" in stderr and "Traceback" not in stderr
    report = _reports(tmp_path)
    assert report["incomplete"].startswith("interrupted")
    assert report["verdict"].startswith("inconclusive: the run could not finish")
    assert _judged(report) > 0
    assert any("abandoned" in note for note in report["notes"]), report["notes"]
    assert left == [], f"cleanup left {left}"
    assert took < ENDS_WITHIN_SECONDS


def test_a_second_sigterm_cuts_a_dripping_cleanup_short_and_still_reports(
    mock: EmbeddedMock, tmp_path: Path
) -> None:
    server = HostileServer(stall_retries=True, drip_delete=True)
    with fault_proxy(mock.base_url, lambda _: None, by_request=server.choose) as (url, _):
        process = _start_cli(url, tmp_path)
        assert server.stalling.wait(timeout=60), "the run never reached a stalled retry"
        process.send_signal(signal.SIGTERM)
        assert server.deleting.wait(timeout=30), "cleanup never reached the delete"
        process.send_signal(signal.SIGTERM)
        _, stderr, took = _ended(process, 10)
        left = _left_in(mock)
    assert process.returncode == ExitCode.COULD_NOT_RUN, stderr
    assert "cleanup was cut short" in stderr and "Traceback" not in stderr
    report = _reports(tmp_path)
    assert report["incomplete"].startswith("interrupted")
    (problem,) = [p for p in report["cleanup_problems"] if "second stop signal" in p]
    assert left and all(workflow in problem for workflow in left), (left, problem)
    assert took < 10


def test_max_duration_ends_a_stalled_run_by_itself_with_its_reports(
    mock: EmbeddedMock, tmp_path: Path
) -> None:
    # Few answered: the bound, not the stalls' timing, must decide when the run ends.
    server = HostileServer(stall_retries=True, retries_answered=5)
    bound = 5.0
    with fault_proxy(mock.base_url, lambda _: None, by_request=server.choose) as (url, _):
        process = _start_cli(url, tmp_path, "--max-duration", f"{bound:g}")
        _, stderr, took = _ended(process, bound + 30)
        left = _left_in(mock)
    assert server.stalling.is_set(), "the run ended before any retry stalled: the test proves nothing"
    assert process.returncode == ExitCode.COULD_NOT_RUN, stderr
    report = _reports(tmp_path)
    assert "--max-duration" in report["incomplete"]
    assert _judged(report) > 0
    assert left == []
    # From the process's start: its imports, the bound, the grace, cleanup and the reports.
    assert took < bound + ENDS_WITHIN_SECONDS + 5


def test_a_dripping_cleanup_is_abandoned_at_its_deadline_and_what_it_left_is_reported(
    mock: EmbeddedMock, tmp_path: Path
) -> None:
    server = HostileServer(drip_delete=True)
    deadline = 1.5
    with fault_proxy(mock.base_url, lambda _: None, by_request=server.choose) as (url, _):
        result = run(
            RunOptions(
                base_url=url,
                project=PROJECT,
                credentials=StaticToken(WRITE),
                readonly_token=READONLY,
                fuzz=False,
                cleanup_timeout=deadline,
            )
        )
        left = _left_in(mock)
    assert server.deleting.is_set()
    assert result.abandoned == ["cleanup"]
    assert deadline <= result.timer.phases["cleanup"] < deadline + 2
    (problem,) = [p for p in result.cleanup_problems if "--cleanup-timeout" in p]
    assert left and sorted(left) == sorted(result.created_workflows)
    assert all(workflow in problem for workflow in left)
    report = json.loads(json_report.write(report_view(result), tmp_path).read_text())
    assert problem in report["cleanup_problems"]


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_an_internal_error_still_writes_every_report_marked_incomplete(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, debug: bool
) -> None:
    def failing_judge(exchange: Exchange) -> list[Observation]:
        # A judge that fails on the first successful retry, with an error whose text carries a secret:
        # it must reach no output unredacted.
        if exchange.status == 200 and exchange.url.endswith("/retry"):
            raise ValueError(f"odd input from {exchange.request_headers.get('authorization')}")
        return []

    monkeypatch.setattr("retry_contract.checks.SUCCESS_CHECKS", (*checks.SUCCESS_CHECKS, failing_judge))
    if debug:
        monkeypatch.setenv("RETRY_CONTRACT_DEBUG", "1")
    else:
        monkeypatch.delenv("RETRY_CONTRACT_DEBUG", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    outcome = CliRunner().invoke(main, ["run", "--no-fuzz", "-q", "--report-dir", str(tmp_path)])
    assert outcome.exit_code == ExitCode.COULD_NOT_RUN, outcome.output
    error = "internal error (ValueError: odd input from Bearer [REDACTED])"
    assert f"retry-contract: {error}" in outcome.stderr
    assert ("Traceback" in outcome.stderr) is debug
    report = _reports(tmp_path)
    assert report["incomplete"] == error
    assert report["exit_code"] == ExitCode.COULD_NOT_RUN
    assert report["verdict"].startswith(f"inconclusive: the run could not finish ({error}")
    assert _judged(report) > 0
    for text in [outcome.stdout, outcome.stderr, *((tmp_path / name).read_text() for name in REPORT_FILES)]:
        shown = re.findall(r"odd input from Bearer (.{10})", text)
        assert all(token == "[REDACTED]" for token in shown), shown


def test_a_report_that_fails_to_write_loses_no_other(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = SecretRegistry()
    secrets.add("reporter-secret-0001")
    result = RunResult(
        options=RunOptions(base_url=None, project=PROJECT, credentials=None),
        target="http://127.0.0.1:1",
        ledger=Ledger(),
        secrets=secrets,
    )

    def failing_write(result: RunResult, directory: Path) -> Path:
        raise ValueError("odd input near reporter-secret-0001")

    monkeypatch.setattr("retry_contract.reports.html.write", failing_write)
    shown = io.StringIO()
    published = reports.publish(result, tmp_path, reports.FORMATS, Console(file=shown), environ={})
    assert not published
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == sorted(name for name in REPORT_FILES if name != "retry-contract.html")
    stderr = capsys.readouterr().err
    assert "could not write the html report: internal error (ValueError: odd input near [REDACTED])" in stderr
    assert "verdict: " in shown.getvalue()


def test_a_second_sigterm_ends_a_stalled_replay_at_once(mock: EmbeddedMock, tmp_path: Path) -> None:
    # One scenario, which the defect breaks: a report with a failure to replay, in seconds.
    result = run_scenarios((states.non_retryable_states,), mock_defects=frozenset({"retry-running"}))
    report = json_report.write(report_view(result), tmp_path)
    server = HostileServer(stall_retries=True, retries_answered=0)
    with fault_proxy(mock.base_url, lambda _: None, by_request=server.choose) as (url, _):
        process = subprocess.Popen(
            [*CLI, "replay", str(report), "--failure", "1", "--base-url", url, "--timeout", "600"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CDF_TOKEN": WRITE, "CDF_READONLY_TOKEN": READONLY},
        )
        assert server.stalling.wait(timeout=60), "the replay never sent its retry"
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        # The first signal is taken (its line written) before the second is sent: two pending
        # signals of one kind would be delivered as one.
        assert select.select([process.stderr], [], [], 30)[0], "the first signal was not acknowledged"
        assert "interrupted" in process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        _, stderr, took = _ended(process, 10)
    assert process.returncode == ExitCode.COULD_NOT_RUN
    assert "interrupted twice" in stderr and "Traceback" not in stderr
    assert took < 10


def test_a_wait_ends_at_the_work_at_a_signal_or_at_the_deadline_whichever_first() -> None:
    release = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        work = Background("test-work", release.wait, signals.wake)
        started = time.monotonic()
        assert (
            signals.wait_until(work.finished.is_set, deadline=started + 0.2, signals_seen=0) is Wake.DEADLINE
        )
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.wait_until(work.finished.is_set, deadline=None, signals_seen=0) is Wake.SIGNAL
        assert signals.received == 1
        release.set()
        assert signals.wait_until(work.finished.is_set, deadline=None, signals_seen=1) is Wake.DONE
        assert work.value is True
    # The handlers are gone with the block: SIGTERM is back to what it was.
    assert signal.getsignal(signal.SIGTERM) == before
