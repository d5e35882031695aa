"""What a run exercised, as plain data: the answers its verdict rests on, the forms its requests went
out in, the fixture shapes it retried and the cases it generated.

A verdict of "conformant" is only as strong as what was sent; these figures let a reader see whether,
say, a requirement was only ever judged on 404s, or no negative case was generated at all.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from retry_contract.fixture_values import fixture_shapes
from retry_contract.results import RunResult

# How a judged exchange that never got a response is counted among the statuses.
NO_RESPONSE = "no response"


def status_label(status: int | None) -> str:
    return NO_RESPONSE if status is None else str(status)


def by_status(statuses: Counter[int | None]) -> dict[str, int]:
    """Counts keyed by status, in numeric order, with exchanges that got no response last."""
    ordered = sorted(statuses.items(), key=lambda item: (item[0] is None, item[0] or 0))
    return {status_label(status): count for status, count in ordered if count}


def build(result: RunResult) -> dict[str, Any]:
    ledger = result.ledger
    return {
        # Every judged exchange once, whatever it was judged for.
        "responses_by_status": by_status(ledger.statuses),
        # Requirement by requirement, in the catalogue's order; empty for one nothing was judged for.
        "statuses_by_requirement": {
            requirement_id: by_status(requirement_result.statuses)
            for requirement_id, requirement_result in ledger.results.items()
        },
        "request_forms": dict(sorted(ledger.request_forms.items())),
        "successful_retries_by_fixture_shape": dict(sorted(result.fixture_shapes_retried.items())),
        "fixture_values": fixture_values(result),
        "fixtures": len(fixture_shapes(result.options.seed)),
        "sequences": result.exploration.as_record(),
        "fuzz_cases": {
            "positive": result.fuzz.positive,
            "negative": result.fuzz.negative,
            "all": result.fuzz.cases,
        },
    }


def fixture_values(result: RunResult) -> list[dict[str, Any]]:
    """Every fixture the run provisioned from, in its cycle's order, with the exact values its
    executions were run with (drawn again from the run's seed: the same seed, the same values)."""
    return [
        {**shape.as_record(), "successful_retries": result.fixture_shapes_retried.get(shape.label, 0)}
        for shape in fixture_shapes(result.options.seed)
    ]


def depth_text(result: RunResult) -> str:
    """How deep the run went, in one line: fixtures, generated sequences and their task graphs."""
    stats = result.exploration
    return (
        f"{len(fixture_shapes(result.options.seed))} fixtures, {stats.sequences} generated sequences "
        f"({stats.steps} steps) on {len(stats.task_graphs)} distinct task graphs"
        + (f", {stats.shrink_runs} more run while shrinking" if stats.shrink_runs else "")
    )
