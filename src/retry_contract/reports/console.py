"""The console summary: one row per requirement, then the verdict and where the reports are."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from retry_contract.reports.model import ReportView, shown_outcome

_STYLE = {"passed": "green", "failed": "red", "not covered": "yellow", "warning": "yellow", "accepted": "dim"}
# How much of a message the table and the first failure show; the reports have the rest.
_NOTE_LIMIT = 160
_FIRST_FAILURE_LIMIT = 300
# The other failures are listed one line each, with the command that replays them, this many at most.
_OTHER_FAILURES_LISTED = 20


def render(view: ReportView, console: Console, written: list[Path]) -> None:
    table = Table(title=f"retry-contract against {view.target} (project {view.project})")
    for column in ("Requirement", "Level", "Outcome", "Judged", "First failure / note"):
        table.add_column(column, overflow="fold")
    for row in view.rows:
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
            view.secrets.cut(note, _NOTE_LIMIT),
        )
    console.print(table)
    console.print(
        f"{view.requests_sent} requests ({view.fuzzing.cases} fuzzed, {view.fuzzing.successes} successful "
        f"fuzzed retries) in {view.seconds:.1f} s; seed {view.seed}; "
        f"{len(view.disagreements)} validator disagreements"
    )
    console.print(f"exercised: {view.depth}")
    if view.baseline_text:
        console.print(view.secrets.redact(view.baseline_text), markup=False)
    if view.stopped_early:
        console.print(f"[yellow]stopped early: {view.stopped_early}[/yellow]")
    for fault in view.faults[:5]:
        console.print(
            f"[yellow]infrastructure fault (not a contract failure): {fault.origin}: {fault.fault}[/yellow]"
        )
    # The first failure in report order, with all it takes to see it again: whoever reads only the
    # console must be able to reproduce something without opening the JSON report. Its card lists
    # every requirement that same request and response failed.
    first = next(
        (card for card in view.cards if card.lead.get("reproduce_steps") and not card.lead["accepted"]), None
    )
    if first is not None:
        numbers = ", ".join(f"#{f['number']} {f['requirement']}" for f in first.failures)
        console.print(f"first failure ({numbers}):", markup=False, soft_wrap=True)
        for failure in first.failures:
            console.print(
                f"  {failure['requirement']}: " + view.secrets.cut(failure["message"], _FIRST_FAILURE_LIMIT),
                markup=False,
            )
        for step in first.lead["reproduce_steps"]:
            # soft_wrap: a curl command broken by the console's line wrapping could not be pasted.
            console.print(f"  {view.secrets.redact(step)}", markup=False, soft_wrap=True)
        if first.replay:
            console.print(f"  replay: {first.replay}", markup=False, soft_wrap=True)
    others = [card for card in view.cards if card is not first and card.replay]
    for card in others[:_OTHER_FAILURES_LISTED]:
        console.print(
            f"failure #{card.number} ({', '.join(card.requirements)}): {card.replay}",
            markup=False,
            soft_wrap=True,
        )
    if len(others) > _OTHER_FAILURES_LISTED:
        console.print(f"... and {len(others) - _OTHER_FAILURES_LISTED} more failures in the HTML report")
    for note in view.notes:
        console.print(f"note: {view.secrets.redact(note)}")
    for problem in view.cleanup_problems:
        console.print(f"[yellow]cleanup: {view.secrets.redact(problem)}[/yellow]")
    for path in written:
        console.print(f"report: {path}")
    style = "green" if view.conformant else "red"
    console.print(f"[bold {style}]verdict: {view.verdict} ({view.coverage})[/bold {style}]")
