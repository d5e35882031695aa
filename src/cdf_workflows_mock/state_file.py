"""Initial state for the mock from a YAML file: workflows, versions, and executions in given statuses.

A client team's tests often need CDF to hold something already: an execution that FAILED in a given
task, one still RUNNING, one TERMINATED. The loader builds each through the store's own operations,
in the order a client of the API would (upsert the workflow and version, create a session, run,
report tasks through task update, cancel), so what it leaves is a state the API itself could have
produced: attempts, automatic retries, cancelled tasks, reasons and timestamps all come from the
model. Only the clock is the loader's: an execution that TIMED_OUT needs its task's timeout to pass,
so each execution is run on a clock set back by exactly as long as it takes, and ends now.

The format (README, "Test your workflow code against a fake CDF"; example in
`examples/fake_cdf_state.yaml`):

    workflows:
      - externalId: nightly-ingest          # description, dataSetId, maxConcurrentExecutions optional
        versions:
          - version: "1"
            workflowDefinition: {tasks: [...]}   # as POST /workflows/versions takes it
    executions:
      - id: <UUID v4>                       # optional; generated when left out
        workflowExternalId: nightly-ingest
        version: "1"
        status: FAILED                      # RUNNING, COMPLETED, FAILED, TERMINATED or TIMED_OUT
        input: {...}                        # optional, as the run endpoint takes it
        metadata: {key: value}              # optional, as the run endpoint takes it
        completedTasks: [extract]           # optional: reported COMPLETED first, in this order
        failedTasks: [load]                 # then these: FAILED until the task's retries are used up,
                                            # or {externalId: load, status: FAILED_WITH_TERMINAL_ERROR}
        reason: ...                         # TERMINATED only: the cancel reason

Every problem is a `StateFileError`, one line naming the file, the entry and the field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from cdf_workflows_mock.cdf import CONTAINER_TASK_TYPES, ExecutionStatus, TaskStatus
from cdf_workflows_mock.config import MockConfig
from cdf_workflows_mock.defects import create_app
from cdf_workflows_mock.errors import MockError
from cdf_workflows_mock.model import JSONObject
from cdf_workflows_mock.store import MockStore
from cdf_workflows_mock.validation import (
    RunRequest,
    TaskUpdate,
    VersionUpsert,
    WorkflowUpsert,
    parse_cancel_reason,
    parse_identifier,
    parse_run_request,
    parse_version_upsert,
    parse_workflow_upsert,
)

# CDF makes execution ids as lowercase UUIDs of version 4; a given id must look like one, or the
# state would be one the API could not have produced.
_UUID4_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_TOP_LEVEL_KEYS = frozenset({"workflows", "executions"})
_WORKFLOW_KEYS = frozenset({"externalId", "description", "dataSetId", "maxConcurrentExecutions", "versions"})
_VERSION_KEYS = frozenset({"version", "workflowDefinition"})
_EXECUTION_KEYS = frozenset(
    {
        "id",
        "workflowExternalId",
        "version",
        "status",
        "input",
        "metadata",
        "completedTasks",
        "failedTasks",
        "reason",
    }
)
_FAILURE_STATUSES = (TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR)
# More look-ups than this while driving one execution means the loader is going round in circles.
_MAX_STEPS = 10_000
_CONTAINER_TYPES = frozenset(task_type.value for task_type in CONTAINER_TASK_TYPES)
_PENDING = (TaskStatus.SCHEDULED.value, TaskStatus.IN_PROGRESS.value)


class StateFileError(ValueError):
    """A state file that cannot be loaded; its text is one line: file, entry, field, problem."""


@dataclass(frozen=True, slots=True)
class FailedTask:
    external_id: str
    # FAILED: reported until the task's retries are used up; FAILED_WITH_TERMINAL_ERROR: once.
    status: TaskStatus


@dataclass(frozen=True, slots=True)
class ExecutionEntry:
    where: str  # e.g. "executions[2]", for messages
    id: str | None
    workflow_external_id: str
    version: str
    status: ExecutionStatus
    input: JSONObject | None
    metadata: dict[str, str]
    completed_tasks: tuple[str, ...]
    failed_tasks: tuple[FailedTask, ...]
    reason: str | None


@dataclass(frozen=True, slots=True)
class VersionEntry:
    where: str
    upsert: VersionUpsert


@dataclass(frozen=True, slots=True)
class InitialState:
    """A checked state file: what to create, in file order."""

    source: str  # the file, as messages name it
    workflows: tuple[WorkflowUpsert, ...] = ()
    versions: tuple[VersionEntry, ...] = ()
    executions: tuple[ExecutionEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadedState:
    """What loading created: the executions' ids in file order (generated ones included)."""

    execution_ids: tuple[str, ...]


# --- reading and checking the file ------------------------------------------------------------------


def load_state_file(path: str | Path) -> InitialState:
    """Read and check a state file (YAML); a StateFileError says what is wrong, in one line."""
    import yaml  # here, so that importing the mock does not need PyYAML

    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise StateFileError(f"{source}: cannot read the state file: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise StateFileError(f"{source}: the state file is not UTF-8 text") from None
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise StateFileError(f"{source}: not valid YAML: {error.problem}{where}") from None
    except yaml.YAMLError as error:
        raise StateFileError(f"{source}: not valid YAML: {_one_line(str(error))}") from None
    return parse_state(document, source)


def parse_state(document: object, source: str = "<state>") -> InitialState:
    """Check a decoded state document (None: an empty file, nothing to create)."""
    if document is None:
        return InitialState(source)
    fail = _Failer(source)
    if not isinstance(document, dict):
        raise fail("the document", None, f"must be a mapping with {_keys(_TOP_LEVEL_KEYS)}")
    _check_keys(document, _TOP_LEVEL_KEYS, fail, "the document")
    _check_json(document, "", fail)
    workflows: list[WorkflowUpsert] = []
    versions: list[VersionEntry] = []
    for i, item in enumerate(_list(document.get("workflows"), "workflows", fail)):
        workflow, its_versions = _parse_workflow(item, f"workflows[{i}]", fail)
        workflows.append(workflow)
        versions.extend(its_versions)
    executions = [
        _parse_execution(item, f"executions[{i}]", fail)
        for i, item in enumerate(_list(document.get("executions"), "executions", fail))
    ]
    seen: dict[str, str] = {}
    for entry in executions:
        if entry.id is not None:
            if entry.id in seen:
                raise fail(entry.where, "id", f"{entry.id} is also the id of {seen[entry.id]}")
            seen[entry.id] = entry.where
    return InitialState(source, tuple(workflows), tuple(versions), tuple(executions))


class _Failer:
    """Makes the one-line errors of one file."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, entry: str, field: str | None, problem: str) -> StateFileError:
        where = f"{entry}, {field}" if field else entry
        return StateFileError(f"{self.source}: {where}: {_one_line(problem)}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _keys(keys: frozenset[str]) -> str:
    return ", ".join(sorted(keys))


def _check_keys(item: Mapping[Any, Any], known: frozenset[str], fail: _Failer, where: str) -> None:
    for key in item:
        if key not in known:
            raise fail(where, str(key), f"unknown field; known: {_keys(known)}")


def _list(value: object, where: str, fail: _Failer) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(where, None, "must be a list")
    return value


def _mapping(value: object, where: str, fail: _Failer) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, None, "must be a mapping")
    return value


def _check_json(value: object, path: str, fail: _Failer) -> None:
    """Everything YAML can say that JSON cannot (dates, non-string keys, NaN) is refused up front,
    with its place, before an API parser meets it."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise fail(path or "the document", None, f"the key {key!r} is not a string; quote it")
            _check_json(item, f"{path}.{key}" if path else key, fail)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", fail)
    elif isinstance(value, float) and not math.isfinite(value):
        raise fail(path, None, f"{value} is not a JSON number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise fail(path, None, f"a YAML {type(value).__name__} is not JSON; quote it to make it a string")


def _api_message(error: MockError) -> str:
    """An API parser's message about `items[0]...` made to name the file's own field."""
    return error.message.replace("items[0].", "")


def _text(item: Mapping[str, Any], key: str, where: str, fail: _Failer) -> str:
    value = item.get(key)
    if value is None:
        raise fail(where, key, "is required")
    if not isinstance(value, str):
        hint = f'; quote it: {key}: "{value}"' if isinstance(value, int | float) else ""
        raise fail(where, key, f"must be a string, got {type(value).__name__}{hint}")
    try:
        return parse_identifier(value, key)
    except MockError as error:
        raise fail(where, key, error.message) from None


def _parse_workflow(value: object, where: str, fail: _Failer) -> tuple[WorkflowUpsert, list[VersionEntry]]:
    item = _mapping(value, where, fail)
    _check_keys(item, _WORKFLOW_KEYS, fail, where)
    xid = _text(item, "externalId", where, fail)
    entry = f"{where} ({xid!r})"
    body = {key: item[key] for key in item if key != "versions"}
    try:
        workflow = parse_workflow_upsert({"items": [body]})
    except MockError as error:
        raise fail(entry, None, _api_message(error)) from None
    versions: list[VersionEntry] = []
    for j, version_value in enumerate(_list(item.get("versions"), f"{where}.versions", fail)):
        version_where = f"{where}.versions[{j}]"
        version_item = _mapping(version_value, version_where, fail)
        _check_keys(version_item, _VERSION_KEYS, fail, version_where)
        version = _text(version_item, "version", version_where, fail)
        if "workflowDefinition" not in version_item:
            raise fail(version_where, "workflowDefinition", "is required")
        try:
            upsert = parse_version_upsert(
                {"items": [{"workflowExternalId": xid, "version": version, **version_item}]}
            )
        except MockError as error:
            raise fail(
                f"{version_where} (version {version!r} of {xid!r})", None, _api_message(error)
            ) from None
        versions.append(VersionEntry(version_where, upsert))
    return workflow, versions


def _parse_execution(value: object, where: str, fail: _Failer) -> ExecutionEntry:
    item = _mapping(value, where, fail)
    _check_keys(item, _EXECUTION_KEYS, fail, where)
    xid = _text(item, "workflowExternalId", where, fail)
    version = _text(item, "version", where, fail)
    entry = f"{where} (version {version!r} of {xid!r})"

    execution_id = item.get("id")
    if execution_id is not None and (
        not isinstance(execution_id, str) or _UUID4_RE.fullmatch(execution_id) is None
    ):
        raise fail(entry, "id", f"{execution_id!r} is not a lowercase version-4 UUID, as CDF makes them")

    status_value = item.get("status")
    statuses = ", ".join(status.value for status in ExecutionStatus)
    if not isinstance(status_value, str) or status_value.upper() not in ExecutionStatus.__members__:
        raise fail(entry, "status", f"must be one of {statuses}, got {status_value!r}")
    status = ExecutionStatus(status_value.upper())

    try:
        # The run endpoint's own checks of input and metadata; the nonce is the loader's, later.
        run = parse_run_request(
            {"authentication": {"nonce": "-"}, "input": item.get("input"), "metadata": item.get("metadata")}
        )
    except MockError as error:
        field = "metadata" if "metadata" in error.message else "input"
        raise fail(entry, field, error.message) from None

    completed = tuple(
        _task_name(name, entry, f"completedTasks[{k}]", fail)
        for k, name in enumerate(_list(item.get("completedTasks"), f"{entry}, completedTasks", fail))
    )
    failed = tuple(
        _failed_task(name, entry, f"failedTasks[{k}]", fail)
        for k, name in enumerate(_list(item.get("failedTasks"), f"{entry}, failedTasks", fail))
    )
    if status is ExecutionStatus.FAILED and not failed:
        raise fail(entry, "failedTasks", "a FAILED execution needs the task(s) that failed it")

    reason = None
    if "reason" in item:
        if status is not ExecutionStatus.TERMINATED:
            raise fail(entry, "reason", "is the cancel reason: only a TERMINATED execution takes one")
        try:
            reason = parse_cancel_reason({"reason": item["reason"]})
        except MockError as error:
            raise fail(entry, "reason", error.message.replace("The request body.", "")) from None

    return ExecutionEntry(
        where=entry,
        id=execution_id,
        workflow_external_id=xid,
        version=version,
        status=status,
        input=run.input,
        metadata=run.metadata,
        completed_tasks=completed,
        failed_tasks=failed,
        reason=reason,
    )


def _task_name(value: object, entry: str, field: str, fail: _Failer) -> str:
    if not isinstance(value, str) or not value:
        raise fail(entry, field, f"must be a task externalId, got {value!r}")
    return value


def _failed_task(value: object, entry: str, field: str, fail: _Failer) -> FailedTask:
    if isinstance(value, str):
        return FailedTask(_task_name(value, entry, field, fail), TaskStatus.FAILED)
    if not isinstance(value, dict):
        raise fail(entry, field, "must be a task externalId or {externalId: ..., status: ...}")
    _check_keys(value, frozenset({"externalId", "status"}), fail, f"{entry}, {field}")
    status = value.get("status", TaskStatus.FAILED.value)
    allowed = ", ".join(status.value for status in _FAILURE_STATUSES)
    if status not in {failure.value for failure in _FAILURE_STATUSES}:
        raise fail(entry, f"{field}.status", f"must be {allowed}, got {status!r}")
    return FailedTask(
        _task_name(value.get("externalId"), entry, f"{field}.externalId", fail), TaskStatus(status)
    )


# --- building the state through the store's operations -----------------------------------------------


class TravellingClock:
    """The mock's clock: while the loader drives an execution, the time it sets; afterwards the real
    clock, never earlier than the last time the loader set (so time never runs backwards for a client)."""

    def __init__(self, base: Callable[[], int]) -> None:
        self.base = base
        self._set: int | None = None
        self._floor = 0

    def __call__(self) -> int:
        fixed = self._set
        return fixed if fixed is not None else max(self.base(), self._floor)

    def travel_to(self, millis: int) -> None:
        self._set = millis
        self._floor = max(self._floor, millis)

    def advance(self, millis: int) -> None:
        self.travel_to(self() + millis)

    def release(self) -> None:
        self._set = None


def create_seeded_app(config: MockConfig, state: InitialState) -> Starlette:
    """A fresh mock (with `config.defects`, if any) holding `state`, built through its store's operations.

    `app.state.loaded_state` is the `LoadedState`. A StateFileError says what in the file cannot be
    built (a task that has not started when the file reports it, a status the steps do not reach).
    """
    clock = TravellingClock(config.clock)
    app = create_app(dataclasses.replace(config, clock=clock))
    app.state.loaded_state = apply_state(app.state.store, config, state, clock)
    return app


def apply_state(
    store: MockStore, config: MockConfig, state: InitialState, clock: TravellingClock
) -> LoadedState:
    """Create `state` in `store` (whose clock is `clock`), every execution ending now.

    Each execution is rehearsed first in a scratch store, from now on the loader's clock: that checks
    the whole file before the real store is touched, and measures how long each execution takes to
    reach its status (its task's timeout, for one that TIMED_OUT), which is how far back it then starts.
    """
    fail = _Failer(state.source)
    now = clock.base()
    rehearsal_clock = TravellingClock(clock.base)
    rehearsal = MockStore(rehearsal_clock, config.nonce_ttl_millis, shape=config.shape)
    _create_workflows(rehearsal, config.project, state, fail)
    durations = [
        _drive(rehearsal, rehearsal_clock, config.project, entry, now, fail)[1] for entry in state.executions
    ]
    starts = [now - duration for duration in durations]
    # The workflows exist before the first of their executions starts.
    clock.travel_to(min(starts, default=now))
    _create_workflows(store, config.project, state, fail)
    ids = [
        _drive(store, clock, config.project, entry, start, fail)[0]
        for entry, start in zip(state.executions, starts, strict=True)
    ]
    clock.release()
    return LoadedState(tuple(ids))


def _create_workflows(store: MockStore, project: str, state: InitialState, fail: _Failer) -> None:
    try:
        for workflow in state.workflows:
            store.upsert_workflow(project, workflow)
        for version in state.versions:
            store.upsert_version(project, version.upsert)
    except MockError as error:  # the parsers checked everything the store checks; kept for safety
        raise fail("workflows", None, error.message) from None


def _drive(
    store: MockStore, clock: TravellingClock, project: str, entry: ExecutionEntry, start: int, fail: _Failer
) -> tuple[str, int]:
    """Run the entry's execution from `start` and bring it to its status, as a client would.

    Returns its id and how long that took on the clock.
    """
    clock.travel_to(start)
    driver = _Driver(store, clock, project, entry, fail)
    try:
        driver.run()
        for index, name in enumerate(entry.completed_tasks):
            driver.report(name, TaskStatus.COMPLETED, f"completedTasks[{index}]")
        for index, failed in enumerate(entry.failed_tasks):
            driver.report(failed.external_id, failed.status, f"failedTasks[{index}]")
        match entry.status:
            case ExecutionStatus.COMPLETED:
                driver.complete_the_rest()
            case ExecutionStatus.TERMINATED:
                store.cancel(project, driver.execution_id, entry.reason)
            case ExecutionStatus.TIMED_OUT:
                driver.time_out()
    except MockError as error:
        raise fail(entry.where, None, error.message) from None
    reached = driver.detail()["status"]
    if reached != entry.status.value:
        raise fail(
            entry.where,
            "status",
            f"its steps leave the execution {reached}, not {entry.status.value}"
            f"{_HINTS.get(entry.status, '')}",
        )
    return driver.execution_id, clock() - start


_HINTS = {
    ExecutionStatus.FAILED: " (failedTasks must end a task with onFailure abortWorkflow)",
    ExecutionStatus.RUNNING: " (a task in failedTasks ended it; leave it out, or make the status FAILED)",
    ExecutionStatus.COMPLETED: " (a task in failedTasks ended it)",
    ExecutionStatus.TERMINATED: " (only a RUNNING execution can be cancelled)",
    ExecutionStatus.TIMED_OUT: " (a task in failedTasks ended it first)",
}


class _Driver:
    """One execution, driven through the store's operations the way a client of the API would."""

    def __init__(
        self, store: MockStore, clock: TravellingClock, project: str, entry: ExecutionEntry, fail: _Failer
    ) -> None:
        self._store = store
        self._clock = clock
        self._project = project
        self._entry = entry
        self._fail = fail
        self.execution_id = ""

    def run(self) -> None:
        entry = self._entry
        nonce = str(self._store.create_session(self._project, "TOKEN_EXCHANGE")["nonce"])
        request = RunRequest(nonce=nonce, input=entry.input, metadata=dict(entry.metadata))
        answer = self._store.run(
            self._project, entry.workflow_external_id, entry.version, request, execution_id=entry.id
        )
        self.execution_id = str(answer["id"])

    def detail(self) -> JSONObject:
        return self._store.get_execution(self._project, self.execution_id)

    def _wait_a_little(self) -> None:
        """Let SCHEDULED attempts start: they are due within the server's schedule delay."""
        self._clock.advance(max(1, self._store.shape.schedule_delay_millis))

    def report(self, name: str, status: TaskStatus, field: str) -> None:
        """Report the task's running attempt `status` through task update; FAILED again on each
        automatic new attempt, until the task's retries are used up."""
        reported: set[str] = set()
        for _ in range(_MAX_STEPS):
            detail = self.detail()
            attempt = _latest(detail, name)
            if attempt is None or (attempt["id"] in reported):
                if reported:
                    return  # no new attempt came: the task has failed for good
                raise self._fail(self._entry.where, field, _not_started(detail, name))
            if not _is_async(attempt):
                raise self._fail(
                    self._entry.where,
                    field,
                    f"task {name!r} does not have isAsyncComplete: it ends by itself, and only such tasks "
                    "can be reported, as through task update",
                )
            if attempt["status"] == TaskStatus.SCHEDULED.value:
                self._wait_a_little()
                continue
            if attempt["status"] != TaskStatus.IN_PROGRESS.value:
                if reported:
                    return
                raise self._fail(
                    self._entry.where,
                    field,
                    f"task {name!r} is {attempt['status']} at this point; only a running task can be "
                    "reported",
                )
            try:
                self._store.update_task(
                    self._project, str(attempt["id"]), TaskUpdate(status=status, output=None)
                )
            except MockError as error:
                raise self._fail(self._entry.where, field, error.message) from None
            reported.add(str(attempt["id"]))
            if status is not TaskStatus.FAILED:
                return
        raise RuntimeError(f"reporting task {name!r} did not come to an end")

    def complete_the_rest(self) -> None:
        """Report every running asynchronous task COMPLETED, until the execution ends."""
        for _ in range(_MAX_STEPS):
            detail = self.detail()
            if detail["status"] != ExecutionStatus.RUNNING.value:
                return
            pending = [task for task in detail["executedTasks"] if task["status"] in _PENDING]
            if any(task["status"] == TaskStatus.SCHEDULED.value for task in pending):
                self._wait_a_little()
                continue
            waiting = [task for task in pending if _reports_itself(task)]
            if not waiting:
                return  # stuck; the status check says so
            self._store.update_task(
                self._project, str(waiting[0]["id"]), TaskUpdate(status=TaskStatus.COMPLETED, output=None)
            )
        raise RuntimeError("completing the tasks did not come to an end")

    def time_out(self) -> None:
        """Move the clock to the first deadline of a running task: that task times out, on the model's
        own rule, when the execution is next looked at."""
        for _ in range(_MAX_STEPS):
            detail = self.detail()
            pending = [task for task in detail["executedTasks"] if task["status"] in _PENDING]
            if not any(task["status"] == TaskStatus.SCHEDULED.value for task in pending):
                break
            self._wait_a_little()
        timeouts = _timeouts(detail)
        deadlines = [
            int(task["startTime"]) + timeouts[task["externalId"]] * 1000
            for task in detail["executedTasks"]
            if task["status"] == TaskStatus.IN_PROGRESS.value and task["taskType"] not in _CONTAINER_TYPES
        ]
        if not deadlines:
            raise self._fail(self._entry.where, "status", "no task is running that could time out")
        self._clock.travel_to(max(self._clock(), min(deadlines)))


def _latest(detail: JSONObject, name: str) -> JSONObject | None:
    found = [task for task in detail["executedTasks"] if task["externalId"] == name]
    return found[-1] if found else None


def _is_async(task: JSONObject) -> bool:
    """An attempt of a function task with isAsyncComplete (executed tasks spell it asyncComplete)."""
    task_input = task.get("input")
    return isinstance(task_input, dict) and task_input.get("asyncComplete") is True


def _reports_itself(task: JSONObject) -> bool:
    return task["status"] == TaskStatus.IN_PROGRESS.value and _is_async(task)


def _definitions(detail: JSONObject) -> Iterator[JSONObject]:
    """Every task definition an execution knows of: top level, in subworkflows, in resolved dynamic
    containers."""
    todo: list[JSONObject] = list(detail["workflowDefinition"]["tasks"])
    for task in detail["executedTasks"]:
        nested = (
            task.get("input", {}).get("dynamic", {}).get("tasks") if task["taskType"] == "dynamic" else None
        )
        if isinstance(nested, list):
            todo.extend(nested)
    while todo:
        task = todo.pop()
        yield task
        subworkflow = task.get("parameters", {}).get("subworkflow", {})
        if isinstance(subworkflow, dict) and isinstance(subworkflow.get("tasks"), list):
            todo.extend(subworkflow["tasks"])


def _timeouts(detail: JSONObject) -> dict[str, int]:
    return {str(task["externalId"]): int(task["timeout"]) for task in _definitions(detail)}


def _not_started(detail: JSONObject, name: str) -> str:
    if name not in {task["externalId"] for task in _definitions(detail)}:
        return (
            f"the workflow version has no task {name!r} (a task of a dynamic container exists once the "
            "container has started)"
        )
    return (
        f"task {name!r} has not started at this point; list the tasks it waits for in completedTasks "
        "before it"
    )
