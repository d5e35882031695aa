"""Creates, through the real endpoints only, the executions the suite needs, and removes them after.

Every workflow it creates is named `retry-contract-<run id>-<purpose>`, or
`retry-contract-<run id>-<generated tail>-<purpose>` when its fixture's values give it a tail: cleanup
deletes exactly those, and nothing the suite did not create is ever retried. The metadata, input,
workflow external id and version of each execution come from `fixture_values`, drawn from the run's
seed, in a fixed cycle.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from retry_contract import contract, execution_view, fixture_values
from retry_contract.cdf_client import CdfClient, UnexpectedAnswer
from retry_contract.domain import (
    RETRYABLE_EXECUTION_STATUSES,
    ExecutionStatus,
    OnFailure,
    TaskStatus,
    TaskType,
)
from retry_contract.fixture_values import FixtureShape as FixtureShape
from retry_contract.interrupts import signals_deferred
from retry_contract.run_settings import DEFAULT_FUNCTION_EXTERNAL_ID

# Retryable executions that the fuzzer's steered cases take turns on (a RetryablePool) while used ones
# are made retryable again.
DEFAULT_POOL_SIZE = 6


def boundary_metadata() -> dict[str, str]:
    """Run metadata exactly at the documented limits, so a server that adds or stretches anything
    on retry breaks a limit that a response check can see."""
    limits = contract.METADATA_LIMITS
    return {
        f"retry-contract-{index:02d}".ljust(limits.max_key_length, "k"): f"fixture value {index} ".ljust(
            limits.max_value_length, "v"
        )
        for index in range(limits.max_pairs)
    }


def fixture_shapes(seed: int) -> tuple[FixtureShape, ...]:
    """The fixtures a run with `seed` cycles through (see `fixture_values`)."""
    return fixture_values.fixture_shapes(seed)


def _function_task(
    function_external_id: str,
    external_id: str,
    *,
    retries: int = 0,
    on_failure: OnFailure = OnFailure.ABORT_WORKFLOW,
    depends_on: tuple[str, ...] = (),
    timeout: int | None = None,
) -> dict[str, Any]:
    # isAsyncComplete: the suite, not the function, decides each outcome through task update.
    task: dict[str, Any] = {
        "externalId": external_id,
        "type": TaskType.FUNCTION.value,
        "parameters": {"function": {"externalId": function_external_id}, "isAsyncComplete": True},
        "retries": retries,
        "onFailure": on_failure.value,
        "dependsOn": [{"externalId": d} for d in depends_on],
    }
    if timeout is not None:
        task["timeout"] = timeout
    return task


@dataclass(frozen=True, slots=True)
class ShapesPlan:
    """Task layout of the execution the SEM-* checks observe, and the role of each task."""

    completed: str = "done"
    optional_failed: str = "optional-failed"
    optional_canceled: str = "optional-canceled"
    canceled: str = "waiting"
    container: str = "sub"
    nested_completed: str = "sub-ok"
    nested_canceled: str = "sub-waiting"
    dynamic_source: str = "plan"
    dynamic: str = "dyn"
    dynamic_completed: str = "dyn-ok"
    dynamic_canceled: str = "dyn-waiting"
    at_limit: str = "limit"
    at_limit_retries: int = 1
    never_started: str = "never"

    def dynamic_tasks(self, function_external_id: str) -> list[dict[str, Any]]:
        """What the dynamic task resolves to: the output the suite reports for `dynamic_source`."""
        fn = function_external_id
        return [_function_task(fn, self.dynamic_completed), _function_task(fn, self.dynamic_canceled)]

    def tasks(self, function_external_id: str) -> list[dict[str, Any]]:
        fn = function_external_id
        return [
            _function_task(fn, self.completed),
            _function_task(fn, self.optional_failed, on_failure=OnFailure.SKIP_TASK),
            _function_task(fn, self.optional_canceled, on_failure=OnFailure.SKIP_TASK),
            _function_task(fn, self.canceled),
            {
                "externalId": self.container,
                "type": TaskType.SUBWORKFLOW.value,
                "parameters": {
                    "subworkflow": {
                        "tasks": [
                            _function_task(fn, self.nested_completed),
                            _function_task(fn, self.nested_canceled),
                        ]
                    }
                },
                "retries": 0,
                "onFailure": OnFailure.ABORT_WORKFLOW.value,
                "dependsOn": [],
            },
            _function_task(fn, self.dynamic_source),
            {
                "externalId": self.dynamic,
                "type": TaskType.DYNAMIC.value,
                "parameters": {"dynamic": {"tasks": f"${{{self.dynamic_source}.output.response.tasks}}"}},
                "retries": 0,
                "onFailure": OnFailure.ABORT_WORKFLOW.value,
                "dependsOn": [{"externalId": self.dynamic_source}],
            },
            _function_task(fn, self.at_limit, retries=self.at_limit_retries),
            _function_task(fn, self.never_started, depends_on=(self.at_limit,)),
        ]


SHAPES = ShapesPlan()
SIMPLE_TASK = "step"
# The purpose of the workflows of generated task graphs (`exploration`).
SEQUENCE_PURPOSE = "sequence"
# The shortest task timeout the API allows, and how long past it the server may take to notice,
# counted from the fixture's start: the run judges it last, so most of that time passed doing work.
TIMEOUT_FIXTURE_SECONDS = 1
TIMEOUT_GRACE_SECONDS = 8.0
# A retried execution that shows no running task by then is dropped from the pool, not waited for.
REFAIL_TIMEOUT_SECONDS = 5.0


@dataclass
class Provisioner:
    client: CdfClient
    function_external_id: str = DEFAULT_FUNCTION_EXTERNAL_ID
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    # The run's seed: it draws the fixture values (the same seed, the same values).
    seed: int = 0
    created_workflows: list[str] = field(default_factory=list)
    created_executions: list[str] = field(default_factory=list)
    # (workflow external id, version) pairs that exist on the target.
    _ready_versions: set[tuple[str, str]] = field(default_factory=set)
    _timing_out: str | None = None
    _timing_out_since: float = 0.0
    _next_shape: int = 0
    # The fixture shape of each execution created, for the report.
    shapes_of: dict[str, str] = field(default_factory=dict)
    # Shared with every `for_scenario` copy: scenarios provision concurrently. Held for bookkeeping
    # only, never over a request.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # One per workflow version, shared too: held while that version is created, so that no scenario
    # runs it before it exists while the others create theirs meanwhile.
    _version_locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict, repr=False)
    # This copy's own: its shape cycle may be drawn from several threads (the fuzzer's pool).
    _shape_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def for_scenario(self) -> Provisioner:
        """A provisioner that shares this one's records and locks but cycles through the fixture shapes
        from the first: each concurrent scenario gets the same shapes in every run."""
        return replace(self, _next_shape=0, _shape_lock=threading.Lock())

    # -- workflows --------------------------------------------------------------------------------

    @property
    def shapes(self) -> tuple[FixtureShape, ...]:
        """The fixtures this run cycles through, drawn from its seed."""
        return fixture_shapes(self.seed)

    def _workflow(self, purpose: str, tasks: list[dict[str, Any]], shape: FixtureShape) -> str:
        external_id = fixture_values.workflow_external_id(
            f"retry-contract-{self.run_id}", purpose, shape.workflow_tail
        )
        # Held while creating: another scenario must not run the version before it exists. Listed for
        # cleanup before the first request, ready only once both exist: a creation cut short by an error
        # is tried again by the next scenario that needs it.
        key = (external_id, shape.version)
        with self._lock:
            version_lock = self._version_locks.setdefault(key, threading.Lock())
        with version_lock:
            with self._lock:
                ready = key in self._ready_versions
                if not ready and external_id not in self.created_workflows:
                    self.created_workflows.append(external_id)
            if not ready:
                self.client.upsert_workflow(
                    external_id, f"retry-contract fixture ({purpose}); safe to delete"
                )
                self.client.upsert_version(external_id, shape.version, tasks)
                with self._lock:
                    self._ready_versions.add(key)
        return external_id

    def next_shape(self) -> FixtureShape:
        """The next shape of this provisioner's own cycle (each `for_scenario` copy starts at the first)."""
        shapes = self.shapes
        with self._shape_lock:
            self._next_shape += 1
            return shapes[(self._next_shape - 1) % len(shapes)]

    def _run(self, purpose: str, tasks: list[dict[str, Any]], shape: FixtureShape | None = None) -> str:
        shape = shape or self.next_shape()
        workflow = self._workflow(purpose, tasks, shape)
        # An interruption between the server creating the execution and the client reading its id
        # would leave an execution that cleanup cannot find.
        with signals_deferred():
            execution = self.client.run(
                workflow, shape.version, shape.metadata, shape.workflow_input, shape.form
            )
            execution_id = execution.get("id")
            if not isinstance(execution_id, str):
                raise UnexpectedAnswer(f"run answered without an execution id: {execution!r}")
            with self._lock:
                self.created_executions.append(execution_id)
                self.shapes_of[execution_id] = shape.label
        return execution_id

    def graph_execution(self, tasks: list[dict[str, Any]], graph_name: str) -> str:
        """An execution of a generated task graph (`exploration`), in a workflow of its own: the graph's
        name leads the generated tail, so each graph gets its workflow whatever the fixture's tail."""
        shape = self.next_shape()
        tail = f"{graph_name}-{shape.workflow_tail}" if shape.workflow_tail else graph_name
        return self._run(SEQUENCE_PURPOSE, tasks, replace(shape, workflow_tail=tail))

    def _simple(self, shape: FixtureShape | None = None) -> str:
        return self._run("simple", [_function_task(self.function_external_id, SIMPLE_TASK)], shape)

    # -- executions in each state -----------------------------------------------------------------

    def running_execution(self) -> str:
        execution_id = self._simple()
        self._await_status(execution_id, ExecutionStatus.RUNNING)
        return execution_id

    def failed_execution(self, shape: FixtureShape | None = None) -> str:
        execution_id = self._simple(shape)
        self.refail(execution_id)
        return execution_id

    def terminated_execution(self) -> str:
        execution_id = self._simple()
        self.client.cancel(execution_id, "retry-contract fixture")
        self._await_status(execution_id, ExecutionStatus.TERMINATED)
        return execution_id

    def start_timing_out(self) -> None:
        """Run the execution whose only task times out after a second, early, so that by the time a
        scenario needs it the second has passed during other work rather than in a wait."""
        if self._timing_out is None:
            task = _function_task(self.function_external_id, SIMPLE_TASK, timeout=TIMEOUT_FIXTURE_SECONDS)
            self._timing_out_since = time.monotonic()
            self._timing_out = self._run("timeout", [task])

    def timed_out_execution(self) -> str | None:
        """The TIMED_OUT execution (see start_timing_out); None if the server does not time it out
        within the grace counted from its start (what is left of it is waited for, no more)."""
        self.start_timing_out()
        execution_id, self._timing_out = self._timing_out, None
        assert execution_id is not None
        deadline = self._timing_out_since + TIMEOUT_FIXTURE_SECONDS + TIMEOUT_GRACE_SECONDS
        reached = self.client.await_execution(
            execution_id,
            lambda d: d.get("status") == ExecutionStatus.TIMED_OUT,
            timeout=max(0.0, deadline - time.monotonic()),
        )
        return execution_id if reached.get("status") == ExecutionStatus.TIMED_OUT else None

    def completed_execution(self) -> str:
        execution_id = self._simple()
        self._finish_task(execution_id, SIMPLE_TASK, TaskStatus.COMPLETED)
        self._await_status(execution_id, ExecutionStatus.COMPLETED)
        return execution_id

    def shapes_execution(self) -> str:
        """A FAILED execution holding every task shape the SEM-* checks need."""
        plan = SHAPES
        execution_id = self._run("shapes", plan.tasks(self.function_external_id))
        self._finish_task(execution_id, plan.completed, TaskStatus.COMPLETED)
        self._finish_task(execution_id, plan.nested_completed, TaskStatus.COMPLETED)
        self._finish_task(execution_id, plan.optional_failed, TaskStatus.FAILED)
        tasks = plan.dynamic_tasks(self.function_external_id)
        self._finish_task(
            execution_id, plan.dynamic_source, TaskStatus.COMPLETED, {"response": {"tasks": tasks}}
        )
        self._finish_task(execution_id, plan.dynamic_completed, TaskStatus.COMPLETED)
        # Use up every allowed attempt of the limit task: its last failure aborts the workflow.
        for _ in range(plan.at_limit_retries + 1):
            self._finish_task(execution_id, plan.at_limit, TaskStatus.FAILED)
        self._await_status(execution_id, ExecutionStatus.FAILED)
        return execution_id

    def refail(self, execution_id: str, *, after_retry: bool = False) -> bool:
        """Drive a RUNNING execution to FAILED by ending a running attempt with a terminal error.

        After a successful retry (`after_retry`) this makes the execution retryable again, so a few
        executions serve many retries; its running attempt is then an effect of the retry, waited for
        within the run's wait budget (`CdfClient.await_effect`). False when no attempt runs (then it
        is left as it is).
        """
        return self.refailed(execution_id, after_retry=after_retry) is not None

    def refailed(self, execution_id: str, *, after_retry: bool = False) -> dict[str, Any] | None:
        """`refail`, answering the FAILED execution as last read, or None when it could not be failed."""

        def running_now(reading: dict[str, Any]) -> bool:
            return bool(execution_view.in_progress(reading))

        detailed = (
            self.client.await_effect(execution_id, running_now, timeout=REFAIL_TIMEOUT_SECONDS)
            if after_retry
            else self.client.await_execution(execution_id, running_now, timeout=REFAIL_TIMEOUT_SECONDS)
        )
        running = execution_view.in_progress(detailed)
        if not running:
            return None
        self.client.update_task(str(running[0]["id"]), TaskStatus.FAILED_WITH_TERMINAL_ERROR)
        final = self.client.await_execution(execution_id, lambda d: d.get("status") == ExecutionStatus.FAILED)
        return final if final.get("status") == ExecutionStatus.FAILED else None

    def _finish_task(
        self,
        execution_id: str,
        task_external_id: str,
        status: TaskStatus,
        output: dict[str, Any] | None = None,
    ) -> None:
        detailed = self.client.await_execution(
            execution_id,
            lambda d: bool(execution_view.in_progress(d, task_external_id)),
        )
        running = execution_view.in_progress(detailed, task_external_id)
        if not running:
            raise UnexpectedAnswer(
                f"task {task_external_id!r} of {execution_id} has no running attempt to end"
            )
        self.client.update_task(str(running[-1]["id"]), status.value, output)

    def _reaches(self, execution_id: str, status: ExecutionStatus) -> bool:
        return (
            self.client.await_execution(execution_id, lambda d: d.get("status") == status).get("status")
            == status
        )

    def _await_status(self, execution_id: str, status: ExecutionStatus) -> None:
        if not self._reaches(execution_id, status):
            raise UnexpectedAnswer(f"execution {execution_id} did not reach {status}")

    # -- cleanup ----------------------------------------------------------------------------------

    def cleanup(self, concurrency: int = 1) -> list[str]:
        """Cancel what is still running and delete the workflows created; returns what went wrong."""
        with self.client.exempt_from_budget():
            return self._cleanup(concurrency)

    def _cancel_if_running(self, execution_id: str) -> str | None:
        try:
            if self.client.detailed(execution_id).get("status") == ExecutionStatus.RUNNING:
                self.client.cancel(execution_id, "retry-contract cleanup")
        except Exception as error:  # cleanup must try everything even when one step fails
            return f"cancel {execution_id}: {error}"
        return None

    def _cleanup(self, concurrency: int) -> list[str]:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            problems = [p for p in pool.map(self._cancel_if_running, self.created_executions) if p]
            # Before the workflows go: a server may stop listing the executions of a deleted workflow.
            problems += self._cancel_lost_runs(pool)
        try:
            self.client.delete_workflows(self.created_workflows)
        except Exception as error:
            problems.append(f"delete workflows: {error}")
        return problems

    def _cancel_lost_runs(self, pool: ThreadPoolExecutor) -> list[str]:
        """Cancel the executions that run requests re-sent after a lost answer may have left running.

        The first attempt of such a request may have created an execution whose id never arrived; the
        running executions of the workflows this run created, listed, show it. A server without the
        list endpoint leaves only a warning. Nothing is listed when no run request was re-sent."""
        lost = [r for r in self.client.replayed if r.startswith("POST ") and r.endswith("/run")]
        if not lost:
            return []
        try:
            listed = self.client.list_executions(
                list(self.created_workflows), statuses=(ExecutionStatus.RUNNING.value,)
            )
        except Exception as error:  # cleanup must try everything even when one step fails
            listed, failure = None, f"list executions: {error}; "
        else:
            failure = "the server does not list executions (POST /workflows/executions/list); "
        if listed is None:
            return [
                f"{request} was re-sent after its answer was lost; {failure}if the first attempt "
                "created something, cleanup cannot know of it"
                for request in lost
            ]
        with self._lock:
            ids = [item.get("id") for item in listed]
            found = [
                execution_id
                for execution_id in dict.fromkeys(ids)
                if isinstance(execution_id, str) and execution_id not in self.created_executions
            ]
            # Created by this run after all: the report counts them.
            self.created_executions.extend(found)
        return [p for p in pool.map(self._cancel_if_running, found) if p]


# What making a used execution retryable again answers: its id, its reading (None when it could not be
# made retryable) and why not.
Returned = tuple[str, dict[str, Any] | None, str | None]


class RetryablePool:
    """Executions kept retryable for fuzzed retries, each with its latest reading (the `before` of the
    next retry). Thread-safe: used executions are made retryable again in the background while fuzzing
    goes on. They are handed out in a fixed cycle, whatever order the background work ends in, so the
    same case always meets the same execution (and the same fixture shape)."""

    def __init__(self, provisioner: Provisioner) -> None:
        self._provisioner = provisioner
        self._cycle: deque[Future[tuple[str, dict[str, Any]] | None]] = deque()
        self._lock = threading.Lock()

    def fill(self, size: int, background: ThreadPoolExecutor) -> None:
        """Create `size` executions in the background."""
        for _ in range(size):
            shape = self._provisioner.next_shape()
            self._enqueue(background.submit(self._fresh, shape))

    def _fresh(self, shape: FixtureShape) -> tuple[str, dict[str, Any]]:
        execution_id = self._provisioner.failed_execution(shape)
        return execution_id, self._provisioner.client.detailed(execution_id)

    def _enqueue(self, slot: Future[tuple[str, dict[str, Any]] | None]) -> None:
        with self._lock:
            self._cycle.append(slot)

    def take(self) -> tuple[str, dict[str, Any]]:
        """The next execution of the cycle (waiting for it if it is on its way back)."""
        while True:
            with self._lock:
                slot = self._cycle.popleft() if self._cycle else None
            if slot is None:
                return self._fresh(self._provisioner.next_shape())
            taken = slot.result()
            if taken is not None:
                return taken

    def return_later(
        self, background: ThreadPoolExecutor, work: Callable[[], Returned]
    ) -> Future[str | None]:
        """Run `work` in the background; the execution it answers with takes its turn in the cycle
        again, and the answered future says why it could not (a finding for the report) or None."""
        problem: Future[str | None] = Future()

        def run() -> tuple[str, dict[str, Any]] | None:
            try:
                execution_id, reading, lost = work()
            except BaseException as error:
                problem.set_exception(error)
                return None
            problem.set_result(lost)
            return (execution_id, reading) if reading is not None else None

        self._enqueue(background.submit(run))
        return problem

    def made_retryable(self, execution_id: str) -> Returned:
        """The execution made retryable again after a retry: its reading, or why it could not be."""
        detailed = self._provisioner.client.detailed(execution_id)
        status = execution_view.text_at(detailed, "status")
        if status in RETRYABLE_EXECUTION_STATUSES:
            return execution_id, detailed, None
        if status == ExecutionStatus.RUNNING:
            reading = self._provisioner.refailed(execution_id, after_retry=True)
            if reading is not None:
                return execution_id, reading, None
            return (
                execution_id,
                None,
                f"pooled execution {execution_id} stayed RUNNING after a retry with no attempt in "
                f"progress within {REFAIL_TIMEOUT_SECONDS:g} s, or did not fail when its attempt did",
            )
        return (
            execution_id,
            None,
            f"pooled execution {execution_id} is {status} after a retry, not retryable again",
        )
