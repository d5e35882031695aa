"""Read-only questions about a detailed execution (`GET /workflows/executions/{id}`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from retry_contract.domain import TaskStatus

Detailed = Mapping[str, Any]


def attempts(detailed: Detailed) -> list[Mapping[str, Any]]:
    tasks = detailed.get("executedTasks")
    return [t for t in tasks if isinstance(t, Mapping)] if isinstance(tasks, list) else []


def attempt_counts(detailed: Detailed) -> Counter[str]:
    return Counter(str(t.get("externalId")) for t in attempts(detailed))


def latest(detailed: Detailed) -> dict[str, Mapping[str, Any]]:
    """The latest attempt of each task: its last entry with that externalId."""
    found: dict[str, Mapping[str, Any]] = {}
    for attempt in attempts(detailed):
        found[str(attempt.get("externalId"))] = attempt
    return found


def in_progress(detailed: Detailed, external_id: str | None = None) -> list[Mapping[str, Any]]:
    return [
        t
        for t in attempts(detailed)
        if t.get("status") == TaskStatus.IN_PROGRESS
        and (external_id is None or t.get("externalId") == external_id)
    ]


def new_attempts(before: Detailed, after: Detailed) -> Counter[str]:
    """How many attempts each task gained between two readings."""
    gained = attempt_counts(after)
    gained.subtract(attempt_counts(before))
    return +gained
