"""The mock's state: workflows, versions, executions and sessions, per project, behind one lock.

Pure Python, no HTTP: methods take checked requests (see `validation.py`), raise `MockError`
subclasses, and return JSON-ready dicts rendered while the lock is held, so a caller never sees
an execution half-way through a change. The rules of the task model are the engine's.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from retry_contract.mock.config import ServerShape
from retry_contract.mock.engine import TaskEngine
from retry_contract.mock.errors import InvalidRequest, NotFound
from retry_contract.mock.model import Attempt, Execution, JSONObject, VersionRecord, WorkflowRecord
from retry_contract.mock.render import (
    attempt_json,
    execution_detailed_json,
    execution_json,
    version_json,
    workflow_json,
)
from retry_contract.mock.validation import (
    DeleteRequest,
    RunRequest,
    TaskUpdate,
    VersionUpsert,
    WorkflowUpsert,
    show,
)


@dataclass(slots=True)
class Session:
    id: int
    project: str
    nonce: str
    session_type: str
    created_time: int
    used: bool = False


@dataclass(slots=True)
class _ProjectState:
    workflows: dict[str, WorkflowRecord] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    # Task attempt id -> its execution and the attempt, for tasks/{taskId}/update.
    attempts: dict[str, tuple[Execution, Attempt]] = field(default_factory=dict)
    indexed: dict[str, int] = field(default_factory=dict)


class MockStore:
    """Thread-safe state of one mock instance; every public method holds the lock throughout."""

    def __init__(
        self,
        clock: Callable[[], int],
        nonce_ttl_millis: int,
        engine: TaskEngine | None = None,
        shape: ServerShape | None = None,
    ) -> None:
        """`shape` is how the server behaves where faithful servers differ (`MockConfig.shape`);
        None: the classic profile's."""
        self._clock = clock
        self._nonce_ttl_millis = nonce_ttl_millis
        self.engine = engine if engine is not None else TaskEngine(clock)
        self.shape = shape if shape is not None else ServerShape()
        self._lock = threading.Lock()
        self._projects: dict[str, _ProjectState] = {}
        self._sessions: dict[str, Session] = {}
        self._next_session_id = 1

    # --- sessions -----------------------------------------------------------------------------

    def create_session(self, project: str, session_type: str) -> JSONObject:
        with self._lock:
            session = Session(
                id=self._next_session_id,
                project=project,
                nonce=secrets.token_urlsafe(32),
                session_type=session_type,
                created_time=self._clock(),
            )
            self._next_session_id += 1
            self._sessions[session.nonce] = session
            return {"id": session.id, "status": "READY", "nonce": session.nonce, "type": session.session_type}

    def _valid_session(self, project: str, nonce: str) -> Session:
        """The session a nonce binds, if it may be used now; the caller marks it used on success."""
        session = self._sessions.get(nonce)
        if session is None or session.project != project:
            raise InvalidRequest(
                f"The nonce was not issued in project {project!r}; create one with POST /sessions"
            )
        if session.used:
            raise InvalidRequest("The nonce has already been used; a nonce is good for one run or retry")
        if self._clock() - session.created_time >= self._nonce_ttl_millis:
            raise InvalidRequest("The nonce has expired; create a new one with POST /sessions")
        return session

    # --- workflows and versions ---------------------------------------------------------------

    def upsert_workflow(self, project: str, upsert: WorkflowUpsert) -> JSONObject:
        with self._lock:
            now = self._clock()
            workflows = self._state(project).workflows
            workflow = workflows.get(upsert.external_id)
            if workflow is None:
                workflow = WorkflowRecord(upsert.external_id, created_time=now, last_updated_time=now)
                workflows[upsert.external_id] = workflow
            # Upsert replaces: a field left out of the body is cleared, as the API documents.
            workflow.description = upsert.description
            workflow.data_set_id = upsert.data_set_id
            workflow.max_concurrent_executions = upsert.max_concurrent_executions
            workflow.last_updated_time = now
            return workflow_json(workflow)

    def delete_workflows(self, project: str, request: DeleteRequest) -> None:
        with self._lock:
            workflows = self._state(project).workflows
            missing = [xid for xid in request.external_ids if xid not in workflows]
            if missing and not request.ignore_unknown_ids:
                raise InvalidRequest(
                    f"{len(missing)} workflow(s) not found; nothing was deleted",
                    missing=[{"externalId": xid} for xid in missing],
                )
            # Executions stay readable after their workflow is gone, like run history.
            for xid in request.external_ids:
                workflows.pop(xid, None)

    def upsert_version(self, project: str, upsert: VersionUpsert) -> JSONObject:
        with self._lock:
            now = self._clock()
            workflows = self._state(project).workflows
            workflow = workflows.get(upsert.workflow_external_id)
            if workflow is None:
                # Upserting a version of an unknown workflow creates the workflow.
                workflow = WorkflowRecord(
                    upsert.workflow_external_id, created_time=now, last_updated_time=now
                )
                workflows[upsert.workflow_external_id] = workflow
            previous = workflow.versions.get(upsert.version)
            record = VersionRecord(
                workflow_external_id=upsert.workflow_external_id,
                version=upsert.version,
                definition=upsert.definition,
                created_time=now if previous is None else previous.created_time,
                last_updated_time=now,
            )
            workflow.versions[upsert.version] = record
            return version_json(record)

    # --- executions ---------------------------------------------------------------------------

    def run(self, project: str, workflow_external_id: str, version: str, request: RunRequest) -> JSONObject:
        with self._lock:
            state = self._state(project)
            workflow = state.workflows.get(workflow_external_id)
            record = workflow.versions.get(version) if workflow is not None else None
            if record is None:
                raise NotFound(
                    f"Workflow {show(workflow_external_id)} version {show(version)} not found",
                    missing=[{"workflowExternalId": workflow_external_id, "version": version}],
                )
            session = self._valid_session(project, request.nonce)
            now = self._clock()
            execution = Execution(
                id=str(uuid.uuid4()),
                project=project,
                workflow_external_id=workflow_external_id,
                version=version,
                engine_execution_id=str(uuid.uuid4()),
                created_time=now,
                # A server may stamp the start before the record is created (the recorded execution).
                start_time=max(0, now - self.shape.start_lead_millis),
                definition=record.definition,
                metadata=dict(request.metadata),
                input=request.input,
                shape=self.shape,
            )
            state.executions[execution.id] = execution
            session.used = True
            # The answer shows the execution as accepted, before its tasks make progress,
            # like a server that runs the workflow asynchronously.
            answer = execution_json(execution)
            self._settle(state, execution)
            return answer

    def get_execution(self, project: str, execution_id: str) -> JSONObject:
        with self._lock:
            state = self._state(project)
            execution = self._execution(state, execution_id)
            return execution_detailed_json(execution)

    def cancel(self, project: str, execution_id: str, reason: str | None) -> JSONObject:
        with self._lock:
            state = self._state(project)
            execution = self._execution(state, execution_id)
            self.engine.cancel(execution, reason)
            return execution_json(execution)

    def retry(self, project: str, execution_id: str, nonce: str) -> JSONObject:
        """Retry an execution; the checks run in the order 404, nonce (400), state (409)."""
        with self._lock:
            state = self._state(project)
            execution = self._execution(state, execution_id)
            session = self._valid_session(project, nonce)
            self.engine.retry(execution)
            session.used = True
            answer = execution_json(execution)
            self._settle(state, execution)
            return answer

    def update_task(self, project: str, task_id: str, update: TaskUpdate) -> JSONObject:
        with self._lock:
            state = self._state(project)
            found = state.attempts.get(task_id)
            if found is None:
                raise NotFound(f"Task {task_id} not found", missing=[{"id": task_id}])
            execution, attempt = found
            self._settle(state, execution, refresh=True)
            self.engine.update_task(execution, attempt, update)
            self._index(state, execution)
            return attempt_json(attempt, execution.shape)

    # --- helpers (lock held) ------------------------------------------------------------------

    def _state(self, project: str) -> _ProjectState:
        return self._projects.setdefault(project, _ProjectState())

    def _execution(self, state: _ProjectState, execution_id: str) -> Execution:
        execution = state.executions.get(execution_id)
        if execution is None:
            raise NotFound(f"Workflow execution {execution_id} not found", missing=[{"id": execution_id}])
        # Timeouts are noticed when someone looks, which is all a client can tell apart.
        self._settle(state, execution, refresh=True)
        return execution

    def _settle(self, state: _ProjectState, execution: Execution, refresh: bool = False) -> None:
        if refresh:
            self.engine.refresh(execution)
        else:
            self.engine.settle(execution)
        self._index(state, execution)

    @staticmethod
    def _index(state: _ProjectState, execution: Execution) -> None:
        start = state.indexed.get(execution.id, 0)
        for attempt in execution.attempts[start:]:
            state.attempts[attempt.id] = (execution, attempt)
        state.indexed[execution.id] = len(execution.attempts)
