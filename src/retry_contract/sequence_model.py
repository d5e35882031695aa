"""Generated operation sequences around the retry: a task graph, then steps that drive its execution.

A *sequence* is a workflow version whose task graph is drawn from the task model (workflow-model.md:
task types, `retries` 0-10 or the default, `timeout`, `onFailure`, `dependsOn`, subworkflow and
dynamic containers nested up to `MAX_NESTING` deep), run once, then a list of steps: end an attempt
in progress with an outcome a client may report (`UPDATABLE_TASK_STATUSES`), wait for a short timeout
to fire, cancel, or retry, at any point and repeatedly. Steps name their target abstractly (the
`pick`-th attempt in progress), so every step applies to any execution and Hypothesis can shrink a
failing sequence by dropping steps and simplifying the graph.

Every leaf task is an asynchronous function task (`isAsyncComplete`): the suite, not the function,
decides each outcome, as provisioning does, so the same sequence runs on any CDF-compatible server.
This module holds the data, its strategies and its text; `exploration` runs it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hypothesis import strategies as st

from retry_contract.domain import (
    TASK_RETRIES_MAX,
    TASK_TIMEOUT_DEFAULT_SECONDS,
    UPDATABLE_TASK_STATUSES,
    OnFailure,
    TaskStatus,
    TaskType,
)

# Containers nest this deep at most: enough for a container inside a container (the recorded execution
# shows one level), small enough that a graph stays readable in a report.
MAX_NESTING = 2
MAX_TASKS_PER_SCOPE = 3
MAX_STEPS = 12
# The shortest timeout the API allows: a task with it times out during the sequence (the TIMED_OUT
# outcome); any other timeout drawn is long enough never to fire during one.
SHORT_TIMEOUT_SECONDS = 1
LONG_TIMEOUT_MIN_SECONDS = 600
# Which attempt in progress a step ends: an index, taken modulo how many there are.
MAX_PICK = 7
# Outcomes in a fixed order: a set's iteration order would make the draws depend on hashing.
OUTCOMES: tuple[TaskStatus, ...] = tuple(sorted(UPDATABLE_TASK_STATUSES))
LEAF_TYPE = TaskType.FUNCTION
CONTAINER_TYPES: tuple[TaskType, ...] = (TaskType.SUBWORKFLOW, TaskType.DYNAMIC)


@dataclass(frozen=True)
class TaskGraph:
    """A workflow definition's tasks, and what each dynamic task's source reports as its output."""

    tasks: tuple[Mapping[str, Any], ...]
    # The source task's externalId -> the tasks its output hands the dynamic task that reads it.
    dynamic_outputs: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)

    def definition(self, function_external_id: str) -> list[dict[str, Any]]:
        """The tasks as a version definition holds them, calling `function_external_id`."""
        return [_with_function(task, function_external_id) for task in self.tasks]

    def output_of(self, external_id: str, function_external_id: str) -> dict[str, Any] | None:
        """What the suite reports as the output of `external_id` when it completes it: the tasks of
        the dynamic task that reads it, or None for a task no dynamic task reads."""
        tasks = self.dynamic_outputs.get(external_id)
        if tasks is None:
            return None
        return {"response": {"tasks": [_with_function(t, function_external_id) for t in tasks]}}

    def timeouts(self) -> dict[str, int]:
        """The timeout of every leaf task that sets one, dynamic tasks' nested ones included (what a
        container's timeout does to it, the model leaves open: none is waited for)."""
        found: dict[str, int] = {}
        for task in self.walk():
            timeout = task.get("timeout")
            if isinstance(timeout, int) and task.get("type") == LEAF_TYPE:
                found[str(task["externalId"])] = timeout
        return found

    def walk(self) -> Iterator[Mapping[str, Any]]:
        def nested(tasks: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
            for task in tasks:
                yield task
                inner = task.get("parameters", {}).get("subworkflow", {}).get("tasks")
                if inner:
                    yield from nested(inner)

        yield from nested(self.tasks)
        for tasks in self.dynamic_outputs.values():
            yield from nested(tasks)

    @property
    def digest(self) -> str:
        """Names the graph: two sequences with equal digests exercised the same task graph."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [dict(t) for t in self.tasks],
            "dynamic_outputs": {k: [dict(t) for t in v] for k, v in self.dynamic_outputs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskGraph:
        outputs = data.get("dynamic_outputs") or {}
        return cls(
            tasks=tuple(data["tasks"]),
            dynamic_outputs={str(k): tuple(v) for k, v in dict(outputs).items()},
        )

    def describe(self) -> list[str]:
        """One line per task, indented by nesting."""
        lines: list[str] = []

        def add(tasks: Sequence[Mapping[str, Any]], depth: int) -> None:
            for task in tasks:
                lines.append("  " * depth + _task_text(task))
                inner = task.get("parameters", {}).get("subworkflow", {}).get("tasks")
                if inner:
                    add(inner, depth + 1)
                for source, spawned in self.dynamic_outputs.items():
                    if task.get("type") == TaskType.DYNAMIC and _reads(task) == source:
                        add(spawned, depth + 1)

        add(self.tasks, 0)
        return lines


def _reads(dynamic_task: Mapping[str, Any]) -> str:
    expression = str(dynamic_task.get("parameters", {}).get("dynamic", {}).get("tasks", ""))
    return expression.removeprefix("${").split(".", 1)[0]


def _task_text(task: Mapping[str, Any]) -> str:
    parts = [f"{task['externalId']} ({task['type']}"]
    for key in ("retries", "timeout", "onFailure"):
        if key in task:
            parts.append(f"{key} {task[key]}")
    depends = [d["externalId"] for d in task.get("dependsOn", [])]
    if depends:
        parts.append(f"after {', '.join(depends)}")
    return ", ".join(parts) + ")"


def _with_function(task: Mapping[str, Any], function_external_id: str) -> dict[str, Any]:
    """The task with its function named (graphs are drawn without it: the run names the function)."""
    copy = dict(task)
    parameters = dict(copy.get("parameters", {}))
    if copy.get("type") == LEAF_TYPE:
        parameters["function"] = {"externalId": function_external_id}
    subworkflow = parameters.get("subworkflow")
    if subworkflow is not None:
        parameters["subworkflow"] = {
            "tasks": [_with_function(t, function_external_id) for t in subworkflow["tasks"]]
        }
    copy["parameters"] = parameters
    return copy


class StepKind(StrEnum):
    FINISH = "finish"
    AWAIT_TIMEOUT = "await-timeout"
    CANCEL = "cancel"
    RETRY = "retry"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    # FINISH: which attempt in progress (modulo their number, in the order of their externalIds).
    pick: int = 0
    # FINISH: the outcome reported through task update.
    outcome: TaskStatus | None = None

    def describe(self) -> str:
        if self.kind is StepKind.FINISH:
            return (
                f"end attempt in progress #{self.pick} (by externalId, modulo their number) as {self.outcome}"
            )
        if self.kind is StepKind.AWAIT_TIMEOUT:
            return f"wait until an attempt in progress with a {SHORT_TIMEOUT_SECONDS} s timeout times out"
        if self.kind is StepKind.CANCEL:
            return "cancel the execution (when it runs)"
        return "retry the execution (expected to succeed when FAILED, TIMED_OUT or TERMINATED)"

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is StepKind.FINISH:
            record.update(pick=self.pick, outcome=str(self.outcome))
        return record

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        outcome = data.get("outcome")
        return cls(
            StepKind(data["kind"]),
            int(data.get("pick", 0)),
            TaskStatus(outcome) if outcome is not None else None,
        )


@dataclass(frozen=True)
class OperationSequence:
    graph: TaskGraph
    steps: tuple[Step, ...]

    def to_json(self) -> dict[str, Any]:
        return {"graph": self.graph.to_json(), "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OperationSequence:
        return cls(TaskGraph.from_json(data["graph"]), tuple(Step.from_json(s) for s in data["steps"]))

    @property
    def size(self) -> tuple[int, int]:
        """Smaller is simpler: fewer steps, then fewer tasks (the order shrinking aims at)."""
        return len(self.steps), sum(1 for _ in self.graph.walk())


# -- strategies ------------------------------------------------------------------------------------


class _Names:
    """Task externalIds unique across the whole definition, nested and dynamic tasks included."""

    def __init__(self) -> None:
        self.count = 0

    def next(self) -> str:
        self.count += 1
        return f"t{self.count}"


@st.composite
def _leaf(draw: st.DrawFn, names: _Names, siblings: list[str]) -> dict[str, Any]:
    task: dict[str, Any] = {
        "externalId": names.next(),
        "type": LEAF_TYPE.value,
        "parameters": {"isAsyncComplete": True},
    }
    _draw_common(draw, task, siblings)
    return task


def _draw_common(draw: st.DrawFn, task: dict[str, Any], siblings: list[str]) -> None:
    """retries, timeout, onFailure (each sometimes left to its default) and dependsOn earlier siblings."""
    retries = draw(st.none() | st.integers(0, TASK_RETRIES_MAX))
    if retries is not None:
        task["retries"] = retries
    timeout = draw(
        st.none()
        | st.just(SHORT_TIMEOUT_SECONDS)
        | st.integers(LONG_TIMEOUT_MIN_SECONDS, TASK_TIMEOUT_DEFAULT_SECONDS)
    )
    if timeout is not None:
        task["timeout"] = timeout
    on_failure = draw(st.none() | st.sampled_from([OnFailure.ABORT_WORKFLOW, OnFailure.SKIP_TASK]))
    if on_failure is not None:
        task["onFailure"] = on_failure.value
    depends = draw(st.lists(st.sampled_from(siblings), unique=True, max_size=2)) if siblings else []
    task["dependsOn"] = [{"externalId": d} for d in sorted(depends)]


@st.composite
def _scope(
    draw: st.DrawFn, names: _Names, depth: int, outputs: dict[str, tuple[Mapping[str, Any], ...]]
) -> list[dict[str, Any]]:
    """The tasks of one scope: the top level, or a subworkflow's."""
    tasks: list[dict[str, Any]] = []
    count = draw(st.integers(1, MAX_TASKS_PER_SCOPE))
    for _ in range(count):
        siblings = [str(t["externalId"]) for t in tasks]
        kind = draw(
            st.sampled_from((LEAF_TYPE, *CONTAINER_TYPES)) if depth < MAX_NESTING else st.just(LEAF_TYPE)
        )
        if kind is LEAF_TYPE:
            tasks.append(draw(_leaf(names, siblings)))
        elif kind is TaskType.SUBWORKFLOW:
            container: dict[str, Any] = {"externalId": names.next(), "type": TaskType.SUBWORKFLOW.value}
            container["parameters"] = {"subworkflow": {"tasks": draw(_scope(names, depth + 1, outputs))}}
            _draw_common(draw, container, siblings)
            tasks.append(container)
        else:
            # A dynamic task reads the tasks it runs from the output of a source task it depends on.
            source = draw(_leaf(names, siblings))
            tasks.append(source)
            spawned = [draw(_leaf(names, [])) for _ in range(draw(st.integers(1, MAX_TASKS_PER_SCOPE)))]
            dynamic: dict[str, Any] = {
                "externalId": names.next(),
                "type": TaskType.DYNAMIC.value,
                "parameters": {"dynamic": {"tasks": f"${{{source['externalId']}.output.response.tasks}}"}},
            }
            _draw_common(draw, dynamic, [*siblings, str(source["externalId"])])
            if {"externalId": source["externalId"]} not in dynamic["dependsOn"]:
                dynamic["dependsOn"].append({"externalId": source["externalId"]})
            outputs[str(source["externalId"])] = tuple(spawned)
            tasks.append(dynamic)
    return tasks


@st.composite
def task_graphs(draw: st.DrawFn) -> TaskGraph:
    outputs: dict[str, tuple[Mapping[str, Any], ...]] = {}
    tasks = draw(_scope(_Names(), 0, outputs))
    return TaskGraph(tuple(tasks), outputs)


def steps() -> st.SearchStrategy[Step]:
    finish = st.builds(Step, st.just(StepKind.FINISH), st.integers(0, MAX_PICK), st.sampled_from(OUTCOMES))
    return st.one_of(
        finish,
        st.just(Step(StepKind.RETRY)),
        st.just(Step(StepKind.CANCEL)),
        st.just(Step(StepKind.AWAIT_TIMEOUT)),
    )


@st.composite
def operation_sequences(draw: st.DrawFn) -> OperationSequence:
    graph = draw(task_graphs())
    drawn = draw(st.lists(steps(), min_size=1, max_size=MAX_STEPS))
    return OperationSequence(graph, tuple(drawn))
