"""Read-only questions about a detailed execution (`GET /workflows/executions/{id}`).

Written for every faithful shape a server may give (workflow-model.md point 6, and the execution
recorded from a real CDF cluster in `spec/upstream/`): `executedTasks` need not be in start order,
nested attempts may lack `parentTaskExternalId`, a dynamic container may have COMPLETED its own
attempt while its nested tasks still run, and a new attempt may be SCHEDULED before it starts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from retry_contract.domain import (
    CONTAINER_TASK_TYPES,
    PENDING_TASK_STATUSES,
    TASK_RETRIES_DEFAULT,
    OnFailure,
    TaskStatus,
    TaskType,
)
from retry_contract.exchange import brief

Detailed = Mapping[str, Any]
Attempt = Mapping[str, Any]


def text_at(node: Mapping[str, Any], key: str) -> str | None:
    """`node[key]` when it is a string: any other value a server sent (an object, a number) names no
    status or type, and may be unhashable, so it is never looked up among them."""
    value = node.get(key)
    return value if isinstance(value, str) else None


def attempts(detailed: Detailed) -> list[Attempt]:
    tasks = detailed.get("executedTasks")
    return [t for t in tasks if isinstance(t, Mapping)] if isinstance(tasks, list) else []


def attempt_counts(detailed: Detailed) -> Counter[str]:
    return Counter(str(t.get("externalId")) for t in attempts(detailed))


def _start_order(indexed: tuple[int, Attempt]) -> tuple[float | int, int]:
    """Attempts by start time; one that has not started (SCHEDULED, no startTime) is the newest, unless
    it ended without starting (cancelled while SCHEDULED): then it stands where it ended, before any
    attempt started after it. Position in the list breaks ties: it is the only order left when times
    are equal or missing."""
    index, attempt = indexed
    started, ended = attempt.get("startTime"), attempt.get("endTime")
    # Compared as they are: an integer of any size, never converted to a float that may overflow.
    if isinstance(started, int):
        return (started, index)
    return (ended if isinstance(ended, int) else math.inf, index)


def in_start_order(found: list[Attempt]) -> list[Attempt]:
    return [attempt for _, attempt in sorted(enumerate(found), key=_start_order)]


def latest(detailed: Detailed) -> dict[str, Attempt]:
    """The latest attempt of each task: the one started last, whatever the list order."""
    found: dict[str, Attempt] = {}
    for attempt in in_start_order(attempts(detailed)):
        found[str(attempt.get("externalId"))] = attempt
    return found


def in_progress(detailed: Detailed, external_id: str | None = None) -> list[Attempt]:
    """Attempts a client can end through task update now (a SCHEDULED one cannot be yet)."""
    return [
        t
        for t in in_start_order(attempts(detailed))
        if t.get("status") == TaskStatus.IN_PROGRESS
        and (external_id is None or t.get("externalId") == external_id)
    ]


def pending(detailed: Detailed) -> list[Attempt]:
    """Attempts that have not ended: SCHEDULED or IN_PROGRESS."""
    return [t for t in attempts(detailed) if text_at(t, "status") in PENDING_TASK_STATUSES]


def added_attempts(before: Detailed, after: Detailed) -> dict[str, list[Attempt]]:
    """The attempts each task gained between two readings, in start order.

    By attempt id when every attempt has one (a server may list attempts in any order); by count
    otherwise.
    """
    old, new = attempts(before), attempts(after)
    gained: dict[str, list[Attempt]] = {}
    if all(isinstance(a.get("id"), str) for a in (*old, *new)):
        known = {a["id"] for a in old}
        for attempt in in_start_order([a for a in new if a["id"] not in known]):
            gained.setdefault(str(attempt.get("externalId")), []).append(attempt)
        return gained
    surplus = attempt_counts(after)
    surplus.subtract(attempt_counts(before))
    for name, count in (+surplus).items():
        gained[name] = [a for a in in_start_order(new) if a.get("externalId") == name][-count:]
    return gained


def new_attempts(before: Detailed, after: Detailed) -> Counter[str]:
    """How many attempts each task gained between two readings."""
    return Counter({name: len(found) for name, found in added_attempts(before, after).items()})


def changes(before: Detailed, after: Detailed) -> list[str]:
    """What changed between two readings that a refused request must not change: status and attempts."""
    problems = []
    if after.get("status") != before.get("status"):
        problems.append(f"status changed {brief(before.get('status'))} -> {brief(after.get('status'))}")
    gained = new_attempts(before, after)
    if gained:
        problems.append(f"new task attempts {brief(dict(gained))}")
    return problems


def _nested_definitions(task: Mapping[str, Any]) -> Any:
    parameters = task.get("parameters")
    if not isinstance(parameters, Mapping):
        return None
    subworkflow = parameters.get("subworkflow")
    return subworkflow.get("tasks") if isinstance(subworkflow, Mapping) else None


def _walk(tasks: Any, parent: str | None) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    for task in tasks if isinstance(tasks, list) else []:
        if isinstance(task, Mapping):
            yield task, parent
            yield from _walk(_nested_definitions(task), str(task.get("externalId")))


def _resolved_dynamic_tasks(attempt: Attempt) -> Any:
    """What a dynamic task resolved to, as its attempt's input shows it (`{"dynamic": {"tasks": [...]}}`)."""
    task_input = attempt.get("input")
    dynamic = task_input.get("dynamic") if isinstance(task_input, Mapping) else None
    return dynamic.get("tasks") if isinstance(dynamic, Mapping) else None


def _definitions_with_parents(detailed: Detailed) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    """Every task definition with its container: the workflowDefinition's, subworkflows included, and
    the nested tasks of dynamic tasks as their attempts' input shows them once resolved."""
    definition = detailed.get("workflowDefinition")
    yield from _walk(definition.get("tasks") if isinstance(definition, Mapping) else None, None)
    for attempt in attempts(detailed):
        if attempt.get("taskType") == TaskType.DYNAMIC:
            yield from _walk(_resolved_dynamic_tasks(attempt), str(attempt.get("externalId")))


def task_definitions(detailed: Detailed) -> dict[str, Mapping[str, Any]]:
    """Every task of the execution by externalId: top level, subworkflow and resolved dynamic tasks."""
    return {str(task.get("externalId")): task for task, _ in _definitions_with_parents(detailed)}


def parents(detailed: Detailed) -> dict[str, str]:
    """The container of each nested task: from the definitions, or `parentTaskExternalId` where given."""
    found = {str(t.get("externalId")): p for t, p in _definitions_with_parents(detailed) if p is not None}
    for attempt in attempts(detailed):
        parent = attempt.get("parentTaskExternalId")
        if isinstance(parent, str) and parent:
            found.setdefault(str(attempt.get("externalId")), parent)
    return found


def container_tasks(detailed: Detailed) -> set[str]:
    """Subworkflow and dynamic tasks, from the definitions, the attempts and the nesting."""
    from_definition = {
        name
        for name, task in task_definitions(detailed).items()
        if text_at(task, "type") in CONTAINER_TASK_TYPES
    }
    from_attempts = {
        str(t.get("externalId")) for t in attempts(detailed) if text_at(t, "taskType") in CONTAINER_TASK_TYPES
    }
    return from_definition | from_attempts | set(parents(detailed).values())


def optional_tasks(detailed: Detailed) -> set[str]:
    return {
        name
        for name, task in task_definitions(detailed).items()
        if task.get("onFailure") == OnFailure.SKIP_TASK
    }


def inside(detailed: Detailed, containers: set[str]) -> set[str]:
    """Tasks nested, at any depth, in one of `containers`."""
    nesting = parents(detailed)

    def ancestors(name: str) -> Iterator[str]:
        seen: set[str] = set()
        while name in nesting and name not in seen:
            seen.add(name)
            name = nesting[name]
            yield name

    return {name for name in nesting if any(a in containers for a in ancestors(name))}


def retries_allowed(detailed: Detailed, external_id: str) -> int:
    task = task_definitions(detailed).get(external_id, {})
    retries = task.get("retries", TASK_RETRIES_DEFAULT)
    return retries if isinstance(retries, int) and not isinstance(retries, bool) else TASK_RETRIES_DEFAULT


def is_async_complete(detailed: Detailed, external_id: str) -> bool:
    """Whether a task waits for a client's task update (the attempt input spells it `asyncComplete`)."""
    parameters = task_definitions(detailed).get(external_id, {}).get("parameters")
    return isinstance(parameters, Mapping) and bool(
        parameters.get("isAsyncComplete", parameters.get("asyncComplete"))
    )


def dependencies(detailed: Detailed, external_id: str) -> list[str]:
    depends_on = task_definitions(detailed).get(external_id, {}).get("dependsOn")
    return [
        str(d.get("externalId"))
        for d in (depends_on if isinstance(depends_on, list) else [])
        if isinstance(d, Mapping) and d.get("externalId")
    ]
