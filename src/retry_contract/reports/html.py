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
from retry_contract.reports.model import FailureCard, ReportView, shown_outcome
from retry_contract.reports.replay_record import abbreviated
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


def _card(card: FailureCard, secrets: SecretRegistry) -> dict[str, Any]:
    """A card as the page shows it: its lead failure with the exchange in full, the other failures
    found on the same request and response, and the command that replays it."""
    return {
        **_failure(card.observations[0], card.lead, secrets),
        "others": list(card.failures[1:]),
        "requirements": card.requirements,
        "replay_command": card.replay,
    }


def _failure_sections(view: ReportView) -> list[dict[str, Any]]:
    """One section per failed requirement, with its failures: a failure that leads its card shows the
    card; one found on a request and response shown already points at that card."""
    sections = []
    for row in view.rows:
        if not row["failures"]:
            continue
        shown = []
        for failure in row["failures"]:
            card = view.card_of(failure["number"])
            if card.number == failure["number"]:
                shown.append({**_card(card, view.secrets), "is_card": True})
            else:
                shown.append({**failure, "is_card": False, "card": card.number})
        sections.append({**row, "anchor": anchor(row["id"]), "shown": shown})
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


def _facts(view: ReportView) -> dict[str, Any]:
    return {
        "target": view.target,
        "project": view.project,
        "spec_sha256": view.spec_sha256,
        "tool_versions": sorted(view.tool_versions.items()),
        "seed": view.seed,
        "max_examples": view.max_examples if view.fuzz else None,
        "strict": view.strict,
        "concurrency": view.concurrency,
        "seconds": round(view.seconds, 2),
        "requests_sent": view.requests_sent,
        "stopped_early": view.stopped_early,
        "phases": view.phases,
        "faults": [
            {
                "request": f"{e.method} {abbreviated(e.url, view.secrets)}",
                "origin": e.origin,
                "fault": e.fault,
            }
            for e in view.faults
        ],
        "disagreements": len(view.disagreements),
        "notes": list(view.notes),
        "cleanup_problems": list(view.cleanup_problems),
        "fuzz_engine_errors": list(view.fuzzing.errors),
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


def build(view: ReportView) -> dict[str, Any]:
    """The page as plain data, every secret replaced."""
    figures = view.exercised
    page = {
        "verdict": {
            "text": view.verdict,
            "coverage": view.coverage,
            "exit_code": int(view.exit_code),
            "tone": _TONE_OF_EXIT[view.exit_code],
        },
        "baseline": view.baseline_text,
        "strict": view.strict,
        "seed": view.seed,
        "matrix": _matrix(view.rows),
        "failures": _failure_sections(view),
        "exercised": figures,
        "chart": _chart(figures["responses_by_status"]),
        "facts": _facts(view),
    }
    redacted: dict[str, Any] = _redacted(page, view.secrets)
    return redacted


def render(view: ReportView) -> str:
    page = _ENVIRONMENT.get_template(TEMPLATE).render(build(view))
    return view.secrets.redact(page)


def write(view: ReportView, directory: Path) -> Path:
    path = directory / FILENAME
    path.write_text(render(view), encoding="utf-8")
    return path
