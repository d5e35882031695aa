"""Read-only questions about a detailed execution (`GET /workflows/executions/{id}`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from retry_contract.domain import CONTAINER_TASK_TYPES, OnFailure, TaskStatus

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


def _definitions(tasks: Any) -> Iterator[Mapping[str, Any]]:
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, Mapping):
            continue
        yield task
        parameters = task.get("parameters")
        nested = parameters.get("subworkflow", {}).get("tasks") if isinstance(parameters, Mapping) else None
        yield from _definitions(nested)


def task_definitions(detailed: Detailed) -> dict[str, Mapping[str, Any]]:
    """Every task of the execution's `workflowDefinition`, subworkflow tasks included, by externalId."""
    definition = detailed.get("workflowDefinition")
    tasks = definition.get("tasks") if isinstance(definition, Mapping) else None
    return {str(task.get("externalId")): task for task in _definitions(tasks)}


def optional_tasks(detailed: Detailed) -> set[str]:
    return {
        name
        for name, task in task_definitions(detailed).items()
        if task.get("onFailure") == OnFailure.SKIP_TASK
    }


def container_tasks(detailed: Detailed) -> set[str]:
    """Subworkflow and dynamic tasks, from the definition or, for resolved dynamic tasks, the attempts."""
    from_definition = {
        n for n, t in task_definitions(detailed).items() if t.get("type") in CONTAINER_TASK_TYPES
    }
    from_attempts = {
        str(t.get("parentTaskExternalId")) for t in attempts(detailed) if t.get("parentTaskExternalId")
    }
    return from_definition | from_attempts
