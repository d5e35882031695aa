"""The machine-readable report: verdict, per-requirement results, reproductions, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retry_contract.reports.model import ReportView

FILENAME = "retry-contract.json"
# Raised when a field is removed or changes its meaning or type; adding a field keeps it.
SCHEMA_VERSION = "1"
# The published JSON Schema of this report (also in the wheel): a self-test checks reports against it.
SCHEMA = Path(__file__).parent / "schema" / "retry-contract-report.schema.json"


def build(view: ReportView) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": view.verdict,
        "must_requirements_judged": view.coverage,
        "exit_code": int(view.exit_code),
        "strict": view.strict,
        "target": view.target,
        "project": view.project,
        "seed": view.seed,
        "max_examples": view.max_examples,
        "spec_sha256": view.spec_sha256,
        "tool_versions": dict(view.tool_versions),
        "seconds": round(view.seconds, 2),
        "concurrency": view.concurrency,
        "phases": view.phases,
        "requests_sent": view.requests_sent,
        "stopped_early": view.stopped_early or None,
        "incomplete": view.incomplete or None,
        "infrastructure_faults": [
            {"request": f"{fault.method} {fault.url}", "origin": fault.origin, "fault": fault.fault}
            for fault in view.faults
        ],
        "successful_retries_by_fixture_shape": view.successful_retries_by_fixture_shape,
        "fuzzing": {
            "cases": view.fuzzing.cases,
            "steered_to_retryable_executions": view.fuzzing.steered,
            "successful_retries": view.fuzzing.successes,
            "engine_errors": view.fuzzing.errors,
        },
        "exercised": view.exercised,
        "requirements": view.rows,
        "validator_disagreements": [
            {
                "request": d.request,
                "status": d.status,
                "schemathesis": d.schemathesis,
                "openapi_core": d.openapi_core,
                "reproduce": d.reproduce,
            }
            for d in view.disagreements
        ],
        "cleanup_problems": list(view.cleanup_problems),
        "notes": list(view.notes),
        "baseline": view.baseline,
    }


def write(view: ReportView, directory: Path) -> Path:
    path = directory / FILENAME
    text = json.dumps(build(view), indent=2, ensure_ascii=False)
    path.write_text(view.secrets.redact(text) + "\n", encoding="utf-8")
    return path
