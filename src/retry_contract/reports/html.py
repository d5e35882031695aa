"""One self-contained HTML page a person reads in a minute: the verdict, the requirement matrix, each
failure with its request, response and reproduction, what the run exercised, and the run's facts.

The page needs no network (inline CSS, an inline-SVG chart, no script). Jinja2 escapes every value;
secrets are replaced in the data before it is escaped, since an escaped secret (`&` → `&amp;`) would
no longer match the registry, and once more in the page as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from retry_contract.reports import exercised
from retry_contract.reports.model import (
    baseline_text,
    coverage_text,
    requirement_rows,
    shown_outcome,
    verdict_text,
)
from retry_contract.reports.replay_record import abbreviated
from retry_contract.runner import RunResult
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import ExitCode, Observation

FILENAME = "retry-contract.html"
TEMPLATE = "report.html.j2"
# The bar chart of statuses: pixels of the longest bar, and of each row.
CHART_BAR_WIDTH = 360
CHART_ROW_HEIGHT = 22

_ENVIRONMENT = Environment(
    loader=PackageLoader("retry_contract.reports", "templates"),
    autoescape=True,
    # A name the template misspells fails the tests instead of rendering as nothing.
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_TONE_OF_EXIT = {ExitCode.CONFORMANT: "pass", ExitCode.VIOLATIONS: "fail", ExitCode.COULD_NOT_RUN: "doubt"}


def anchor(requirement_id: str) -> str:
    """The id of a requirement's failures on the page (the matrix links to it)."""
    return f"failures-{requirement_id}"


def _tone_of_status(label: str) -> str:
    if label == exercised.NO_RESPONSE or label.startswith("5"):
        return "error"
    return {"2": "success", "4": "refusal"}.get(label[:1], "other")


def _chart(counts: Mapping[str, int]) -> dict[str, Any]:
    """Geometry of a horizontal bar chart, one bar per status; the template only draws it."""
    largest = max(counts.values(), default=0)
    bars = [
        {
            "label": label,
            "count": count,
            "tone": _tone_of_status(label),
            "y": index * CHART_ROW_HEIGHT,
            # A bar of one is still visible next to one of thousands.
            "width": max(2, round(count / largest * CHART_BAR_WIDTH)),
        }
        for index, (label, count) in enumerate(counts.items())
    ]
    return {"bars": bars, "height": len(bars) * CHART_ROW_HEIGHT, "bar_width": CHART_BAR_WIDTH}


def _message(first_line: str, headers: Mapping[str, str], body: bytes | None, secrets: SecretRegistry) -> str:
    """An HTTP message as it reads on the wire: first line, headers, a blank line, the body (cut)."""
    lines = [first_line, *(f"{name}: {value}" for name, value in sorted(headers.items()))]
    if body is not None:
        lines += ["", abbreviated(body.decode("utf-8", "replace"), secrets)]
    return "\n".join(lines)


def _failure(observation: Observation, data: Mapping[str, Any], secrets: SecretRegistry) -> dict[str, Any]:
    """A failure as failure_data gives it, with its exchange's request and response in full (cut to
    the length reproductions use) and what the request was built to provoke."""
    exchange = observation.exchange
    if exchange is None:
        return {**data, "has_exchange": False}
    expectation = exchange.expectation
    return {
        **data,
        "has_exchange": True,
        # As the server read it: a gzipped body is shown decompressed, and said to have been sent so.
        "request_text": _message(
            f"{exchange.method} {abbreviated(exchange.url, secrets)}",
            exchange.request_headers,
            exchange.request_content(),
            secrets,
        ),
        "request_gzipped": exchange.request_gzipped,
        "response_text": None
        if exchange.status is None
        else _message(str(exchange.status), exchange.response_headers, exchange.response_body, secrets),
        "expectation": None
        if expectation is None
        else {
            "requirement": expectation.requirement,
            "statuses": " or ".join(str(s) for s in sorted(expectation.statuses)),
            "note": expectation.note,
        },
    }


def _failure_sections(result: RunResult, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sections = []
    # requirement_rows follows the ledger's order and keeps its first failures in order.
    for row, requirement_result in zip(rows, result.ledger.results.values(), strict=True):
        if not row["failures"]:
            continue
        # In the rows' order: new failures first, then the baseline's known ones.
        observations = sorted(requirement_result.failures, key=result.accepts)[: len(row["failures"])]
        sections.append(
            {
                **row,
                "anchor": anchor(row["id"]),
                "shown": [
                    _failure(observation, data, result.secrets)
                    for observation, data in zip(observations, row["failures"], strict=True)
                ],
            }
        )
    return sections


def _matrix(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **row,
            "shown_outcome": shown_outcome(row),
            "anchor": anchor(row["id"]) if row["failures"] else None,
        }
        for row in rows
    ]


def _facts(result: RunResult) -> dict[str, Any]:
    options = result.options
    return {
        "target": result.target,
        "project": options.project,
        "spec_sha256": result.spec_sha256,
        "tool_versions": sorted(result.tool_versions.items()),
        "seed": options.seed,
        "max_examples": options.max_examples if options.fuzz else None,
        "strict": options.strict,
        "concurrency": options.concurrency,
        "seconds": round(result.seconds, 2),
        "requests_sent": result.requests_sent,
        "stop_reason": result.stop_reason,
        "phases": result.timer.as_json(),
        "faults": [
            {
                "request": f"{e.method} {abbreviated(e.url, result.secrets)}",
                "origin": e.origin,
                "fault": e.fault,
            }
            for e in result.ledger.faults
        ],
        "disagreements": len(result.ledger.disagreements),
        "notes": list(result.ledger.notes),
        "cleanup_problems": list(result.cleanup_problems),
        "fuzz_engine_errors": list(result.fuzz.errors),
    }


def _redacted(value: Any, secrets: SecretRegistry) -> Any:
    """Every string in the view with the run's secrets replaced."""
    if isinstance(value, str):
        return secrets.redact(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item, secrets) for item in value]
    return value


def build(result: RunResult) -> dict[str, Any]:
    """The page as plain data, every secret replaced."""
    rows = requirement_rows(result)
    figures = exercised.build(result)
    view = {
        "verdict": {
            "text": verdict_text(result),
            "coverage": coverage_text(result),
            "exit_code": int(result.exit_code),
            "tone": _TONE_OF_EXIT[result.exit_code],
        },
        "strict": result.options.strict,
        "seed": result.options.seed,
        "matrix": _matrix(rows),
        "failures": _failure_sections(result, rows),
        "exercised": figures,
        "chart": _chart(figures["responses_by_status"]),
        "facts": _facts(result),
        "baseline": baseline_text(result),
    }
    redacted: dict[str, Any] = _redacted(view, result.secrets)
    return redacted


def render(result: RunResult) -> str:
    page = _ENVIRONMENT.get_template(TEMPLATE).render(build(result))
    return result.secrets.redact(page)


def write(result: RunResult, directory: Path) -> Path:
    path = directory / FILENAME
    path.write_text(render(result), encoding="utf-8")
    return path
