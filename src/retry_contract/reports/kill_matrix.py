"""The kill matrix's reports: kill-matrix.json (which `retry-contract mutants-merge` reads back) and
kill-matrix.md, both written from one MatrixView (`defect_matrix.matrix_view`)."""

from __future__ import annotations

import json
from pathlib import Path

from retry_contract.results import SHARD_KEY, MatrixRow, MatrixView

MARKDOWN = "kill-matrix.md"
JSON = "kill-matrix.json"


def build_json(view: MatrixView) -> dict[str, object]:
    document: dict[str, object] = {"summary": view.summary, "outcomes": [row.record for row in view.rows]}
    if view.shard is not None:
        document[SHARD_KEY] = view.shard.record
    return document


def build_markdown(view: MatrixView) -> str:
    summary, shard = view.summary, view.shard
    heading = ["# Kill matrix", ""]
    if shard is not None:
        heading = [
            f"# Kill matrix, shard {shard.index} of {shard.count}",
            "",
            f"{shard.runs} of the matrix's {shard.matrix_runs} runs; `retry-contract mutants-merge` "
            "puts the shards' kill-matrix.json together into the whole matrix.",
            "",
        ]
    lines = [
        *heading,
        f"{summary['caught']} of {summary['defects']} defects caught, "
        f"{summary['caught_by_own_check']} by the check of the requirement they break; "
        "false alarms on the faithful mock: "
        f"{summary['false_alarms_on_faithful'] or 'none'}. Seed {summary['seed']}, "
        f"{summary['max_examples']} examples per phase, {summary.get('explore', 0)} generated sequences, "
        f"fail-fast {summary['fail_fast']}; "
        f"{summary['wall_seconds']} s wall clock, {summary['requests_total']} requests.",
        "",
        "| defect | breaks | caught | by own check | failed requirements (failed judgements) | requests "
        "| seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_table_row(row) for row in view.rows]
    lines += ["", "Descriptions:", ""]
    lines += [
        f"- `{row.record['defect']}`: {row.record['description']}" for row in view.rows if not row.faithful
    ]
    return "\n".join(lines) + "\n"


def _table_row(row: MatrixRow) -> str:
    record = row.record
    error = record["error"]
    caught = "error" if error else ("—" if row.faithful else ("yes" if record["caught"] else "**MISSED**"))
    own = "—" if row.faithful else ("yes" if record["caught_by_own_check"] else "no")
    counts = record["failures_by_requirement"]
    failed_requirements = [*record["failed_must"], *record["failed_should"]]
    failed = ", ".join(f"{r} ({counts.get(r, 1)})" for r in failed_requirements) or (
        "none" if error is None else str(error)
    )
    return (
        f"| `{record['defect']}` | {', '.join(record['breaks']) or '—'} | {caught} | {own} | {failed} "
        f"| {record['requests']} | {record['seconds']:.1f} |"
    )


def write(view: MatrixView, directory: Path) -> list[Path]:
    """Write kill-matrix.md and kill-matrix.json into `directory`; their paths, in that order."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / JSON
    json_path.write_text(json.dumps(build_json(view), indent=2) + "\n")
    md_path = directory / MARKDOWN
    md_path.write_text(build_markdown(view))
    return [md_path, json_path]
