"""The mock's state: workflows, versions, executions and sessions, per project, behind one lock.

Pure Python, no HTTP: methods take checked requests (see `validation.py`), raise `MockError`
subclasses, and return JSON-ready dicts rendered while the lock is held, so a caller never sees
an execution half-way through a change. The rules of the task model are the engine's.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cdf_workflows_mock.cdf import ExecutionStatus
from cdf_workflows_mock.config import DEFAULT_MAX_FINISHED_EXECUTIONS, DEFAULT_MAX_SESSIONS, ServerShape
from cdf_workflows_mock.engine import TaskEngine
from cdf_workflows_mock.errors import Conflict, InvalidRequest, NotFound
from cdf_workflows_mock.model import Attempt, Execution, JSONObject, VersionRecord, WorkflowRecord
from cdf_workflows_mock.nonces import NonceSeal
from cdf_workflows_mock.paging import Listing, PageRequest, page_of
from cdf_workflows_mock.render import (
    attempt_json,
    execution_detailed_json,
    execution_json,
    list_json,
    version_json,
    workflow_json,
)
from cdf_workflows_mock.validation import (
    DeleteRequest,
    ExecutionListQuery,
    RunRequest,
    TaskUpdate,
    VersionDeleteRequest,
    VersionListQuery,
    VersionUpsert,
    WorkflowUpsert,
    matches_any,
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
    client_id: str | None = None
    revoked: bool = False

    @property
    def status(self) -> str:
        """READY until its nonce binds a run or retry (then ACTIVE), REVOKED once revoked."""
        if self.revoked:
            return "REVOKED"
        return "ACTIVE" if self.used else "READY"


def _not_issued(project: str) -> InvalidRequest:
    return InvalidRequest(f"The nonce was not issued in project {project!r}; create one with POST /sessions")


def _expired_nonce() -> InvalidRequest:
    return InvalidRequest("The nonce has expired; create a new one with POST /sessions")


def _used_nonce() -> InvalidRequest:
    return InvalidRequest("The nonce has already been used; a nonce is good for one run or retry")


@dataclass(slots=True)
class _ProjectState:
    workflows: dict[str, WorkflowRecord] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    # Task attempt id -> its execution and the attempt, for tasks/{taskId}/update.
    attempts: dict[str, tuple[Execution, Attempt]] = field(default_factory=dict)
    indexed: dict[str, int] = field(default_factory=dict)


# The order of each list. The API documents versions and executions as "ordered by createdTime" (not
# which way: the mock lists oldest first) and triggers by externalId; for workflows and sessions it says
# nothing, and the mock lists them in creation order. Ties are broken by identifier, so the order, and
# with it every cursor, never depends on the order records happen to be stored in.
_WORKFLOWS: Listing[WorkflowRecord] = Listing(
    "workflows", lambda workflow: (workflow.created_time, workflow.external_id), (int, str)
)
_VERSIONS: Listing[VersionRecord] = Listing(
    "versions",
    lambda version: (version.created_time, version.workflow_external_id, version.version),
    (int, str, str),
)
_EXECUTIONS: Listing[Execution] = Listing(
    "executions", lambda execution: (execution.created_time, execution.id), (int, str)
)
_SESSIONS: Listing[Session] = Listing("sessions", lambda session: (session.id,), (int,))
# The mock keeps no triggers; the listing still checks the cursors given to it.
_TRIGGERS: Listing[str] = Listing("triggers", lambda external_id: (external_id,), (str,))


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
        # The bounds of what the store keeps (`limit`; MockConfig documents them).
        self.max_sessions = DEFAULT_MAX_SESSIONS
        self.max_finished_executions = DEFAULT_MAX_FINISHED_EXECUTIONS
        # Nonces say when and where they were issued, so a forgotten one is refused as before.
        self._seal = NonceSeal()
        # Nonces in the order their sessions were created, to forget the oldest first.
        self._session_order: deque[str] = deque()
        # Finished executions as (project, id), in the order they finished, the longest ago first.
        self._finished: OrderedDict[tuple[str, str], None] = OrderedDict()

    def limit(self, *, max_sessions: int, max_finished_executions: int) -> None:
        """Keep at most this many sessions and finished executions (see `MockConfig`)."""
        if max_sessions < 1 or max_finished_executions < 1:
            raise ValueError("the store's bounds must be positive")
        with self._lock:
            self.max_sessions = max_sessions
            self.max_finished_executions = max_finished_executions
            self._forget_sessions()
            self._forget_finished()

    def sizes(self) -> dict[str, int]:
        """How much the store holds, for tests and benchmarks of its bounds."""
        with self._lock:
            return {
                "sessions": len(self._sessions),
                "executions": sum(len(state.executions) for state in self._projects.values()),
                "finished_executions": len(self._finished),
                "attempts": sum(len(state.attempts) for state in self._projects.values()),
            }

    # --- sessions -----------------------------------------------------------------------------

    def create_session(self, project: str, session_type: str, client_id: str | None = None) -> JSONObject:
        with self._lock:
            now = self._clock()
            session = Session(
                id=self._next_session_id,
                project=project,
                nonce=self._seal.issue(project, self._next_session_id, now),
                session_type=session_type,
                created_time=now,
                client_id=client_id,
            )
            self._next_session_id += 1
            self._sessions[session.nonce] = session
            self._session_order.append(session.nonce)
            self._forget_sessions()
            return {"id": session.id, "status": "READY", "nonce": session.nonce, "type": session.session_type}

    def _valid_session(self, project: str, nonce: str) -> Session:
        """The session a nonce binds, if it may be used now; the caller marks it used on success."""
        # Expiry is checked before use and revocation: the store forgets a session once its nonce
        # expires, and a forgotten nonce can only be told expired, so the answer never depends on
        # whether the session is still kept.
        session = self._sessions.get(nonce)
        if session is None:
            stamp = self._seal.read(project, nonce)
            if stamp is None:
                raise _not_issued(project)
            if self._expired(stamp.created_time):
                raise _expired_nonce()
            # Issued here, not expired, yet forgotten: the session cap dropped it. It may have been
            # used, and a nonce must never be accepted twice: refused as a used one is.
            raise _used_nonce()
        if session.project != project:
            raise _not_issued(project)
        if self._expired(session.created_time):
            raise _expired_nonce()
        if session.revoked:
            raise InvalidRequest("The nonce's session has been revoked; create a new one with POST /sessions")
        if session.used:
            raise _used_nonce()
        return session

    def _expired(self, created_time: int) -> bool:
        return self._clock() - created_time >= self._nonce_ttl_millis

    def _forget_sessions(self) -> None:
        """Forget the sessions whose nonce has expired, and the oldest beyond `max_sessions`."""
        order = self._session_order
        while order:
            session = self._sessions.get(order[0])
            within_cap = len(self._sessions) <= self.max_sessions
            if session is not None and within_cap and not self._expired(session.created_time):
                return
            order.popleft()
            if session is not None:
                del self._sessions[session.nonce]

    def list_sessions(self, project: str, status: str | None, page: PageRequest) -> JSONObject:
        with self._lock:
            found = [
                session
                for session in self._sessions.values()
                if session.project == project and status in (None, session.status)
            ]
            listed = page_of(_SESSIONS, found, page, {"status": status})
            return list_json([self._session_json(s) for s in listed.items], listed.next_cursor)

    def sessions_by_ids(self, project: str, ids: tuple[int, ...]) -> JSONObject:
        """The sessions with these ids, in the order asked; a 400 naming every unknown id otherwise."""
        with self._lock:
            return {"items": [self._session_json(s) for s in self._sessions_by_id(project, ids)]}

    def revoke_sessions(self, project: str, ids: tuple[int, ...], with_details: bool) -> JSONObject:
        """Revoke sessions (again, for one already revoked); `with_details` False answers only their ids,
        as the API does for a caller without sessionsAcl:LIST."""
        with self._lock:
            sessions = self._sessions_by_id(project, ids)
            for session in sessions:
                session.revoked = True
            return {"items": [self._session_json(s) if with_details else {"id": s.id} for s in sessions]}

    def _sessions_by_id(self, project: str, ids: tuple[int, ...]) -> list[Session]:
        by_id = {s.id: s for s in self._sessions.values() if s.project == project}
        missing = [session_id for session_id in ids if session_id not in by_id]
        if missing:
            raise InvalidRequest(
                f"{len(missing)} session id(s) not found in project {project!r}",
                missing=[{"id": session_id} for session_id in missing],
            )
        return [by_id[session_id] for session_id in ids]

    def _session_json(self, session: Session) -> JSONObject:
        """A session as the lists show it: never with its nonce, which only its creator may see."""
        out: JSONObject = {
            "id": session.id,
            "type": session.session_type,
            "status": session.status,
            "creationTime": session.created_time,
            # The mock refreshes no session: it expires when its nonce stops being accepted.
            "expirationTime": session.created_time + self._nonce_ttl_millis,
        }
        if session.client_id is not None:
            out["clientId"] = session.client_id
        return out

    # --- workflows and versions ---------------------------------------------------------------

    def get_workflow(self, project: str, external_id: str) -> JSONObject:
        with self._lock:
            return workflow_json(self._workflow(self._state(project), external_id))

    def list_workflows(self, project: str, page: PageRequest) -> JSONObject:
        with self._lock:
            listed = page_of(_WORKFLOWS, self._state(project).workflows.values(), page)
            return list_json([workflow_json(w) for w in listed.items], listed.next_cursor)

    def get_version(self, project: str, external_id: str, version: str) -> JSONObject:
        with self._lock:
            record = self._workflow(self._state(project), external_id).versions.get(version)
            if record is None:
                raise NotFound(
                    f"Workflow {show(external_id)} has no version {show(version)}",
                    missing=[{"workflowExternalId": external_id, "version": version}],
                )
            return version_json(record)

    def list_versions(self, project: str, query: VersionListQuery) -> JSONObject:
        with self._lock:
            found = [
                record
                for workflow in self._state(project).workflows.values()
                for record in workflow.versions.values()
                if matches_any(query.workflow_filters, record.workflow_external_id, record.version)
            ]
            listed = page_of(_VERSIONS, found, query.page, query.filter_json)
            return list_json([version_json(v) for v in listed.items], listed.next_cursor)

    def delete_versions(self, project: str, request: VersionDeleteRequest) -> None:
        """Delete versions, all or none; their executions stay readable, like those of a deleted workflow."""
        with self._lock:
            workflows = self._state(project).workflows
            missing = [
                (xid, version)
                for xid, version in request.versions
                if xid not in workflows or version not in workflows[xid].versions
            ]
            if missing and not request.ignore_unknown_ids:
                raise NotFound(
                    f"{len(missing)} workflow version(s) not found; nothing was deleted",
                    missing=[{"workflowExternalId": xid, "version": version} for xid, version in missing],
                )
            for xid, version in request.versions:
                if xid in workflows:
                    workflows[xid].versions.pop(version, None)

    def _workflow(self, state: _ProjectState, external_id: str) -> WorkflowRecord:
        workflow = state.workflows.get(external_id)
        if workflow is None:
            raise NotFound(f"Workflow {show(external_id)} not found", missing=[{"externalId": external_id}])
        return workflow

    # --- triggers -----------------------------------------------------------------------------

    def list_triggers(self, project: str, page: PageRequest) -> JSONObject:
        """Always empty: the mock runs no triggers (a cursor given is still checked)."""
        listed = page_of(_TRIGGERS, [], page)
        return list_json([], listed.next_cursor)

    def list_trigger_runs(self, project: str, external_id: str, page: PageRequest) -> JSONObject:
        """The run history of a trigger: as no trigger exists in the mock, a 404 once the page is valid."""
        page_of(_TRIGGERS, [], page, {"history": external_id})
        raise NotFound(f"Trigger {show(external_id)} not found", missing=[{"externalId": external_id}])

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
                # 404, as Cognite's OpenAPI document says for unknown ids without ignoreUnknownIds.
                raise NotFound(
                    f"{len(missing)} workflow(s) not found; nothing was deleted",
                    missing=[{"externalId": xid} for xid in missing],
                )
            # With its versions, as the API documents. Executions stay readable, and listed, after their
            # workflow is gone, like run history (the documentation says nothing of them).
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

    def run(
        self,
        project: str,
        workflow_external_id: str,
        version: str,
        request: RunRequest,
        *,
        execution_id: str | None = None,
    ) -> JSONObject:
        """`execution_id` names the new execution (a state file may; the API never does); None: a
        fresh UUID."""
        with self._lock:
            state = self._state(project)
            workflow = state.workflows.get(workflow_external_id)
            record = workflow.versions.get(version) if workflow is not None else None
            if record is None:
                raise NotFound(
                    f"Workflow {show(workflow_external_id)} version {show(version)} not found",
                    missing=[{"workflowExternalId": workflow_external_id, "version": version}],
                )
            if execution_id is not None and execution_id in state.executions:
                raise Conflict(f"Workflow execution {execution_id} already exists")
            session = self._valid_session(project, request.nonce)
            now = self._clock()
            execution = Execution(
                id=str(uuid.uuid4()) if execution_id is None else execution_id,
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
            self._forget_finished()
            return answer

    def list_executions(self, project: str, query: ExecutionListQuery) -> JSONObject:
        with self._lock:
            state = self._state(project)
            found = []
            for execution in state.executions.values():
                # Brought up to date first, as a single read would be: a status filter sees timeouts.
                self._settle(state, execution, refresh=True)
                if query.matches(execution):
                    found.append(execution)
            listed = page_of(_EXECUTIONS, found, query.page, query.filter_json)
            return list_json([execution_json(e) for e in listed.items], listed.next_cursor)

    def get_execution(self, project: str, execution_id: str) -> JSONObject:
        with self._lock:
            state = self._state(project)
            execution = self._execution(state, execution_id)
            answer = execution_detailed_json(execution)
            self._forget_finished()
            return answer

    def cancel(self, project: str, execution_id: str, reason: str | None) -> JSONObject:
        with self._lock:
            state = self._state(project)
            execution = self._execution(state, execution_id)
            self.engine.cancel(execution, reason)
            self._track(execution)
            answer = execution_json(execution)
            self._forget_finished()
            return answer

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
            self._track(execution)
            answer = attempt_json(attempt, execution.shape)
            self._forget_finished()
            return answer

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
        self._track(execution)

    def _track(self, execution: Execution) -> None:
        """Note whether the execution is finished, and since when in the order of finishing."""
        key = (execution.project, execution.id)
        if execution.status is ExecutionStatus.RUNNING:
            self._finished.pop(key, None)  # retried: it counts again from when it next finishes
        elif key not in self._finished:
            self._finished[key] = None

    def _forget_finished(self) -> None:
        """Forget the executions that finished longest ago beyond `max_finished_executions`.

        Called at the end of a request's work, never while executions are being iterated over.
        """
        while len(self._finished) > self.max_finished_executions:
            (project, execution_id), _ = self._finished.popitem(last=False)
            state = self._projects.get(project)
            if state is not None:
                self._forget_execution(state, execution_id)

    @staticmethod
    def _forget_execution(state: _ProjectState, execution_id: str) -> None:
        """Drop an execution and every index entry of it: it answers 404 from now on."""
        execution = state.executions.pop(execution_id, None)
        state.indexed.pop(execution_id, None)
        if execution is not None:
            for attempt in execution.attempts:
                state.attempts.pop(attempt.id, None)

    @staticmethod
    def _index(state: _ProjectState, execution: Execution) -> None:
        start = state.indexed.get(execution.id, 0)
        for attempt in execution.attempts[start:]:
            state.attempts[attempt.id] = (execution, attempt)
        state.indexed[execution.id] = len(execution.attempts)
