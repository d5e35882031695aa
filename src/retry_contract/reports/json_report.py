"""The machine-readable report: verdict, per-requirement results, reproductions, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retry_contract.reports import exercised
from retry_contract.reports.curl_script import curl
from retry_contract.reports.model import accepted_count, coverage_text, requirement_rows, verdict_text
from retry_contract.runner import RunResult

FILENAME = "retry-contract.json"
# Raised when a field is removed or changes its meaning or type; adding a field keeps it.
SCHEMA_VERSION = "1"
# The published JSON Schema of this report (also in the wheel): a self-test checks reports against it.
SCHEMA = Path(__file__).parent / "schema" / "retry-contract-report.schema.json"


def build(result: RunResult) -> dict[str, Any]:
    options = result.options
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict_text(result),
        "must_requirements_judged": coverage_text(result),
        "exit_code": int(result.exit_code),
        "strict": options.strict,
        "target": result.target,
        "project": options.project,
        "seed": options.seed,
        "max_examples": options.max_examples,
        "spec_sha256": result.spec_sha256,
        "tool_versions": result.tool_versions,
        "seconds": round(result.seconds, 2),
        "concurrency": options.concurrency,
        "phases": result.timer.as_json(),
        "requests_sent": result.requests_sent,
        "stopped_early": result.stop_reason or None,
        "incomplete": result.incomplete or None,
        "infrastructure_faults": [
            {"request": f"{e.method} {e.url}", "origin": e.origin, "fault": e.fault}
            for e in result.ledger.faults
        ],
        "successful_retries_by_fixture_shape": dict(sorted(result.fixture_shapes_retried.items())),
        "fuzzing": {
            "cases": result.fuzz.cases,
            "steered_to_retryable_executions": result.fuzz.steered,
            "successful_retries": result.fuzz.successes,
            "engine_errors": result.fuzz.errors,
        },
        "exercised": exercised.build(result),
        "requirements": requirement_rows(result),
        "validator_disagreements": [
            {
                "request": f"{d.exchange.method} {d.exchange.url}",
                "status": d.exchange.status,
                "schemathesis": d.schemathesis_says,
                "openapi_core": d.openapi_core_says,
                "reproduce": curl(d.exchange, result.secrets),
            }
            for d in result.ledger.disagreements
        ],
        "cleanup_problems": result.cleanup_problems,
        "notes": result.ledger.notes,
        "baseline": _baseline(result),
    }


def _baseline(result: RunResult) -> dict[str, Any] | None:
    """The known failures given (`--baseline`): how many findings were new and how many known, and
    the entries nothing matched (fixed since: the file may drop them)."""
    baseline = result.options.baseline
    if baseline is None:
        return None
    failures = [failure for row in result.ledger.results.values() for failure in row.failures]
    accepted = accepted_count(result)
    return {
        "source": baseline.source,
        "entries": len(baseline.entries),
        "new_findings": len(failures) - accepted,
        "accepted_findings": accepted,
        "unmatched_entries": [entry.describe() for entry in baseline.unmatched(failures)],
    }


def write(result: RunResult, directory: Path) -> Path:
    path = directory / FILENAME
    text = json.dumps(build(result), indent=2, ensure_ascii=False)
    path.write_text(result.secrets.redact(text) + "\n", encoding="utf-8")
    return path
