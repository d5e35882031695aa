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

from retry_contract.reports.exercised import depth_text
from retry_contract.reports.model import (
    baseline_text,
    coverage_text,
    requirement_rows,
    shown_outcome,
    verdict_text,
)
from retry_contract.runner import RunResult

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
    longest, run = 0, 0
    for character in text:
        run = run + 1 if character == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _cell(result: RunResult, text: str, limit: int = _CELL_LIMIT) -> str:
    # Redacted, and cut, before it is escaped: an escaped secret (`|` → `\|`) would no longer match,
    # and a secret cut short would not match either.
    return cell(result.secrets.cut(" ".join(text.split()), limit - 3, "..."), limit)


def _marker(row: dict[str, Any]) -> str:
    return MARKERS[shown_outcome(row)]


def _first_failure(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first failure that fails the run, else the first warning, else the first known one."""
    failing = [row for row in rows if row["failures"]]
    failing.sort(key=lambda row: (bool(row["failures"][0].get("accepted")), bool(row["warning"])))
    return (failing[0], failing[0]["failures"][0]) if failing else None


def build(result: RunResult) -> str:
    rows = requirement_rows(result)
    options = result.options
    lines = [
        "## retry-contract",
        "",
        f"**Verdict: {verdict_text(result)}** ({coverage_text(result)}; exit status {int(result.exit_code)}"
        f"{'; strict: SHOULD failures fail the run' if options.strict else ''}).",
        "",
        "| Requirement | Level | Outcome | Judged | First failure / note |",
        "|---|---|---|---:|---|",
    ]
    if options.baseline is not None:
        lines[3:3] = ["", f"{_cell(result, baseline_text(result), 2000)}."]
    for row in rows:
        note = row["failures"][0]["message"] if row["failures"] else row["not_covered_reason"]
        lines.append(
            f"| {row['id']} | {row['level']} | {_marker(row)} | {row['judged']} | {_cell(result, note)} |"
        )
    first = _first_failure(rows)
    if first is not None:
        row, failure = first
        lines += [
            "",
            f"### First {'known ' if failure.get('accepted') else ''}failure: #{failure['number']}, "
            f"{row['id']} ({row['level']})",
            "",
            _cell(result, failure["message"], 2000),
        ]
        # The steps say how to recreate the state the request met, then send it; a failure seen on no
        # single request (a scenario's conclusion) has none.
        steps = failure.get("reproduce_steps") or ([failure["reproduce"]] if "reproduce" in failure else [])
        if steps:
            lines += ["", code_block(result.secrets.redact("\n".join(steps)), "text")]
    faults = result.ledger.faults
    if faults:
        lines += ["", f"### Infrastructure faults: {len(faults)} (not contract failures)", ""]
        lines += [
            f"- {_cell(result, f'{e.origin}: {e.method} {e.url}: {e.fault}')}"
            for e in faults[:_FAULTS_LISTED]
        ]
    lines += ["", "### The run", "", *(f"- {fact}" for fact in _facts(result))]
    return result.secrets.redact("\n".join(lines)) + "\n"


def _facts(result: RunResult) -> list[str]:
    options = result.options
    facts = [
        f"Target: {_cell(result, result.target)} (project {_cell(result, options.project)})",
        f"Requests sent: {result.requests_sent} ({result.fuzz.cases} generated by Schemathesis) "
        f"in {result.seconds:.1f} s, {options.concurrency} at a time",
        f"Seed: {options.seed}; {options.max_examples} examples per fuzzing phase"
        if options.fuzz
        else f"Seed: {options.seed}; no fuzzing",
        f"Exercised: {depth_text(result)}",
        f"Strict: {'yes' if options.strict else 'no'}",
        f"Spec SHA-256: {result.spec_sha256}",
        "Tools: " + ", ".join(f"{name} {version}" for name, version in sorted(result.tool_versions.items())),
    ]
    if result.stop_reason:
        facts.append(f"Stopped early: {_cell(result, result.stop_reason)}")
    facts += [f"Cleanup: {_cell(result, problem)}" for problem in result.cleanup_problems]
    return facts


def write(result: RunResult, directory: Path) -> Path:
    path = directory / FILENAME
    # Lone surrogates (from odd-value probes echoed in answers) cannot be encoded: shown escaped.
    path.write_text(build(result), encoding="utf-8", errors="backslashreplace")
    return path


def append_step_summary(result: RunResult, environ: Mapping[str, str]) -> Path | None:
    """Append the summary to GitHub's step summary file when `environ` names one; its path, or None."""
    name = environ.get(STEP_SUMMARY_ENV)
    if not name:
        return None
    path = Path(name)
    with path.open("a", encoding="utf-8", errors="backslashreplace") as summary:
        summary.write(build(result))
    return path
