"""A Markdown summary for people reading CI: the verdict, a table of the requirements, how to reproduce
the first failure, and the run's facts.

GitHub Actions shows what a step appends to the file named by GITHUB_STEP_SUMMARY on the run's page;
`append_step_summary` appends this summary there (appends: other steps' summaries stay).
Outcomes are plain words, not emoji, so the table reads the same in a terminal, a log and a screen reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retry_contract.reports.model import FailureCard, ReportView, shown_outcome

FILENAME = "retry-contract-summary.md"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
MARKERS = {
    "passed": "PASS",
    "failed": "FAIL",
    "warning": "WARN",
    "not covered": "NOT COVERED",
    "accepted": "KNOWN",
}
# A table cell shows this much of a message; the JSON and HTML reports have the rest.
_CELL_LIMIT = 200
_FAULTS_LISTED = 5
_REPLAYS_LISTED = 50


def cell(text: str, limit: int = _CELL_LIMIT) -> str:
    """`text` as one table cell: on one line, with what would end the cell or open HTML escaped."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    # Backslash escapes (CommonMark's, for any ASCII punctuation) rather than entities: they read
    # well in the file too. `|` would end the cell, `<` open HTML, `&` start an entity.
    for raw in ("\\", "|", "<", "&"):
        flat = flat.replace(raw, f"\\{raw}")
    return flat


def code_block(text: str, language: str = "") -> str:
    """A fenced block no backtick run inside `text` can close early."""
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def code_span(text: str) -> str:
    """Inline code no backtick run inside `text` can close early."""
    fence = "`" * (_longest_backtick_run(text) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _longest_backtick_run(text: str) -> int:
    longest, run = 0, 0
    for character in text:
        run = run + 1 if character == "`" else 0
        longest = max(longest, run)
    return longest


def _cell(view: ReportView, text: str, limit: int = _CELL_LIMIT) -> str:
    # Redacted, and cut, before it is escaped: an escaped secret (`|` → `\|`) would no longer match,
    # and a secret cut short would not match either.
    return cell(view.secrets.cut(" ".join(text.split()), limit - 3, "..."), limit)


def _marker(row: dict[str, Any]) -> str:
    return MARKERS[shown_outcome(row)]


def _first_card(view: ReportView) -> FailureCard | None:
    """The first card with a failure that fails the run, else the first warning, else the first known one."""
    warnings = {row["id"] for row in view.rows if row["warning"]}

    def rank(card: FailureCard) -> tuple[bool, bool]:
        fails_the_run = any(not f["accepted"] and f["requirement"] not in warnings for f in card.failures)
        return (all(f["accepted"] for f in card.failures), not fails_the_run)

    return min(view.cards, key=rank, default=None)


def build(view: ReportView) -> str:
    lines = [
        "## retry-contract",
        "",
        f"**Verdict: {view.verdict}** ({view.coverage}; exit status {int(view.exit_code)}"
        f"{'; strict: SHOULD failures fail the run' if view.strict else ''}).",
        "",
        "| Requirement | Level | Outcome | Judged | First failure / note |",
        "|---|---|---|---:|---|",
    ]
    if view.baseline_text:
        lines[3:3] = ["", f"{_cell(view, view.baseline_text, 2000)}."]
    for row in view.rows:
        note = row["failures"][0]["message"] if row["failures"] else row["not_covered_reason"]
        lines.append(
            f"| {row['id']} | {row['level']} | {_marker(row)} | {row['judged']} | {_cell(view, note)} |"
        )
    card = _first_card(view)
    if card is not None:
        failure = card.lead
        known = "known " if all(f["accepted"] for f in card.failures) else ""
        lines += ["", f"### First {known}failure: #{failure['number']}, {_requirements(card)}", ""]
        # One card per request and response: every requirement it failed, each with its message.
        lines += [
            f"- {f['requirement']} (#{f['number']}): {_cell(view, f['message'], 2000)}" for f in card.failures
        ]
        # The steps say how to recreate the state the request met, then send it; a failure seen on no
        # single request (a scenario's conclusion) has none.
        steps = failure.get("reproduce_steps") or ([failure["reproduce"]] if "reproduce" in failure else [])
        if steps:
            lines += ["", code_block(view.secrets.redact("\n".join(steps)), "text")]
        if card.replay:
            lines += ["", "Send it again, judged the same way:", "", code_block(card.replay, "text")]
    others = [other for other in view.cards if other is not card and other.replay]
    if others:
        lines += ["", "### Every other failure, and the command that replays it", ""]
        lines += [
            f"- #{other.number} {', '.join(other.requirements)}: {code_span(other.replay or '')}"
            for other in others[:_REPLAYS_LISTED]
        ]
        if len(others) > _REPLAYS_LISTED:
            lines.append(f"- ... and {len(others) - _REPLAYS_LISTED} more in the HTML report")
    if view.faults:
        lines += ["", f"### Infrastructure faults: {len(view.faults)} (not contract failures)", ""]
        lines += [
            f"- {_cell(view, f'{e.origin}: {e.method} {e.url}: {e.fault}')}"
            for e in view.faults[:_FAULTS_LISTED]
        ]
    lines += ["", "### The run", "", *(f"- {fact}" for fact in _facts(view))]
    return view.secrets.redact("\n".join(lines)) + "\n"


def _requirements(card: FailureCard) -> str:
    levels = {f["requirement"]: f["level"] for f in card.failures}
    return ", ".join(f"{requirement} ({levels[requirement]})" for requirement in card.requirements)


def _facts(view: ReportView) -> list[str]:
    facts = [
        f"Target: {_cell(view, view.target)} (project {_cell(view, view.project)})",
        f"Requests sent: {view.requests_sent} ({view.fuzzing.cases} generated by Schemathesis) "
        f"in {view.seconds:.1f} s, {view.concurrency} at a time",
        f"Seed: {view.seed}; {view.max_examples} examples per fuzzing phase"
        if view.fuzz
        else f"Seed: {view.seed}; no fuzzing",
        f"Exercised: {view.depth}",
        f"Strict: {'yes' if view.strict else 'no'}",
        f"Spec SHA-256: {view.spec_sha256}",
        "Tools: " + ", ".join(f"{name} {version}" for name, version in sorted(view.tool_versions.items())),
    ]
    if view.stopped_early:
        facts.append(f"Stopped early: {_cell(view, view.stopped_early)}")
    facts += [f"Cleanup: {_cell(view, problem)}" for problem in view.cleanup_problems]
    return facts


def write(view: ReportView, directory: Path) -> Path:
    path = directory / FILENAME
    # Lone surrogates (from odd-value probes echoed in answers) cannot be encoded: shown escaped.
    path.write_text(build(view), encoding="utf-8", errors="backslashreplace")
    return path


def append_step_summary(view: ReportView, environ: Mapping[str, str]) -> Path | None:
    """Append the summary to GitHub's step summary file when `environ` names one; its path, or None."""
    name = environ.get(STEP_SUMMARY_ENV)
    if not name:
        return None
    path = Path(name)
    with path.open("a", encoding="utf-8", errors="backslashreplace") as summary:
        summary.write(build(view))
    return path
