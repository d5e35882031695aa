"""Deliberate server bugs ("defects") that the mock can switch on, to prove that the suite catches them.

Each defect is a bug a real implementation of the retry endpoint could plausibly have, and it shows
only through the API's HTTP behaviour: no header, marker or back door tells a client that a defect is
on. Unless its description says otherwise a defect changes only
`POST /api/v1/projects/{project}/workflows/executions/{executionId}/retry`, so that the suite can still
provision its fixtures through the neighbouring endpoints.

The faithful mock knows nothing of this module beyond one branch in `create_app`. A defect is made of
one or more of:

- a subclass of the app's `Dispatcher` (who the caller is, which project they may use),
- a subclass of `_Handlers`, the app's `Handlers` with the retry split into replaceable steps,
- a subclass of `_Store`, the `MockStore` with the retry split into replaceable steps,
- a subclass of the model's `TaskEngine` (which executions are retried and how),
- a rewrite of the retry's answer (a serializer bug),
- a `_Wire` in the `WireDefects` middleware (status, headers, bodies, dropped connections, and
  failures in front of the app that answer with the web framework's default error page).

Defects combine (`MockConfig(defects={...})`) unless two of them change the same method or attribute
of the same class; `check_combination` refuses those, as it refuses unknown names.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, ClassVar, TypeVar, cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retry_contract.contract import METADATA_LIMITS
from retry_contract.domain import (
    COMPLETED_TASK_STATUSES,
    RETRYABLE_EXECUTION_STATUSES,
    RETRYABLE_TASK_STATUSES,
    WORKFLOW_READ,
    WORKFLOW_WRITE,
    ExecutionStatus,
    TaskStatus,
)
from retry_contract.mock.app import Call, Dispatcher, Handlers, assemble_app
from retry_contract.mock.auth import Caller
from retry_contract.mock.bodies import MAX_BODY_BYTES, REQUEST_ID_HEADER, _decode_content
from retry_contract.mock.config import MockConfig, TokenGrant
from retry_contract.mock.engine import RetryPlan, TaskEngine
from retry_contract.mock.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    MockError,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from retry_contract.mock.model import Attempt, Execution, JSONObject, TaskDef
from retry_contract.mock.render import execution_json
from retry_contract.mock.routing import Endpoint, path_segments
from retry_contract.mock.store import MockStore, Session
from retry_contract.mock.validation import expect_object, json_type, parse_nonce, parse_uuid, show


@dataclass(frozen=True)
class Defect:
    name: str
    # One line: what the server does wrong, as its users would see it.
    description: str
    # The requirement IDs it violates, the one it is mainly about first.
    breaks: tuple[str, ...]


_PATH_ID = "The executionId in the path"


def _is_retry_path(segments: Sequence[str]) -> bool:
    return (
        len(segments) == 8
        and tuple(segments[:3]) == ("api", "v1", "projects")
        and tuple(segments[4:6]) == ("workflows", "executions")
        and segments[7] == "retry"
    )


def _is_retry_request(request: Request) -> bool:
    return _is_retry_path(path_segments(request.scope))


def _is_retry_endpoint(endpoint: Endpoint) -> bool:
    return endpoint.template[-2:] == ("{id}", "retry")


def _write_grant(project: str) -> TokenGrant:
    return TokenGrant(frozenset({WORKFLOW_READ, WORKFLOW_WRITE}), frozenset({project}))


def _bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" when there is none."""
    scheme, _, token = (request.headers.get("authorization") or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class _Unprocessable(MockError):
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY


class _LengthRequired(MockError):
    http_status = HTTPStatus.LENGTH_REQUIRED


class _UnmappedError(RuntimeError):
    """An error of the server's own stack (database, deserializer) that no handler maps to a 4xx: the
    dispatcher answers it 500, as a real server's catch-all would."""


# --- who may retry (Dispatcher variants) ----------------------------------------------------------


class _Dispatcher(Dispatcher):
    """The dispatcher of a defective mock: its crashes are the defects' doing, not bugs to shout about."""

    crash_log_level = logging.DEBUG


class _NoTokenRunsAsService(_Dispatcher):
    """A retry without credentials is taken for an internal call and runs as the service identity."""

    def identify(self, request: Request) -> Caller:
        if _is_retry_request(request) and "authorization" not in request.headers:
            return Caller(token="", grant=_write_grant(self._config.project))
        return super().identify(request)


class _AnyBearerToken(_Dispatcher):
    """The retry checks only that a bearer token is there, never that the token is known."""

    def identify(self, request: Request) -> Caller:
        try:
            return super().identify(request)
        except Unauthorized:
            token = _bearer_token(request)
            if _is_retry_request(request) and token:
                return Caller(token=token, grant=_write_grant(self._config.project))
            raise


class _UnknownToken403(_Dispatcher):
    """An unknown token on the retry is answered as a permission problem."""

    def identify(self, request: Request) -> Caller:
        try:
            return super().identify(request)
        except Unauthorized:
            if _is_retry_request(request) and _bearer_token(request):
                raise Forbidden("The token is not allowed to retry workflow executions") from None
            raise


class _ProjectScopeIgnored(_Dispatcher):
    """The retry trusts the project in the path: a token of one project may act in any other."""

    def check_project(self, request: Request, caller: Caller, project: str) -> None:
        if not _is_retry_request(request):
            super().check_project(request, caller, project)


# --- the retry handler in steps, and its variants ---------------------------------------------------

AnswerRewrite = Callable[[JSONObject], None]


class _Store(MockStore):
    """`MockStore` with the retry split into the steps the defects replace; with none replaced it
    behaves exactly as `MockStore.retry` (checks in the order 404, nonce, state)."""

    def retry(self, project: str, execution_id: str, nonce: object) -> JSONObject:
        with self._lock:
            execution = self.retry_lookup(project, execution_id)
            session = self.retry_session(project, nonce)
            before = execution_json(execution)
            self.engine.retry(execution)
            self.retry_consume(session)
            answer = self.retry_answer(execution, before)
            self._settle(self._state(project), execution)
            return answer

    def retry_lookup(self, project: str, execution_id: str) -> Execution:
        return self._execution(self._state(project), execution_id)

    def retry_session(self, project: str, nonce: object) -> Session | None:
        if not isinstance(nonce, str):
            raise InvalidRequest(f"'authentication.nonce' must be a string, got {json_type(nonce)}")
        return self._valid_session(project, nonce)

    def retry_consume(self, session: Session | None) -> None:
        if session is not None:
            session.used = True

    def retry_answer(self, execution: Execution, before: JSONObject) -> JSONObject:
        return execution_json(execution)


class _Handlers(Handlers):
    """`Handlers` with the retry split into the steps the defects replace, and the defects' rewrites
    of its answer applied; with neither it answers exactly as `Handlers.retry`."""

    def __init__(self, store: _Store, answer_rewrites: Sequence[AnswerRewrite] = ()) -> None:
        super().__init__(store)
        self._retry_store = store
        self._answer_rewrites = tuple(answer_rewrites)

    async def retry(self, call: Call) -> object:
        execution_id = self.retry_execution_id(call.params["id"])
        self.retry_check_headers(call.request.headers)
        nonce = await self.retry_nonce(call)
        answer = await run_in_threadpool(self.retry_in_store, call.project, execution_id, nonce)
        for rewrite in self._answer_rewrites:
            rewrite(answer)
        return answer

    def retry_execution_id(self, raw: str) -> str:
        return parse_uuid(raw, _PATH_ID)

    def retry_check_headers(self, headers: Headers) -> None:
        """The faithful mock reads any body it can decode, whatever its declared type and framing."""

    async def retry_nonce(self, call: Call) -> object:
        return parse_nonce(await self.retry_body(call))

    async def retry_body(self, call: Call) -> object:
        """The decoded JSON body; every variant of the retry reads it through here."""
        return await call.body()

    def retry_in_store(self, project: str, execution_id: str, nonce: object) -> JSONObject:
        return self._retry_store.retry(project, execution_id, nonce)


def _nonce_field(body: object) -> object:
    """`authentication.nonce` as sent, after the shape checks that come before the nonce's own."""
    obj = expect_object(body, "The request body")
    authentication = expect_object(obj.get("authentication"), "'authentication'")
    if "nonce" not in authentication:
        raise InvalidRequest("'authentication.nonce' is required: create one with POST /sessions")
    return authentication["nonce"]


class _ReadonlyCanRetry(_Handlers):
    """The retry route is registered with the read capability."""

    def endpoints(self) -> list[Endpoint]:
        return [
            replace(endpoint, capability=WORKFLOW_READ) if _is_retry_endpoint(endpoint) else endpoint
            for endpoint in super().endpoints()
        ]


_OTHER_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS")


class _AnyMethodRetries(_Handlers):
    """The retry route is registered for every method, not just POST."""

    def endpoints(self) -> list[Endpoint]:
        endpoints = super().endpoints()
        retry = next(endpoint for endpoint in endpoints if _is_retry_endpoint(endpoint))
        return endpoints + [replace(retry, method=method) for method in _OTHER_METHODS]


class _MalformedIdCrashes(_Handlers):
    """The path id is checked by a UUID parser whose error nobody catches."""

    def retry_execution_id(self, raw: str) -> str:
        uuid.UUID(raw)
        return raw


class _IdTruncatedTo36(_Handlers):
    """The path id goes through a 36-character buffer before it is checked."""

    def retry_execution_id(self, raw: str) -> str:
        return super().retry_execution_id(raw[:36])


class _MalformedId422(_Handlers):
    """A malformed path id is answered 422 Unprocessable Entity."""

    def retry_execution_id(self, raw: str) -> str:
        try:
            return super().retry_execution_id(raw)
        except InvalidRequest as error:
            raise _Unprocessable(error.message) from None


class _MissingBodyCrashes(_Handlers):
    """The body is read as optional, then used as if it were always there."""

    async def retry_body(self, call: Call) -> object:
        body: Any = await call.optional_body()
        if "authentication" not in body:
            raise InvalidRequest("The request body must have an 'authentication' object holding a 'nonce'")
        return body


class _ArrayBodyCrashes(_Handlers):
    """The body's type check rejects scalars, and arrays slip through to a dict lookup."""

    async def retry_nonce(self, call: Call) -> object:
        body: Any = await self.retry_body(call)
        if isinstance(body, str | int | float | bool):
            raise InvalidRequest(f"The request body must be a JSON object, got {json_type(body)}")
        if body.get("authentication") is None:
            raise InvalidRequest("The request body must have an 'authentication' object holding a 'nonce'")
        return parse_nonce(body)


class _BodyErrors422(_Handlers):
    """Every problem with the retry's body is answered 422 instead of 400."""

    async def retry_nonce(self, call: Call) -> object:
        try:
            return await super().retry_nonce(call)
        except InvalidRequest as error:
            raise _Unprocessable(error.message) from None


class _EmptyNonceParsed(_Handlers):
    """The nonce must be a string, but nothing says it must not be empty."""

    async def retry_nonce(self, call: Call) -> object:
        nonce = _nonce_field(await self.retry_body(call))
        if not isinstance(nonce, str):
            raise InvalidRequest(f"'authentication.nonce' must be a string, got {json_type(nonce)}")
        return nonce


class _EmptyNonceSkipsSession(_Store):
    """`if nonce:` guards the session check, so an empty nonce needs no session."""

    def retry_session(self, project: str, nonce: object) -> Session | None:
        return super().retry_session(project, nonce) if nonce else None


class _AnyNonceTypeParsed(_Handlers):
    """The nonce's type is never checked."""

    async def retry_nonce(self, call: Call) -> object:
        return _nonce_field(await self.retry_body(call))


class _NonStringNonceSkipsSession(_Store):
    """The session check runs only for string nonces; anything else passes through."""

    def retry_session(self, project: str, nonce: object) -> Session | None:
        return super().retry_session(project, nonce) if isinstance(nonce, str) else None


class _UnicodeNonceCrashes(_Handlers):
    """The nonce is turned into ASCII bytes for the session lookup, assuming nonces are base64."""

    async def retry_nonce(self, call: Call) -> object:
        nonce = await super().retry_nonce(call)
        if isinstance(nonce, str):
            nonce.encode("ascii")
        return nonce


class _GzipRefused(_Handlers):
    """The retry route was mounted without the decompression filter of the other routes, and its body
    reader refuses every Content-Encoding it was not written for: gzip, what the Cognite SDK sends, too."""

    def retry_check_headers(self, headers: Headers) -> None:
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported")


_JSON_MEDIA_TYPE = "application/json"


class _WholeContentTypeCompared(_Handlers):
    """The media-type check compares the whole Content-Type header, parameters and case included, with
    'application/json'; a request without the header is taken for JSON."""

    def retry_check_headers(self, headers: Headers) -> None:
        content_type = headers.get("content-type")
        if content_type is not None and content_type != _JSON_MEDIA_TYPE:
            raise UnsupportedMediaType(f"Content-Type must be {_JSON_MEDIA_TYPE}, got {show(content_type)}")


class _ChunkedRefused(_Handlers):
    """The body reader reads exactly Content-Length bytes, so a chunked body, which clients that stream
    their body send without a length, is refused before it is read."""

    def retry_check_headers(self, headers: Headers) -> None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _LengthRequired("A Content-Length is required; chunked request bodies are not supported")


class _BodyDecodedAsAscii(_Handlers):
    """The body is decoded with the platform's default charset (US-ASCII in a container without a
    locale) before it is parsed, and the decoding error is reported as malformed JSON: raw UTF-8 is
    refused, the same document with \\u escapes is accepted."""

    async def retry_body(self, call: Call) -> object:
        raw, replay = await _read_request(call.request.receive)
        # An empty body, or one larger than the mock reads (None), is the faithful reader's to refuse.
        if raw and not _decode_content(raw, call.request.headers.get("content-encoding", "")).isascii():
            raise InvalidRequest("The request body is not valid JSON")
        return await super().retry_body(Call(Request(call.request.scope, replay), call.caller, call.params))


def _json_strings(value: object) -> Iterator[str]:
    """Every string in a decoded JSON value, object keys included."""
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class _AuditLogRefusesNul(_Handlers):
    """The retry writes its parsed body to an audit table, a PostgreSQL jsonb column, before checking
    it; PostgreSQL cannot store \\u0000 in text, and nothing maps its error to a 4xx."""

    async def retry_body(self, call: Call) -> object:
        body = await super().retry_body(call)
        if any("\x00" in text for text in _json_strings(body)):
            raise _UnmappedError("unsupported Unicode escape sequence: \\u0000 cannot be converted to text")
        return body


def _unknown_fields(body: object) -> list[str]:
    """The fields of a retry body besides `authentication` and its `nonce`."""
    if not isinstance(body, dict):
        return []
    unknown = [key for key in body if key != "authentication"]
    authentication = body.get("authentication")
    if isinstance(authentication, dict):
        unknown += [f"authentication.{key}" for key in authentication if key != "nonce"]
    return unknown


class _StrictBinding(_Handlers):
    """The body is bound to a request class that fails on unknown properties (Jackson's
    FAIL_ON_UNKNOWN_PROPERTIES), and unlike its type errors that exception is not mapped to a 400."""

    async def retry_body(self, call: Call) -> object:
        body = await super().retry_body(call)
        unknown = _unknown_fields(body)
        if unknown:
            raise _UnmappedError(f"Unrecognized field {unknown[0]!r}: not marked as ignorable")
        return body


class _UnknownExecution400(_Handlers):
    """The retry reports every failed lookup as a bad request."""

    def retry_in_store(self, project: str, execution_id: str, nonce: object) -> JSONObject:
        try:
            return super().retry_in_store(project, execution_id, nonce)
        except NotFound as error:
            raise InvalidRequest(error.message) from None


class _UnknownExecutionCrashes(_Store):
    """The retry's lookup returns None for an unknown id, and the code goes on with it."""

    def retry_lookup(self, project: str, execution_id: str) -> Execution:
        state = self._state(project)
        execution: Any = state.executions.get(execution_id)
        self._settle(state, execution, refresh=True)
        return cast(Execution, execution)


class _NonceNotVerified(_Store):
    """The nonce's session is looked up only to be marked used; a miss, a used or an expired session
    is not refused."""

    def retry_session(self, project: str, nonce: object) -> Session | None:
        return self._sessions.get(nonce) if isinstance(nonce, str) else None


class _NonceReusable(_Store):
    """The retry never marks its nonce's session used."""

    def retry_consume(self, session: Session | None) -> None:
        pass


class _NonceLoggedInNarrowColumn(_Store):
    """Before it looks the session up, the retry records the nonce it was given in its request log, a
    VARCHAR(4096) column: a longer nonce fails the insert, and nothing maps that error to a 4xx."""

    nonce_column_length: ClassVar[int] = 4096

    def retry_session(self, project: str, nonce: object) -> Session | None:
        if isinstance(nonce, str) and len(nonce) > self.nonce_column_length:
            raise _UnmappedError(f"value too long for type character varying({self.nonce_column_length})")
        return super().retry_session(project, nonce)


class _StaleAnswer(_Store):
    """The retry answers with the execution it loaded, not the one it saved."""

    def retry_answer(self, execution: Execution, before: JSONObject) -> JSONObject:
        return before


class _RacyRetry(_Store):
    """Check and write are two transactions with a slow write in between, and nothing holds the
    execution meanwhile: simultaneous retries all pass the check, and each starts its attempts."""

    # How long the write takes to reach the database.
    write_latency_seconds: ClassVar[float] = 0.05

    def retry(self, project: str, execution_id: str, nonce: object) -> JSONObject:
        with self._lock:
            execution = self.retry_lookup(project, execution_id)
            session = self.retry_session(project, nonce)
            self.engine.check_retryable(execution)
            plan = self.engine.select_retry_targets(execution)
        time.sleep(self.write_latency_seconds)
        with self._lock:
            before = execution_json(execution)
            self.engine.apply_retry(execution, plan)
            self.retry_consume(session)
            answer = self.retry_answer(execution, before)
            self._settle(self._state(project), execution)
            return answer


# --- the task model (TaskEngine variants) ------------------------------------------------------------


class _RetriesRunning(TaskEngine):
    """The state check refuses only COMPLETED executions."""

    def check_retryable(self, execution: Execution) -> None:
        if execution.status is ExecutionStatus.COMPLETED:
            raise Conflict(f"Workflow execution {execution.id} is COMPLETED and cannot be retried")


class _RetriesCompleted(TaskEngine):
    """The state check refuses only RUNNING executions."""

    def check_retryable(self, execution: Execution) -> None:
        if execution.status is ExecutionStatus.RUNNING:
            raise Conflict(f"Workflow execution {execution.id} is still RUNNING")


def _state_check_forgetting(status: ExecutionStatus) -> type[TaskEngine]:
    """An engine whose state check was written without `status` among the retryable ones."""
    allowed = sorted(RETRYABLE_EXECUTION_STATUSES - {status})

    class _Forgetful(TaskEngine):
        def check_retryable(self, execution: Execution) -> None:
            if execution.status not in allowed:
                raise Conflict(
                    f"Workflow execution {execution.id} is {execution.status}; only a "
                    f"{' or '.join(allowed)} execution can be retried"
                )

    _Forgetful.__name__ = f"_{status.title().replace('_', '')}NotRetryable"
    return _Forgetful


class _StartsNothing(TaskEngine):
    """The retry marks the execution RUNNING but never hands its tasks to the scheduler."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        execution.status = ExecutionStatus.RUNNING
        execution.end_time = None
        execution.reason = None


class _SecondRetryStartsNothing(TaskEngine):
    """The retry queues its task starts under a deduplication key made of the execution id alone: the
    first retry's starts run, every later retry's are dropped as duplicates of them, yet the record is
    updated as usual (RUNNING, containers reopened). The engine moves an execution on only when one of
    its tasks reports, and none will: the execution stays RUNNING with nothing running until cancelled."""

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        # The deduplication keys the task queue has seen: executions retried once already.
        self._queued_keys: set[str] = set()
        # Executions whose latest retry's starts were dropped: no task event will wake them.
        self._stalled: set[str] = set()

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        if execution.id not in self._queued_keys:
            self._queued_keys.add(execution.id)
            super().apply_retry(execution, plan)
            return
        super().apply_retry(execution, RetryPlan(containers=plan.containers))
        self._stalled.add(execution.id)

    def settle(self, execution: Execution) -> None:
        if execution.id in self._stalled and execution.status is ExecutionStatus.RUNNING:
            return
        super().settle(execution)


class _TargetWalk(TaskEngine):
    """The faithful choice of retry targets, written with the knobs that the defects below turn."""

    retried_statuses: ClassVar[frozenset[TaskStatus]] = RETRYABLE_TASK_STATUSES
    retries_optional: ClassVar[bool] = False
    enters_containers: ClassVar[bool] = True

    def select_retry_targets(self, execution: Execution) -> RetryPlan:
        plan = RetryPlan()
        self._walk(execution, None, plan)
        return plan

    def _walk(self, execution: Execution, scope: str | None, plan: RetryPlan) -> None:
        for task in execution.scope_tasks(scope):
            latest = execution.latest(task.external_id)
            if latest is None or (task.is_optional and not self.retries_optional):
                continue
            if execution.is_detached(task):
                # The recorded shape: a container that COMPLETED on spawning; its nested tasks may be targets.
                self._walk(execution, task.external_id, plan)
                continue
            if latest.status not in self.retried_statuses:
                continue
            if task.is_container:
                if self.enters_containers:
                    plan.containers.append(latest)
                    self._walk(execution, task.external_id, plan)
            elif self.is_target(execution, task, latest):
                plan.tasks.append((task, scope))

    def is_target(self, execution: Execution, task: TaskDef, latest: Attempt) -> bool:
        return True


class _IgnoresCanceled(_TargetWalk):
    """CANCELED is missing from the statuses the retry restarts."""

    retried_statuses = RETRYABLE_TASK_STATUSES - {TaskStatus.CANCELED}


class _RetriesOptional(_TargetWalk):
    """The retry does not look at `onFailure`."""

    retries_optional = True


class _RerunsCompleted(_TargetWalk):
    """The retry restarts every task that has run, whatever its outcome."""

    retried_statuses = RETRYABLE_TASK_STATUSES | COMPLETED_TASK_STATUSES


class _SkipsNested(_TargetWalk):
    """The retry looks only at the top level: containers are neither reopened nor searched."""

    enters_containers = False


class _SkipsTasksAtLimit(_TargetWalk):
    """The retry applies the automatic-retry rule: a task that failed after all its attempts stays failed."""

    def is_target(self, execution: Execution, task: TaskDef, latest: Attempt) -> bool:
        return not (
            latest.status is TaskStatus.FAILED
            and execution.attempt_count(task.external_id) >= 1 + task.retries
        )


class _FirstTargetOnly(TaskEngine):
    """The retry restarts the first failed task it finds and stops looking."""

    def select_retry_targets(self, execution: Execution) -> RetryPlan:
        plan = super().select_retry_targets(execution)
        kept = plan.tasks[:1]
        ancestors: set[str] = set()
        for task, _ in kept:
            parent = execution.parents.get(task.external_id)
            while parent is not None:
                ancestors.add(parent)
                parent = execution.parents.get(parent)
        return RetryPlan(tasks=kept, containers=[c for c in plan.containers if c.external_id in ancestors])


class _RetriesContainers(TaskEngine):
    """A container is restarted like any task, with a new attempt, besides its failed nested tasks."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        for container in plan.containers:
            self._start_attempt(execution, container.task, container.parent)
        super().apply_retry(execution, RetryPlan(tasks=plan.tasks))


class _ResetsLimit(TaskEngine):
    """The retry resets each restarted task's attempt counter, so it gets its automatic retries again."""

    def __init__(self, clock: Callable[[], int]) -> None:
        super().__init__(clock)
        # (execution id, task externalId) -> the attempts the task had when a retry restarted it.
        self._counted_from: dict[tuple[str, str], int] = {}

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        for task, _ in plan.tasks:
            self._counted_from[execution.id, task.external_id] = execution.attempt_count(task.external_id)
        super().apply_retry(execution, plan)

    def _step_ended(self, execution: Execution, task: TaskDef, attempt: Attempt, scope: str | None) -> bool:
        since = self._counted_from.get((execution.id, task.external_id), 0)
        used = execution.attempt_count(task.external_id) - since
        if attempt.status is TaskStatus.FAILED and not task.is_container and used < 1 + task.retries:
            self._start_attempt(execution, task, scope)
            return True
        return super()._step_ended(execution, task, attempt, scope)


class _StampsMetadata(TaskEngine):
    """The retry records who retried in the execution's metadata, however many pairs it has already."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        if self.has_room_for_stamp(execution.metadata):
            execution.metadata.update(self.stamp())

    def has_room_for_stamp(self, metadata: Mapping[str, str]) -> bool:
        return True

    def stamp(self) -> dict[str, str]:
        return {"retriedBy": "workflow-engine"}


class _StampsMetadataWhenRoom(_StampsMetadata):
    """The retry records when it retried in the execution's metadata, minding the documented limit:
    at 10 pairs it leaves the stamp out, so only executions with room for it show the change."""

    def has_room_for_stamp(self, metadata: Mapping[str, str]) -> bool:
        return len(metadata) < METADATA_LIMITS.max_pairs

    def stamp(self) -> dict[str, str]:
        return {"retriedAt": str(self._clock())}


class _ClearsMetadata(TaskEngine):
    """The retry rebuilds the execution record and forgets its metadata."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        execution.metadata = {}


class _ResetsCreatedTime(TaskEngine):
    """The retry rebuilds the execution record and stamps it created now."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        execution.created_time = self._clock()


class _NewEngineIdV1(TaskEngine):
    """The retry starts a new engine run, with a time-based (version 1) UUID."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        execution.engine_execution_id = str(uuid.uuid1())


# --- the retry's answer (serializer bugs) -------------------------------------------------------------

_TIMES = ("createdTime", "startTime", "endTime")


def _id_uppercase(answer: JSONObject) -> None:
    answer["id"] = str(answer["id"]).upper()


def _id_without_dashes(answer: JSONObject) -> None:
    answer["id"] = str(answer["id"]).replace("-", "")


def _engine_id_truncated(answer: JSONObject) -> None:
    answer["engineExecutionId"] = str(answer["engineExecutionId"])[:35]


def _engine_id_missing(answer: JSONObject) -> None:
    answer.pop("engineExecutionId", None)


def _xid_trailing_space(answer: JSONObject) -> None:
    answer["workflowExternalId"] = f"{answer['workflowExternalId']} "


def _version_as_number(answer: JSONObject) -> None:
    version = answer.get("version")
    if isinstance(version, str) and version.isdecimal():
        answer["version"] = int(version)


def _version_empty(answer: JSONObject) -> None:
    answer["version"] = ""


def _status_lowercase(answer: JSONObject) -> None:
    answer["status"] = str(answer["status"]).lower()


def _time_as_string(answer: JSONObject) -> None:
    for key in _TIMES:
        if key in answer:
            answer[key] = str(answer[key])


def _time_as_float_seconds(answer: JSONObject) -> None:
    for key in _TIMES:
        if key in answer:
            answer[key] = answer[key] / 1000.0


def _start_time_unsigned_sentinel(answer: JSONObject) -> None:
    answer["startTime"] = 2**64 - 1


def _end_time_negative_sentinel(answer: JSONObject) -> None:
    answer.setdefault("endTime", -1)


def _metadata_as_pairs(answer: JSONObject) -> None:
    answer["metadata"] = [{"key": key, "value": value} for key, value in answer["metadata"].items()]


def _empty_metadata_omitted(answer: JSONObject) -> None:
    # A serializer configured to omit empty values (omitempty, NON_EMPTY) drops the required field.
    if answer.get("metadata") == {}:
        del answer["metadata"]


def _metadata_double_encoded(answer: JSONObject) -> None:
    # The retry reloads the execution through a connection that takes the stored UTF-8 for latin-1
    # and answers what it read as UTF-8: ASCII is unchanged, every other character turns to mojibake.
    answer["metadata"] = {
        key.encode().decode("latin-1"): value.encode().decode("latin-1")
        for key, value in answer["metadata"].items()
    }


def _reason_null(answer: JSONObject) -> None:
    answer.setdefault("reasonForIncompletion", None)


# --- the wire (WireDefects middleware) ---------------------------------------------------------------


@dataclass
class _WireResponse:
    """A buffered answer that wire defects may rewrite before it is sent."""

    status: int
    headers: MutableHeaders
    body: bytes

    def error_envelope(self) -> dict[str, Any] | None:
        """The decoded `{"error": {...}}` body of an error answer, or None."""
        if self.status < 400:
            return None
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) and isinstance(body.get("error"), dict) else None

    def set_json(self, body: object) -> None:
        self.body = json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class _Wire:
    # Rewrites the answer; None for a defect that only drops connections.
    rewrite: Callable[[_WireResponse], None] | None = None
    # Whether the request (headers, complete body) makes the server die mid-answer.
    drops: Callable[[Headers, bytes], bool] | None = None
    # Whether the request's path segments make a middleware in front of the JSON error handling fail,
    # so that the framework's default error page answers.
    fails: Callable[[Sequence[str]], bool] | None = None
    # Every endpoint, not only the retry.
    everywhere: bool = False


class WireDefects:
    """ASGI middleware with the wire-level defects: it fails a request in front of the app, or buffers
    each affected answer, lets the defects rewrite its status, headers and body, and sends the result."""

    def __init__(self, app: ASGIApp, wires: Sequence[_Wire]) -> None:
        self._app = app
        self._wires = tuple(wires)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        segments = path_segments(scope)
        on_retry = _is_retry_path(segments)
        wires = [wire for wire in self._wires if wire.everywhere or on_retry]
        if not wires:
            await self._app(scope, receive, send)
            return
        if any(wire.fails is not None and wire.fails(segments) for wire in wires):
            await _send_default_error_page(send)
            return
        drops = [wire.drops for wire in wires if wire.drops is not None]
        if drops:
            body, receive = await _read_request(receive)
            if body is not None and any(drop(Headers(scope=scope), body) for drop in drops):
                # The answer's headers go out before the body is parsed; the parser then takes the
                # worker down, and the connection closes with the answer unfinished.
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                return
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self._app(scope, receive, capture)
        start = next(message for message in messages if message["type"] == "http.response.start")
        response = _WireResponse(
            status=int(start["status"]),
            headers=MutableHeaders(raw=list(start.get("headers", []))),
            body=b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"),
        )
        for wire in wires:
            if wire.rewrite is not None:
                wire.rewrite(response)
        response.headers["content-length"] = str(len(response.body))
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers.raw}
        )
        await send({"type": "http.response.body", "body": response.body})


async def _read_request(receive: Receive) -> tuple[bytes | None, Receive]:
    """The request body (None when it is larger than the mock accepts), and a `receive` that replays
    what was read before it goes on with the original."""
    read: list[Message] = []
    body = bytearray()
    complete = False
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            break
        if not message.get("more_body", False):
            complete = True
            break

    async def replay() -> Message:
        return read.pop(0) if read else await receive()

    return (bytes(body) if complete else None), replay


_DEFAULT_ERROR_PAGE = (
    b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1></body></html>"
)


async def _send_default_error_page(send: Send) -> None:
    """The web framework's own answer to an exception that escaped the app: 500 and an HTML page.
    The gateway in front still gives it a request id, as it does every answer."""
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(_DEFAULT_ERROR_PAGE)).encode()),
        (REQUEST_ID_HEADER.lower().encode(), str(uuid.uuid4()).encode()),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": _DEFAULT_ERROR_PAGE})


# The longest span attribute value the tracing library of the retry route accepts.
_SPAN_ATTRIBUTE_MAX_LENGTH = 1024


def _path_id_overflows_tracing(segments: Sequence[str]) -> bool:
    # The retry route's tracing middleware puts the path id in a span attribute before routing; the
    # library raises beyond its limit, outside the handler that turns exceptions into JSON.
    return _is_retry_path(segments) and len(segments[6]) > _SPAN_ATTRIBUTE_MAX_LENGTH


def _is_malformed_json(headers: Headers, body: bytes) -> bool:
    if not body.strip():
        return False
    if headers.get("content-encoding", "").strip().lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error):
            return True
    try:
        json.loads(body)
    except ValueError:
        return True
    return False


def _errors_as_text(response: _WireResponse) -> None:
    if 400 <= response.status < 500:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Error"
        response.body = phrase.encode()
        response.headers["content-type"] = "text/plain; charset=utf-8"


def _flat_envelope(response: _WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        response.set_json(envelope["error"])


def _envelope_without_message(response: _WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        envelope["error"].pop("message", None)
        response.set_json(envelope)


def _code_as_string(response: _WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        envelope["error"]["code"] = str(envelope["error"]["code"])
        response.set_json(envelope)


def _code_always_400(response: _WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        envelope["error"]["code"] = 400
        response.set_json(envelope)


def _no_request_id_on_errors(response: _WireResponse) -> None:
    if response.status >= 400:
        del response.headers["x-request-id"]


def _405_without_allow(response: _WireResponse) -> None:
    if response.status == 405:
        del response.headers["allow"]


def _success_202(response: _WireResponse) -> None:
    if response.status == 200:
        response.status = 202


def _success_as_text(response: _WireResponse) -> None:
    if response.status == 200:
        response.headers["content-type"] = "text/plain; charset=utf-8"


# --- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Patch:
    """How a defect is made: at most one class per slot, an answer rewrite, a wire rewrite."""

    dispatcher: type[_Dispatcher] | None = None
    handlers: type[_Handlers] | None = None
    store: type[_Store] | None = None
    engine: type[TaskEngine] | None = None
    answer: AnswerRewrite | None = None
    wire: _Wire | None = None


def _entry(name: str, breaks: str, patch: _Patch, description: str) -> tuple[Defect, _Patch]:
    return Defect(name, description, tuple(breaks.split())), patch


# fmt: off
_ENTRIES: tuple[tuple[Defect, _Patch], ...] = (
    # name, the requirements it breaks (the main one first), how it is made, what it does
    # AUTH-401
    _entry("auth-header-optional", "AUTH-401", _Patch(dispatcher=_NoTokenRunsAsService),
           "A retry without an Authorization header runs as a service identity with WRITE"),
    _entry("auth-any-bearer-token", "AUTH-401", _Patch(dispatcher=_AnyBearerToken),
           "The retry accepts any bearer token string as a caller with WRITE"),
    _entry("auth-unknown-token-403", "AUTH-401", _Patch(dispatcher=_UnknownToken403),
           "An unknown bearer token on the retry is answered 403, not 401"),
    # AUTH-403
    _entry("readonly-can-retry", "AUTH-403", _Patch(handlers=_ReadonlyCanRetry),
           "The retry needs only workflowOrchestrationACL:READ"),
    _entry("project-scope-ignored", "AUTH-403", _Patch(dispatcher=_ProjectScopeIgnored),
           "The retry accepts a token for any project and looks the execution up in that project"),
    # PATH-UUID
    _entry("malformed-id-500", "PATH-UUID ROBUST", _Patch(handlers=_MalformedIdCrashes),
           "A path id that is not a UUID crashes the UUID parser: 500"),
    _entry("id-truncated-to-36", "PATH-UUID RESP-ID", _Patch(handlers=_IdTruncatedTo36),
           "Path ids are cut to 36 characters before the lookup: a 37-character id retries a real execution"),
    _entry("malformed-id-422", "PATH-UUID", _Patch(handlers=_MalformedId422),
           "A path id that is not a UUID is answered 422"),
    # BODY-SHAPE
    _entry("empty-body-500", "BODY-SHAPE ROBUST", _Patch(handlers=_MissingBodyCrashes),
           "A retry without a body (or with a JSON null or number) crashes the handler: 500"),
    _entry("body-array-500", "BODY-SHAPE ROBUST", _Patch(handlers=_ArrayBodyCrashes),
           "A JSON array as the body crashes the handler: 500"),
    _entry("body-errors-422", "BODY-SHAPE", _Patch(handlers=_BodyErrors422),
           "Every invalid retry body is answered 422 instead of 400"),
    _entry("nonce-empty-accepted", "BODY-SHAPE",
           _Patch(handlers=_EmptyNonceParsed, store=_EmptyNonceSkipsSession),
           "An empty-string nonce skips the session check and the retry proceeds"),
    _entry("nonce-non-string-accepted", "BODY-SHAPE",
           _Patch(handlers=_AnyNonceTypeParsed, store=_NonStringNonceSkipsSession),
           "A nonce that is not a string (number, object, null) skips the session check; the retry proceeds"),
    _entry("raw-utf8-misread", "BODY-SHAPE", _Patch(handlers=_BodyDecodedAsAscii),
           "A body with raw non-ASCII UTF-8 is refused 400 as malformed JSON; with \\u escapes it is not"),
    # BODY-NONCE, NONCE-REUSE
    _entry("nonce-not-verified", "BODY-NONCE NONCE-REUSE", _Patch(store=_NonceNotVerified),
           "Any well-formed nonce is accepted, never issued, used or expired alike; the retry proceeds"),
    _entry("nonce-reusable", "NONCE-REUSE", _Patch(store=_NonceReusable),
           "The retry never marks its nonce used, so the nonce works again"),
    # METHOD
    _entry("method-any-accepted", "METHOD", _Patch(handlers=_AnyMethodRetries),
           "The retry route answers every method: GET, PUT, PATCH, DELETE... retry the execution"),
    _entry("method-405-without-allow", "METHOD", _Patch(wire=_Wire(rewrite=_405_without_allow)),
           "A 405 on the retry path has no Allow header"),
    # STATE-404
    _entry("unknown-execution-400", "STATE-404", _Patch(handlers=_UnknownExecution400),
           "A retry of an unknown execution is answered 400 without error.missing"),
    _entry("unknown-execution-500", "STATE-404 ROBUST", _Patch(store=_UnknownExecutionCrashes),
           "A retry of an unknown execution crashes on the missing record: 500"),
    # STATE-RETRYABLE
    _entry("retry-running", "STATE-RETRYABLE SEM-CONCURRENT", _Patch(engine=_RetriesRunning),
           "A RUNNING execution is retried (only COMPLETED is refused)"),
    _entry("retry-completed", "STATE-RETRYABLE", _Patch(engine=_RetriesCompleted),
           "A COMPLETED execution is retried (only RUNNING is refused)"),
    _entry("terminated-not-retryable", "STATE-RETRYABLE",
           _Patch(engine=_state_check_forgetting(ExecutionStatus.TERMINATED)),
           "A TERMINATED execution is refused with 409"),
    _entry("timed-out-not-retryable", "STATE-RETRYABLE",
           _Patch(engine=_state_check_forgetting(ExecutionStatus.TIMED_OUT)),
           "A TIMED_OUT execution is refused with 409"),
    _entry("gzip-body-refused", "STATE-RETRYABLE", _Patch(handlers=_GzipRefused),
           "A gzipped body (Content-Encoding: gzip, what the Cognite SDK sends) is refused with 415"),
    _entry("charset-refused", "STATE-RETRYABLE", _Patch(handlers=_WholeContentTypeCompared),
           "Content-Type: application/json; charset=utf-8 is refused with 415 (the whole header must match)"),
    _entry("chunked-body-refused", "STATE-RETRYABLE", _Patch(handlers=_ChunkedRefused),
           "A retry with a chunked body (Transfer-Encoding: chunked, no Content-Length) is refused with 411"),
    # ROBUST
    _entry("unicode-nonce-500", "ROBUST STATE-404", _Patch(handlers=_UnicodeNonceCrashes),
           "A nonce with a non-ASCII character crashes the session lookup: 500"),
    _entry("malformed-json-drops-connection", "ROBUST BODY-SHAPE",
           _Patch(wire=_Wire(drops=_is_malformed_json)),
           "A body that is not valid JSON kills the answer after its headers: the connection drops"),
    _entry("long-nonce-500", "ROBUST BODY-NONCE", _Patch(store=_NonceLoggedInNarrowColumn),
           "A nonce longer than 4096 characters overflows the request log's column: 500"),
    _entry("long-path-id-500", "ROBUST PATH-UUID ERR-ENVELOPE",
           _Patch(wire=_Wire(fails=_path_id_overflows_tracing)),
           "A path id longer than 1024 characters crashes the tracing middleware: 500 with an HTML page"),
    _entry("nul-in-body-500", "ROBUST BODY-NONCE BODY-SHAPE", _Patch(handlers=_AuditLogRefusesNul),
           "A NUL character (\\u0000) in any string of the body fails the audit-log insert: 500"),
    _entry("extra-field-500", "ROBUST BODY-SHAPE", _Patch(handlers=_StrictBinding),
           "An unknown field in the body (top level or in authentication) crashes the strict binder: 500"),
    _entry("errors-as-text", "ROBUST ERR-ENVELOPE", _Patch(wire=_Wire(rewrite=_errors_as_text)),
           "4xx answers of the retry are plain-text status phrases such as 'Bad Request'"),
    # ERR-ENVELOPE, ERR-CODE
    _entry("error-envelope-flat", "ERR-ENVELOPE", _Patch(wire=_Wire(rewrite=_flat_envelope)),
           'Errors of the retry are {"code", "message"} at the top level, not inside "error"'),
    _entry("error-message-missing", "ERR-ENVELOPE", _Patch(wire=_Wire(rewrite=_envelope_without_message)),
           "Errors of the retry have no error.message"),
    _entry("error-code-as-string", "ERR-ENVELOPE", _Patch(wire=_Wire(rewrite=_code_as_string)),
           'Errors of the retry carry error.code as a string ("404")'),
    _entry("error-code-always-400", "ERR-CODE", _Patch(wire=_Wire(rewrite=_code_always_400)),
           "Errors of the retry all say error.code 400, whatever the status"),
    # HDR-REQUEST-ID
    _entry("no-request-id-on-errors", "HDR-REQUEST-ID",
           _Patch(wire=_Wire(rewrite=_no_request_id_on_errors, everywhere=True)),
           "4xx and 5xx answers of every endpoint have no X-Request-ID header"),
    # RESP-200
    _entry("success-202", "RESP-200", _Patch(wire=_Wire(rewrite=_success_202)),
           "A successful retry answers 202 Accepted"),
    _entry("success-text-content-type", "RESP-200", _Patch(wire=_Wire(rewrite=_success_as_text)),
           "A successful retry answers its JSON with Content-Type text/plain"),
    # RESP-ID
    _entry("response-id-uppercase", "RESP-ID RESP-UNCHANGED", _Patch(answer=_id_uppercase),
           "The retry's answer spells its id in upper case"),
    _entry("response-id-without-dashes", "RESP-ID RESP-UNCHANGED", _Patch(answer=_id_without_dashes),
           "The retry's answer gives its id as 32 hex digits without dashes"),
    # RESP-ENGINE-ID
    _entry("engine-id-truncated", "RESP-ENGINE-ID", _Patch(answer=_engine_id_truncated),
           "The retry's answer cuts engineExecutionId to 35 characters"),
    _entry("engine-id-missing", "RESP-ENGINE-ID RESP-200", _Patch(answer=_engine_id_missing),
           "The retry's answer has no engineExecutionId"),
    _entry("engine-id-uuid1", "RESP-ENGINE-ID", _Patch(engine=_NewEngineIdV1),
           "The retry gives the execution a new engineExecutionId, a time-based version-1 UUID"),
    # RESP-XID, RESP-VERSION
    _entry("xid-trailing-space", "RESP-XID RESP-UNCHANGED", _Patch(answer=_xid_trailing_space),
           "The retry's answer pads workflowExternalId with a trailing space"),
    _entry("version-as-number", "RESP-VERSION RESP-UNCHANGED", _Patch(answer=_version_as_number),
           'The retry\'s answer renders a numeric-looking version as a JSON number ("1" -> 1)'),
    _entry("version-empty", "RESP-VERSION RESP-UNCHANGED", _Patch(answer=_version_empty),
           "The retry's answer has an empty version"),
    # RESP-STATUS
    _entry("status-lowercase", "RESP-STATUS", _Patch(answer=_status_lowercase),
           "The retry's answer spells the status in lower case (running)"),
    _entry("status-stale", "RESP-STATUS", _Patch(store=_StaleAnswer),
           "The retry answers with the execution as it was before the retry (status FAILED)"),
    # RESP-TIME
    _entry("time-as-string", "RESP-TIME RESP-UNCHANGED", _Patch(answer=_time_as_string),
           "The retry's answer gives its times as strings"),
    _entry("time-as-float-seconds", "RESP-TIME RESP-UNCHANGED", _Patch(answer=_time_as_float_seconds),
           "The retry's answer gives its times as float seconds, not integer milliseconds"),
    _entry("time-beyond-int64", "RESP-TIME", _Patch(answer=_start_time_unsigned_sentinel),
           "The retry's answer gives startTime as 2**64-1, an unsigned 'not set' sentinel"),
    _entry("time-negative-sentinel", "RESP-TIME", _Patch(answer=_end_time_negative_sentinel),
           "The retry's answer gives the cleared endTime as -1 instead of leaving it out"),
    # RESP-METADATA
    _entry("metadata-stamped", "RESP-METADATA RESP-UNCHANGED", _Patch(engine=_StampsMetadata),
           "The retry adds retriedBy to the stored metadata: 10 pairs become 11"),
    _entry("metadata-as-pairs", "RESP-METADATA RESP-UNCHANGED", _Patch(answer=_metadata_as_pairs),
           'The retry\'s answer gives metadata as a list of {"key", "value"} objects'),
    _entry("empty-metadata-omitted", "RESP-METADATA RESP-200 RESP-UNCHANGED",
           _Patch(answer=_empty_metadata_omitted),
           "The retry's answer leaves metadata out when it is empty (a serializer that omits empty values)"),
    # RESP-REASON
    _entry("reason-null", "RESP-REASON", _Patch(answer=_reason_null),
           "The retry's answer sends reasonForIncompletion: null instead of leaving it out"),
    # RESP-UNCHANGED
    _entry("created-time-reset", "RESP-UNCHANGED", _Patch(engine=_ResetsCreatedTime),
           "The retry sets the stored createdTime to the time of the retry"),
    _entry("metadata-cleared", "RESP-UNCHANGED", _Patch(engine=_ClearsMetadata),
           "The retry drops the stored metadata"),
    _entry("metadata-stamped-when-room", "RESP-UNCHANGED", _Patch(engine=_StampsMetadataWhenRoom),
           "The retry adds retriedAt to the stored metadata when it has fewer than 10 pairs"),
    _entry("metadata-utf8-double-encoded", "RESP-UNCHANGED RESP-METADATA",
           _Patch(answer=_metadata_double_encoded),
           "The retry's answer double-encodes non-ASCII metadata (UTF-8 read as latin-1): 'ü' becomes 'Ã¼'"),
    # SEM-*
    _entry("retry-starts-nothing", "SEM-TARGETED SEM-NESTED SEM-LIMIT SEM-CONCURRENT",
           _Patch(engine=_StartsNothing),
           "The retry answers RUNNING but starts no task, so the execution fails again at once"),
    _entry("second-retry-starts-nothing", "SEM-TARGETED SEM-LIMIT SEM-NESTED",
           _Patch(engine=_SecondRetryStartsNothing),
           "Only an execution's first retry starts tasks; later ones leave it RUNNING with nothing running"),
    _entry("retry-ignores-canceled", "SEM-TARGETED SEM-NESTED", _Patch(engine=_IgnoresCanceled),
           "Tasks whose latest attempt was CANCELED are not retried"),
    _entry("retry-first-target-only", "SEM-TARGETED SEM-NESTED SEM-LIMIT", _Patch(engine=_FirstTargetOnly),
           "Only the first failed task gets a new attempt"),
    _entry("optional-retried", "SEM-OPTIONAL SEM-TARGETED", _Patch(engine=_RetriesOptional),
           "Optional tasks (onFailure: skipTask) that failed or were canceled are retried"),
    _entry("completed-rerun", "SEM-COMPLETED SEM-TARGETED SEM-NESTED", _Patch(engine=_RerunsCompleted),
           "Every task that ran gets a new attempt, the completed ones included"),
    _entry("container-retried", "SEM-NESTED", _Patch(engine=_RetriesContainers),
           "A subworkflow or dynamic container gets a new attempt of its own, besides its failed tasks"),
    _entry("nested-skipped", "SEM-NESTED SEM-TARGETED", _Patch(engine=_SkipsNested),
           "Failed tasks inside subworkflows and dynamic tasks are not retried; the container stays as is"),
    _entry("limit-reset", "SEM-LIMIT", _Patch(engine=_ResetsLimit),
           "The retry resets attempt counters: a failed new attempt is retried automatically again"),
    _entry("limit-not-retried", "SEM-LIMIT SEM-TARGETED", _Patch(engine=_SkipsTasksAtLimit),
           "A task that failed after using all its attempts is not retried"),
    _entry("concurrent-double-retry", "SEM-CONCURRENT", _Patch(store=_RacyRetry),
           "Simultaneous retries all succeed (check and slow write are not atomic) and each adds attempts"),
)
# fmt: on

CATALOGUE: tuple[Defect, ...] = tuple(defect for defect, _ in _ENTRIES)
BY_NAME: dict[str, Defect] = {defect.name: defect for defect in CATALOGUE}
_PATCHES: dict[str, _Patch] = {defect.name: patch for defect, patch in _ENTRIES}
_ORDER: dict[str, int] = {defect.name: index for index, defect in enumerate(CATALOGUE)}

# The class each slot's variants derive from: what two variants share below it, they both change.
_SLOTS: tuple[tuple[str, type], ...] = (
    ("dispatcher", _Dispatcher),
    ("handlers", _Handlers),
    ("store", _Store),
    ("engine", TaskEngine),
)


def _changed_names(variant: type, base: type) -> set[str]:
    return {
        name
        for klass in variant.__mro__
        if klass not in base.__mro__
        for name in vars(klass)
        if not name.startswith("__")
    }


def check_combination(names: Iterable[str]) -> None:
    """Raise ValueError for an unknown defect, or for two defects that change the same thing."""
    chosen = sorted(set(names), key=lambda name: (_ORDER.get(name, len(_ORDER)), name))
    unknown = [name for name in chosen if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown mock defect(s): {', '.join(unknown)}; valid names: {', '.join(BY_NAME)}")
    for slot, base in _SLOTS:
        variants = [(name, getattr(_PATCHES[name], slot)) for name in chosen]
        present = [(name, variant) for name, variant in variants if variant is not None]
        for (first, one), (second, other) in itertools.combinations(present, 2):
            shared = _changed_names(one, base) & _changed_names(other, base)
            if shared:
                raise ValueError(
                    f"mock defects {first} and {second} both change {', '.join(sorted(shared))}; "
                    "switch on one of them at a time"
                )


_T = TypeVar("_T")


def _compose(base: type[_T], variants: Sequence[type[_T] | None]) -> type[_T]:
    chosen = [variant for variant in variants if variant is not None]
    if not chosen:
        return base
    if len(chosen) == 1:
        return chosen[0]
    return cast("type[_T]", type(f"Defective{base.__name__}", tuple(chosen), {}))


def create_defective_app(config: MockConfig) -> Starlette:
    """The mock with `config.defects` switched on (what `create_app` returns for such a config)."""
    check_combination(config.defects)
    patches = [_PATCHES[defect.name] for defect in CATALOGUE if defect.name in config.defects]
    engine = _compose(TaskEngine, [patch.engine for patch in patches])(config.clock)
    store = _compose(_Store, [patch.store for patch in patches])(
        config.clock, config.nonce_ttl_millis, engine=engine, shape=config.shape
    )
    answer_rewrites = [patch.answer for patch in patches if patch.answer is not None]
    handlers = _compose(_Handlers, [patch.handlers for patch in patches])(store, answer_rewrites)
    dispatcher = _compose(_Dispatcher, [patch.dispatcher for patch in patches])(config, handlers)
    wires = [patch.wire for patch in patches if patch.wire is not None]
    outer = [Middleware(WireDefects, wires=wires)] if wires else []
    return assemble_app(config, store, dispatcher, outer)
