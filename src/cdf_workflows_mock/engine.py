"""The task model of workflow-model.md: how an execution's tasks start, end, fail and are retried.

The engine is state-based: after every event (run, task update, cancel, retry, a timeout noticed)
`settle` walks the definition and applies the first rule that changes something, until nothing
does. Rules therefore never depend on the order events happened in, only on the attempts the
execution holds, which is also all a client can see.

The engine does no locking and keeps no state beyond a call-id counter; `store.py` serialises
every call. The retry is split into `check_retryable`, `select_retry_targets` and `apply_retry`
so that a variant of any single step can be swapped in.

Where faithful servers differ (`config.Profile`), the engine asks the execution's `ServerShape` at
the moment the difference arises: how long a new attempt is SCHEDULED (`_schedule`), and whether a
dynamic container's own attempt ends once it has spawned its nested tasks (`_spawned`). Every
other rule follows from the state that leaves, e.g. a container that COMPLETED before its nested
tasks (`Execution.is_detached`).
"""

from __future__ import annotations

import copy
import itertools
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cdf_workflows_mock.cdf import (
    COMPLETED_TASK_STATUSES,
    RETRYABLE_EXECUTION_STATUSES,
    RETRYABLE_TASK_STATUSES,
    ExecutionStatus,
    TaskStatus,
    TaskType,
)
from cdf_workflows_mock.errors import Conflict, InvalidRequest
from cdf_workflows_mock.model import Attempt, Execution, JSONObject, TaskDef
from cdf_workflows_mock.validation import REFERENCE_RE, TaskUpdate, parse_dynamic_tasks, show

# An attempt ending in one of these has failed; whether for good depends on retries and type.
_FAILURE_STATUSES = frozenset(
    {TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR, TaskStatus.TIMED_OUT}
)
# More steps than this in one settle means a rule keeps undoing another: a bug, not a workflow.
_MAX_SETTLE_STEPS = 100_000


@dataclass(slots=True)
class RetryPlan:
    """What a retry touches: leaf tasks that get a new attempt, container attempts reopened."""

    tasks: list[tuple[TaskDef, str | None]] = field(default_factory=list)
    containers: list[Attempt] = field(default_factory=list)


class TaskEngine:
    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        # Plausible, distinct ids for the outputs of tasks that "ran".
        self._run_ids = itertools.count(1_000_001)

    # --- events -------------------------------------------------------------------------------

    def refresh(self, execution: Execution) -> None:
        """Bring an execution up to date with the clock before anyone looks at it."""
        self.start_due(execution)
        self.apply_timeouts(execution)
        self.settle(execution)

    def start_due(self, execution: Execution) -> None:
        """Start the SCHEDULED attempts whose time has come, as of the time they were due."""
        now = self._clock()
        for attempt in list(execution.attempts):
            due = attempt.due_time
            if attempt.status is TaskStatus.SCHEDULED and due is not None and due <= now:
                self._begin(execution, attempt, due)

    def apply_timeouts(self, execution: Execution) -> None:
        now = self._clock()
        for attempt in execution.in_progress():
            if attempt.task.is_container:
                continue  # a container ends with its nested tasks, not on its own clock
            assert attempt.start_time is not None  # an IN_PROGRESS attempt has started
            # Counted from the start: time spent SCHEDULED is the server's, not the task's.
            deadline = attempt.start_time + attempt.task.timeout * 1000
            if now >= deadline:
                attempt.status = TaskStatus.TIMED_OUT
                attempt.end_time = deadline
                attempt.reason = (
                    f"The task did not finish within its timeout of {attempt.task.timeout} seconds"
                )

    def cancel(self, execution: Execution, reason: str | None) -> None:
        if execution.status is not ExecutionStatus.RUNNING:
            raise Conflict(
                f"Workflow execution {execution.id} is {execution.status}; only a RUNNING execution can be "
                "cancelled"
            )
        now = self._clock()
        self._cancel_attempts(execution.pending(), now, "The workflow execution was cancelled")
        execution.status = ExecutionStatus.TERMINATED
        execution.end_time = now
        # The SDK documents 'cancelled' as what the server records when no reason is given.
        execution.reason = "cancelled" if reason is None else reason

    def update_task(self, execution: Execution, attempt: Attempt, update: TaskUpdate) -> None:
        if attempt.task.is_container or not attempt.task.is_async_complete:
            raise InvalidRequest(
                f"Task {attempt.id} ({show(attempt.external_id)}) does not have isAsyncComplete set; "
                "only such tasks can be updated"
            )
        if attempt.status is not TaskStatus.IN_PROGRESS:
            raise InvalidRequest(
                f"Task {attempt.id} ({show(attempt.external_id)}) is {attempt.status}; "
                "only an IN_PROGRESS task can be updated"
            )
        if update.output is not None:
            attempt.output.update(copy.deepcopy(update.output))
        attempt.status = update.status
        attempt.end_time = self._clock()
        if update.status is not TaskStatus.COMPLETED:
            attempt.reason = f"The task was reported {update.status} through tasks/update"
        self.settle(execution)

    # --- retry (workflow-model.md point 8) ----------------------------------------------------

    def retry(self, execution: Execution) -> RetryPlan:
        """Validate, select and apply a retry; the caller settles the execution afterwards."""
        self.check_retryable(execution)
        plan = self.select_retry_targets(execution)
        self.apply_retry(execution, plan)
        return plan

    def check_retryable(self, execution: Execution) -> None:
        if execution.status not in RETRYABLE_EXECUTION_STATUSES:
            raise Conflict(
                f"Workflow execution {execution.id} is {execution.status}; only a FAILED, TIMED_OUT or "
                "TERMINATED execution can be retried"
            )

    def select_retry_targets(self, execution: Execution) -> RetryPlan:
        plan = RetryPlan()
        self._collect_retry_targets(execution, None, plan)
        return plan

    def _collect_retry_targets(self, execution: Execution, scope: str | None, plan: RetryPlan) -> None:
        for task in execution.scope_tasks(scope):
            latest = execution.latest(task.external_id)
            # Optional tasks are not retried, and neither is anything inside an optional container.
            if latest is None or task.is_optional:
                continue
            if execution.is_detached(task):
                # It COMPLETED when it spawned its nested tasks and stays so; its failed ones are retried.
                self._collect_retry_targets(execution, task.external_id, plan)
            elif latest.status not in RETRYABLE_TASK_STATUSES:
                continue
            elif task.is_container:
                # No new attempt for a container: it reopens and its failed nested tasks are retried.
                plan.containers.append(latest)
                self._collect_retry_targets(execution, task.external_id, plan)
            else:
                plan.tasks.append((task, scope))

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        execution.status = ExecutionStatus.RUNNING
        execution.end_time = None
        execution.reason = None
        for container in plan.containers:
            container.end_time = None
            container.reason = None
            if container.start_time is None:
                # Cancelled while SCHEDULED: it never ran, so it is queued again rather than reopened.
                self._schedule(execution, container)
            else:
                container.status = TaskStatus.IN_PROGRESS
        # Exactly one attempt each, whatever the task's retries: its attempt count is not reset.
        for task, scope in plan.tasks:
            self._start_attempt(execution, task, scope)

    # --- progress -----------------------------------------------------------------------------

    def settle(self, execution: Execution) -> None:
        """Apply the model's rules until the execution reaches a state that waits for a client."""
        for _ in range(_MAX_SETTLE_STEPS):
            if execution.status is not ExecutionStatus.RUNNING or not self._step(execution, None):
                return
        raise RuntimeError(f"workflow execution {execution.id} did not settle")

    def _step(self, execution: Execution, scope: str | None) -> bool:
        """Make one change in `scope` (None: the top level), or report that none applies."""
        tasks = execution.scope_tasks(scope)
        for task in tasks:
            latest = execution.latest(task.external_id)
            if latest is None:
                if all(execution.is_done(execution.tasks[dep]) for dep in task.depends_on):
                    self._start_attempt(execution, task, scope)
                    return True
            elif latest.status is TaskStatus.SCHEDULED:
                continue  # it starts when the clock reaches it (`start_due`)
            elif latest.status is TaskStatus.IN_PROGRESS:
                if task.is_container and self._step_container(execution, task, latest):
                    return True
            elif execution.is_detached(task):
                # Its own attempt ended when it spawned its nested tasks, which run on without it.
                if self._step(execution, task.external_id):
                    return True
            elif self._step_ended(execution, task, latest, scope):
                return True
        if scope is None and all(execution.is_done(task) for task in tasks):
            execution.status = ExecutionStatus.COMPLETED
            execution.end_time = self._clock()
            execution.reason = None
            return True
        return False

    def _step_container(self, execution: Execution, task: TaskDef, attempt: Attempt) -> bool:
        nested = execution.nested_tasks(task)
        if nested is None:
            # A dynamic container reopened by a retry after its reference failed to resolve.
            self._resolve_dynamic(execution, task, attempt, self._clock())
            return True
        if self._step(execution, task.external_id):
            return True
        if all(execution.is_done(child) for child in nested):
            attempt.status = TaskStatus.COMPLETED
            attempt.end_time = self._clock()
            attempt.reason = None
            return True
        return False

    def _step_ended(self, execution: Execution, task: TaskDef, attempt: Attempt, scope: str | None) -> bool:
        status = attempt.status
        if status in COMPLETED_TASK_STATUSES:
            return False
        if (
            status is TaskStatus.FAILED
            and not task.is_container  # nested tasks have their own retries
            and execution.attempt_count(task.external_id) < 1 + task.retries
        ):
            self._start_attempt(execution, task, scope)
            return True
        if status in _FAILURE_STATUSES:
            if task.is_optional:
                attempt.status = TaskStatus.COMPLETED_WITH_ERRORS
            else:
                self._abort_scope(execution, scope, attempt)
            return True
        if status is TaskStatus.CANCELED and not task.is_optional:
            # Unreachable through the API (a retry restarts every such task); failing the scope
            # beats an execution that stays RUNNING with nothing left to run.
            self._abort_scope(execution, scope, attempt)
            return True
        return False

    def _abort_scope(self, execution: Execution, scope: str | None, failed: Attempt) -> None:
        now = self._clock()
        timed_out = failed.status is TaskStatus.TIMED_OUT
        reason = f"Task {failed.external_id!r} ended {failed.status}"
        if failed.reason:
            reason += f": {failed.reason}"
        cancel_note = f"Cancelled because task {failed.external_id!r} ended {failed.status}"
        if scope is None:
            self._cancel_attempts(execution.pending(), now, cancel_note)
            execution.status = ExecutionStatus.TIMED_OUT if timed_out else ExecutionStatus.FAILED
            execution.end_time = now
            execution.reason = reason
            return
        inside = {task.external_id for task in execution.descendants(scope)}
        self._cancel_attempts(
            (attempt for attempt in execution.pending() if attempt.external_id in inside),
            now,
            cancel_note,
        )
        container = execution.latest(scope)
        assert container is not None  # a scope is active only once its container has started
        if container.status is TaskStatus.COMPLETED:
            # Detached: its own attempt ended when it spawned the tasks and is left as it ended. The
            # failure goes where the container's would have: skipTask absorbs it, abortWorkflow passes
            # it on to the enclosing scope (the execution, for a top-level container).
            if container.task.is_optional:
                container.status = TaskStatus.COMPLETED_WITH_ERRORS
                container.reason = reason
            else:
                self._abort_scope(execution, container.parent, failed)
            return
        container.status = TaskStatus.TIMED_OUT if timed_out else TaskStatus.FAILED
        container.end_time = now
        container.reason = reason

    @staticmethod
    def _cancel_attempts(attempts: Iterable[Attempt], now: int, reason: str) -> None:
        for attempt in list(attempts):
            attempt.status = TaskStatus.CANCELED
            attempt.end_time = now
            attempt.reason = reason

    # --- starting a task ----------------------------------------------------------------------

    def _start_attempt(self, execution: Execution, task: TaskDef, scope: str | None) -> Attempt:
        attempt = Attempt(
            id=str(uuid.uuid4()),
            task=task,
            parent=scope,
            status=TaskStatus.SCHEDULED,
            input=self._attempt_input(execution, task),
            output={},
            start_time=None,
        )
        execution.add_attempt(attempt)
        self._schedule(execution, attempt)
        return attempt

    def _schedule(self, execution: Execution, attempt: Attempt) -> None:
        """Queue the attempt for the shape's delay; without one it starts at once."""
        now = self._clock()
        delay = execution.shape.schedule_delay_millis
        attempt.status = TaskStatus.SCHEDULED
        attempt.due_time = now + delay
        if delay == 0:
            self._begin(execution, attempt, now)

    def _begin(self, execution: Execution, attempt: Attempt, now: int) -> None:
        """The attempt starts at `now`: what the mock "runs" happens here."""
        attempt.status = TaskStatus.IN_PROGRESS
        attempt.start_time = now
        task = attempt.task
        if task.task_type is TaskType.DYNAMIC:
            if execution.nested_tasks(task) is None:
                self._resolve_dynamic(execution, task, attempt, now)
            else:
                self._spawned(execution, attempt, now)
        elif not task.is_container:
            attempt.output = self._plausible_output(task)
            if not task.is_async_complete:
                # The mock runs nothing: a task nobody reports on succeeds at once.
                attempt.status = TaskStatus.COMPLETED
                attempt.end_time = now

    @staticmethod
    def _spawned(execution: Execution, attempt: Attempt, now: int) -> None:
        """A dynamic container has its nested tasks; a server may end its own attempt right here."""
        if execution.shape.dynamic_completes_on_spawn:
            attempt.status = TaskStatus.COMPLETED
            attempt.end_time = now

    def _attempt_input(self, execution: Execution, task: TaskDef) -> JSONObject:
        if task.task_type is TaskType.DYNAMIC:
            nested = execution.nested_tasks(task)
            tasks: Any = task.dynamic_reference if nested is None else [child.to_json() for child in nested]
            return {"dynamic": {"tasks": tasks}}
        params = task.parameters_json()
        if task.task_type is TaskType.FUNCTION:
            function = params.get("function")
            if isinstance(function, dict) and "data" in function:
                function["data"] = _resolve_all(function["data"], execution)
            # Executed tasks spell the flag `asyncComplete` (the SDK reads both spellings).
            if "isAsyncComplete" in params:
                params["asyncComplete"] = params.pop("isAsyncComplete")
        return params

    def _plausible_output(self, task: TaskDef) -> JSONObject:
        match task.task_type:
            case TaskType.FUNCTION:
                function_xid = str(task.parameters["function"]["externalId"])
                return {
                    "callId": next(self._run_ids),
                    "functionId": zlib.crc32(function_xid.encode()) + 1,
                    "response": {},
                }
            case TaskType.TRANSFORMATION:
                return {"jobId": next(self._run_ids)}
            case TaskType.CDF:
                return {"response": {}, "statusCode": 200}
            case TaskType.SIMULATION:
                return {
                    "runId": next(self._run_ids),
                    "logId": next(self._run_ids),
                    "statusMessage": "Success",
                }
            case _:
                return {}

    def _resolve_dynamic(self, execution: Execution, task: TaskDef, attempt: Attempt, now: int) -> None:
        reference = task.dynamic_reference or ""
        try:
            nested = parse_dynamic_tasks(
                resolve_reference(reference, execution), taken=tuple(execution.tasks)
            )
        except (LookupError, InvalidRequest) as exc:
            message = exc.message if isinstance(exc, InvalidRequest) else str(exc.args[0])
            attempt.status = TaskStatus.FAILED_WITH_TERMINAL_ERROR
            attempt.end_time = now
            attempt.reason = f"Could not resolve the dynamic tasks {reference}: {message}"
            return
        execution.resolved_dynamic[task.external_id] = nested
        execution.register_tasks(nested, task.external_id)
        attempt.input = {"dynamic": {"tasks": [child.to_json() for child in nested]}}
        self._spawned(execution, attempt, now)


def resolve_reference(expression: str, execution: Execution) -> Any:
    """The value `${workflow.input...}`, `${<task>.output...}` or `${<task>.input...}` points at.

    Task externalIds may contain dots, so every `.output`/`.input` in the path is tried as the
    end of the task's externalId.
    """
    match = REFERENCE_RE.fullmatch(expression)
    if match is None:
        raise LookupError(f"{show(expression)} is not a reference")
    path = match.group(1)
    if path == "workflow.input" or path.startswith("workflow.input."):
        root, rest = execution.input or {}, path[len("workflow.input") :]
    else:
        found = _task_root(path, execution)
        if found is None:
            raise LookupError(f"{show(expression)} names no task that has run in this execution")
        root, rest = found
    value = root
    for key in rest.split(".")[1:]:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise LookupError(f"{show(expression)} does not resolve: no {show(key)} there")
    return copy.deepcopy(value)


def _task_root(path: str, execution: Execution) -> tuple[Any, str] | None:
    """The output or input of the task a reference path starts with, and the rest of the path."""
    for marker in (".output", ".input"):
        index = path.find(marker)
        while index != -1:
            end = index + len(marker)
            if end == len(path) or path[end] == ".":
                latest = execution.latest(path[:index])
                if latest is not None:
                    return (latest.output if marker == ".output" else latest.input), path[end:]
            index = path.find(marker, index + 1)
    return None


def _resolve_all(value: Any, execution: Execution) -> Any:
    """References in function data resolved where they can be; the rest left as written."""
    if isinstance(value, str) and REFERENCE_RE.fullmatch(value):
        try:
            return resolve_reference(value, execution)
        except LookupError:
            return value
    if isinstance(value, dict):
        return {key: _resolve_all(item, execution) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_all(item, execution) for item in value]
    return value
