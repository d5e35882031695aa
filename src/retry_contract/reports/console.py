"""The console summary: one row per requirement, then the verdict and where the reports are."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from retry_contract.reports.exercised import depth_text
from retry_contract.reports.model import (
    baseline_text,
    coverage_text,
    requirement_rows,
    shown_outcome,
    verdict_text,
)
from retry_contract.runner import RunResult

_STYLE = {"passed": "green", "failed": "red", "not covered": "yellow", "warning": "yellow", "accepted": "dim"}
# How much of a message the table and the first failure show; the reports have the rest.
_NOTE_LIMIT = 160
_FIRST_FAILURE_LIMIT = 300


def render(result: RunResult, console: Console, written: list[Path]) -> None:
    table = Table(title=f"retry-contract against {result.target} (project {result.options.project})")
    for column in ("Requirement", "Level", "Outcome", "Judged", "First failure / note"):
        table.add_column(column, overflow="fold")
    rows = requirement_rows(result)
    for row in rows:
        outcome = shown_outcome(row)
        note = row["failures"][0]["message"] if row["failures"] else row["not_covered_reason"]
        if row["accepted_failures"] and outcome != "accepted":
            note = f"{row['failed'] - row['accepted_failures']} new, {row['accepted_failures']} known; {note}"
        style = _STYLE[outcome]
        table.add_row(
            row["id"],
            row["level"],
            f"[{style}]{outcome}[/{style}]",
            str(row["judged"]),
            result.secrets.cut(note, _NOTE_LIMIT),
        )
    console.print(table)
    console.print(
        f"{result.requests_sent} requests ({result.fuzz.cases} fuzzed, {result.fuzz.successes} successful "
        f"fuzzed retries) in {result.seconds:.1f} s; seed {result.options.seed}; "
        f"{len(result.ledger.disagreements)} validator disagreements"
    )
    console.print(f"exercised: {depth_text(result)}")
    if result.options.baseline is not None:
        console.print(result.secrets.redact(baseline_text(result)), markup=False)
    if result.stop_reason:
        console.print(f"[yellow]stopped early: {result.stop_reason}[/yellow]")
    for fault in result.ledger.faults[:5]:
        console.print(
            f"[yellow]infrastructure fault (not a contract failure): {fault.origin}: {fault.fault}[/yellow]"
        )
    # The first failure in report order, with all it takes to see it again: whoever reads only the
    # console must be able to reproduce something without opening the JSON report.
    first = next(
        (f for row in rows for f in row["failures"] if f.get("reproduce_steps") and not f["accepted"]), None
    )
    if first is not None:
        console.print(
            f"first failure (#{first['number']}, {first['requirement']}): "
            + result.secrets.cut(first["message"], _FIRST_FAILURE_LIMIT),
            markup=False,
        )
        for step in first["reproduce_steps"]:
            # soft_wrap: a curl command broken by the console's line wrapping could not be pasted.
            console.print(f"  {result.secrets.redact(step)}", markup=False, soft_wrap=True)
    for note in result.ledger.notes:
        console.print(f"note: {result.secrets.redact(note)}")
    for problem in result.cleanup_problems:
        console.print(f"[yellow]cleanup: {result.secrets.redact(problem)}[/yellow]")
    for path in written:
        console.print(f"report: {path}")
    style = "green" if result.exit_code == 0 else "red"
    console.print(f"[bold {style}]verdict: {verdict_text(result)} ({coverage_text(result)})[/bold {style}]")
