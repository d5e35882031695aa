"""Progress while a run goes: plain timestamped lines off a terminal, a live line on one, nothing but
the verdict with -q, and no escape sequence at all with NO_COLOR."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from retry_contract.reports.progress import OFF_TERMINAL_WIDTH, PlainLines, make_console, showing
from retry_contract.requirements import CATALOGUE, Level
from retry_contract.runner import MOCK_PROJECT, ProgressEvent, RunOptions, run
from retry_contract.secrets_registry import SecretRegistry
from support.project import CLI

PLAIN_LINE = re.compile(
    r"^\d\d:\d\d:\d\d (?P<phase>[a-z ]+): (?P<requests>\d+) requests sent, "
    r"(?P<failures>\d+) failures so far, \d+ s elapsed$"
)
# Control Sequence Introducer (colours, bold, cursor movements) and the other escapes rich could write.
ESCAPE = "\x1b"


def _plain_console() -> tuple[Console, StringIO]:
    output = StringIO()
    return Console(file=output, force_terminal=False, width=200), output


def test_plain_lines_one_per_phase_and_at_most_one_every_interval() -> None:
    console, output = _plain_console()
    lines = PlainLines(
        console, SecretRegistry(), every_seconds=30.0, now=lambda: datetime(2024, 5, 1, 12, 0, 3)
    )
    for phase, elapsed in [
        ("preflight", 0.0),
        ("scenarios and fuzzing", 0.4),
        ("scenarios and fuzzing", 1.4),  # a tick: too soon
        ("scenarios and fuzzing", 30.3),  # too soon after the phase's own line
        ("scenarios and fuzzing", 30.4),
        ("scenarios and fuzzing", 31.4),
        ("cleanup", 31.5),
    ]:
        lines.show(ProgressEvent(phase, requests_sent=int(elapsed * 10), failures=2, elapsed=elapsed))
    assert output.getvalue().splitlines() == [
        "12:00:03 preflight: 0 requests sent, 2 failures so far, 0 s elapsed",
        "12:00:03 scenarios and fuzzing: 4 requests sent, 2 failures so far, 0 s elapsed",
        "12:00:03 scenarios and fuzzing: 304 requests sent, 2 failures so far, 30 s elapsed",
        "12:00:03 cleanup: 315 requests sent, 2 failures so far, 32 s elapsed",
    ]


def test_a_run_off_a_terminal_prints_plain_phase_lines() -> None:
    console, output = _plain_console()
    registry = SecretRegistry()
    options = RunOptions(
        base_url=None,
        project=MOCK_PROJECT,
        credentials=None,
        fuzz=False,
        secrets=registry,
        mock_defects=frozenset({"time-as-string"}),
    )
    with showing(console, registry) as show:
        result = run(options, progress=show)
    matches = [PLAIN_LINE.match(line) for line in output.getvalue().splitlines()]
    assert all(matches), output.getvalue()
    phases = [m["phase"] for m in matches if m]
    # One line per phase; a phase longer than the interval may add a line of its own.
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        "preflight",
        "scenarios and fuzzing",
        "late scenarios",
        "cleanup",
        "finished",
    ]
    requests = [int(m["requests"]) for m in matches if m]
    assert requests == sorted(requests)
    # The last line is the run's own account: every request, and every failed MUST judgement.
    last = matches[-1]
    assert last is not None
    assert int(last["requests"]) == result.requests_sent
    must_failures = sum(
        len(r.failures) for r in result.ledger.results.values() if r.requirement.level is Level.MUST
    )
    assert must_failures > 0
    assert int(last["failures"]) == must_failures


def test_the_last_progress_line_counts_the_requests_the_summary_counts() -> None:
    """Fuzzed cases included: the progress line and the summary count one and the same thing."""
    events: list[ProgressEvent] = []
    options = RunOptions(base_url=None, project=MOCK_PROJECT, credentials=None, max_examples=3, seed=7)
    result = run(options, progress=events.append)
    assert result.fuzz.cases > 0
    assert events[-1].phase == "finished"
    assert events[-1].requests_sent == result.requests_sent


def test_a_terminal_gets_a_live_line_not_timestamped_lines() -> None:
    output = StringIO()
    console = Console(file=output, force_terminal=True, force_interactive=True, width=120)
    with showing(console, SecretRegistry()) as show:
        show(ProgressEvent("scenarios and fuzzing", requests_sent=12, failures=3, elapsed=75.2))
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.getvalue())
    assert "scenarios and fuzzing  12 requests sent  3 failures so far  1:15 elapsed" in text
    assert not PLAIN_LINE.search(text)


def test_no_color_console_has_no_style_and_no_live_line() -> None:
    console = make_console(no_color=True)
    assert console.no_color
    assert console.color_system is None


def test_off_a_terminal_the_console_is_wide_and_a_table_row_stays_on_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    console = make_console(environ={})
    assert not console.is_terminal
    assert console.width == OFF_TERMINAL_WIDTH
    table = Table()
    for column in ("Requirement", "Outcome", "First failure / note"):
        table.add_column(column, overflow="fold")
    note = "the response body is not the error envelope: " + "x" * 100
    table.add_row("ERR-ENVELOPE", "failed", note)
    console.print(table)
    assert any(note in line for line in capsys.readouterr().out.splitlines())


def test_off_a_terminal_columns_still_sets_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert make_console(environ={"COLUMNS": "100"}).width == 100


def _cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # Variables that change rich's output or where reports go are set only by each test.
    dropped = ("CDF_", "GITHUB_", "NO_COLOR", "FORCE_COLOR", "TTY_", "TERM", "COLUMNS")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    environment.update(env)
    command = [*CLI, "run", "--no-fuzz", "--report-dir", str(tmp_path), *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.slow
def test_quiet_prints_only_the_verdict(tmp_path: Path) -> None:
    completed = _cli(["-q", "--mock-defect", "time-as-string"], tmp_path)
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-2000:]
    musts = sum(requirement.level is Level.MUST for requirement in CATALOGUE)
    assert completed.stdout.splitlines() == [
        f"verdict: contract violations found ({musts} of {musts} MUST requirements judged)"
    ]
    assert completed.stderr == ""
    assert (tmp_path / "retry-contract-junit.xml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env"),
    [([], {"NO_COLOR": "1"}), (["--no-color"], {})],
    ids=["NO_COLOR", "--no-color"],
)
def test_no_color_leaves_no_escape_even_on_a_forced_terminal(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    bounded = ["--max-requests", "60"]
    forced = _cli(bounded, tmp_path, FORCE_COLOR="1", TTY_INTERACTIVE="1")
    # The control: FORCE_COLOR really makes rich write escapes into a pipe.
    assert ESCAPE in forced.stdout
    plain = _cli([*bounded, *args], tmp_path, FORCE_COLOR="1", TTY_INTERACTIVE="1", **env)
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-2000:]
    assert ESCAPE not in plain.stdout + plain.stderr
    assert "verdict: " in plain.stdout
