"""The records the mock keeps: workflows, versions, executions and their task attempts.

Plain data with a few lookups; the rules that move an execution along live in `engine.py`, and
the locking and the indexes across executions in `store.py`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdf_workflows_mock.cdf import (
    COMPLETED_TASK_STATUSES,
    CONTAINER_TASK_TYPES,
    PENDING_TASK_STATUSES,
    ExecutionStatus,
    OnFailure,
    TaskStatus,
    TaskType,
)
from cdf_workflows_mock.config import ServerShape

JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TaskDef:
    """One task of a workflow definition, normalised (defaults filled in)."""

    external_id: str
    task_type: TaskType
    # The parameters as given, minus the nested tasks of a subworkflow (kept in `subtasks`).
    parameters: Mapping[str, Any]
    retries: int
    timeout: int
    on_failure: OnFailure
    depends_on: tuple[str, ...] = ()
    name: str | None = None
    description: str | None = None
    is_async_complete: bool = False
    subtasks: tuple[TaskDef, ...] = ()
    # `${<task>.output....}` of a dynamic task: its nested tasks exist only once this resolves.
    dynamic_reference: str | None = None

    @property
    def is_container(self) -> bool:
        return self.task_type in CONTAINER_TASK_TYPES

    @property
    def is_optional(self) -> bool:
        return self.on_failure is OnFailure.SKIP_TASK

    def parameters_json(self) -> JSONObject:
        params = copy.deepcopy(dict(self.parameters))
        if self.task_type is TaskType.SUBWORKFLOW:
            params["subworkflow"] = {"tasks": [task.to_json() for task in self.subtasks]}
        return params

    def to_json(self) -> JSONObject:
        """The task as the API echoes it in a workflow definition."""
        out: JSONObject = {
            "externalId": self.external_id,
            "type": self.task_type.value,
            "parameters": self.parameters_json(),
            "retries": self.retries,
            "timeout": self.timeout,
            "onFailure": self.on_failure.value,
            "dependsOn": [{"externalId": dep} for dep in self.depends_on],
        }
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    tasks: tuple[TaskDef, ...]
    description: str | None
    hash: str

    def to_json(self) -> JSONObject:
        out: JSONObject = {"hash": self.hash, "tasks": [task.to_json() for task in self.tasks]}
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(slots=True)
class WorkflowRecord:
    external_id: str
    created_time: int
    last_updated_time: int
    description: str | None = None
    data_set_id: int | None = None
    max_concurrent_executions: int | None = None
    versions: dict[str, VersionRecord] = field(default_factory=dict)


@dataclass(slots=True)
class VersionRecord:
    workflow_external_id: str
    version: str
    definition: WorkflowDefinition
    created_time: int
    last_updated_time: int


@dataclass(slots=True)
class Attempt:
    """One entry of `executedTasks`: a single try of a task.

    A SCHEDULED attempt has not started: `start_time` is None until the clock reaches `due_time`.
    """

    id: str
    task: TaskDef
    parent: str | None
    status: TaskStatus
    input: JSONObject
    output: JSONObject
    start_time: int | None
    end_time: int | None = None
    reason: str | None = None
    due_time: int | None = None

    @property
    def external_id(self) -> str:
        return self.task.external_id


@dataclass(slots=True)
class Execution:
    id: str
    project: str
    workflow_external_id: str
    version: str
    engine_execution_id: str
    created_time: int
    start_time: int
    definition: WorkflowDefinition
    metadata: dict[str, str]
    input: JSONObject | None
    # The shape of the server that runs it (MockConfig.profile), fixed for the execution's life.
    shape: ServerShape
    status: ExecutionStatus = ExecutionStatus.RUNNING
    end_time: int | None = None
    reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    # Every task that can run in this execution by externalId, and the container it sits in.
    tasks: dict[str, TaskDef] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    # Nested tasks of dynamic containers, known once their reference resolved.
    resolved_dynamic: dict[str, tuple[TaskDef, ...]] = field(default_factory=dict)
    _by_task: dict[str, list[Attempt]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.register_tasks(self.definition.tasks, None)

    def register_tasks(self, tasks: tuple[TaskDef, ...], parent: str | None) -> None:
        for task in tasks:
            self.tasks[task.external_id] = task
            self.parents[task.external_id] = parent
            self.register_tasks(task.subtasks, task.external_id)

    def add_attempt(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        self._by_task.setdefault(attempt.external_id, []).append(attempt)

    def latest(self, external_id: str) -> Attempt | None:
        attempts = self._by_task.get(external_id)
        return attempts[-1] if attempts else None

    def attempt_count(self, external_id: str) -> int:
        return len(self._by_task.get(external_id, ()))

    def nested_tasks(self, container: TaskDef) -> tuple[TaskDef, ...] | None:
        """The tasks inside a container; None for a dynamic task not resolved yet."""
        if container.task_type is TaskType.SUBWORKFLOW:
            return container.subtasks
        return self.resolved_dynamic.get(container.external_id)

    def scope_tasks(self, container: str | None) -> tuple[TaskDef, ...]:
        if container is None:
            return self.definition.tasks
        return self.nested_tasks(self.tasks[container]) or ()

    def is_done(self, task: TaskDef) -> bool:
        """Whether the task no longer holds its dependants or its scope back.

        An optional task that ended in any way (even CANCELED and left alone by a retry) is done:
        `skipTask` means the workflow goes on without it. A container is done only with its nested
        tasks, also when its own attempt ended before them (`is_detached`).
        """
        latest = self.latest(task.external_id)
        if latest is None or self.is_detached(task):
            return False
        if latest.status in COMPLETED_TASK_STATUSES:
            return True
        return task.is_optional and latest.status not in PENDING_TASK_STATUSES

    def is_detached(self, task: TaskDef) -> bool:
        """Whether the container's own attempt COMPLETED while its nested tasks are not all done.

        That is how a server that closes a dynamic container once it has spawned its nested tasks
        (`ServerShape.dynamic_completes_on_spawn`) looks; a container that ends with its nested
        tasks is never detached.
        """
        if not task.is_container:
            return False
        latest = self.latest(task.external_id)
        return (
            latest is not None
            and latest.status is TaskStatus.COMPLETED
            and not all(self.is_done(child) for child in self.scope_tasks(task.external_id))
        )

    def descendants(self, container: str) -> Iterator[TaskDef]:
        for task in self.scope_tasks(container):
            yield task
            if task.is_container:
                yield from self.descendants(task.external_id)

    def in_progress(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.status is TaskStatus.IN_PROGRESS]

    def pending(self) -> list[Attempt]:
        """Attempts that have not ended: SCHEDULED or IN_PROGRESS."""
        return [attempt for attempt in self.attempts if attempt.status in PENDING_TASK_STATUSES]
