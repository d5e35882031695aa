"""What every defect builds on: the faithful app's retry split into replaceable steps, the slots of a
defect (`Patch`), a defect's declaration (`Defect`), and the questions the families share (is this the
retry? which token?).

With no step replaced, `SteppedHandlers` and `SteppedStore` answer exactly as the faithful
`Handlers.retry` and `MockStore.retry`, so a defect changes only what its own step does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request

from cdf_workflows_mock.app import Call, Dispatcher, Handlers
from cdf_workflows_mock.cdf import WORKFLOW_READ, WORKFLOW_WRITE
from cdf_workflows_mock.config import TokenGrant
from cdf_workflows_mock.defects.probing import Probe
from cdf_workflows_mock.engine import TaskEngine
from cdf_workflows_mock.errors import InvalidRequest, MockError
from cdf_workflows_mock.model import Execution, JSONObject
from cdf_workflows_mock.render import execution_json
from cdf_workflows_mock.routing import Endpoint, path_segments
from cdf_workflows_mock.store import MockStore, Session
from cdf_workflows_mock.validation import json_type, parse_nonce, parse_uuid

PATH_ID = "The executionId in the path"


def is_retry_path(segments: Sequence[str]) -> bool:
    return (
        len(segments) == 8
        and tuple(segments[:3]) == ("api", "v1", "projects")
        and tuple(segments[4:6]) == ("workflows", "executions")
        and segments[7] == "retry"
    )


def is_retry_request(request: Request) -> bool:
    return is_retry_path(path_segments(request.scope))


def is_retry_endpoint(endpoint: Endpoint) -> bool:
    return endpoint.template[-2:] == ("{id}", "retry")


def write_grant(project: str) -> TokenGrant:
    return TokenGrant(frozenset({WORKFLOW_READ, WORKFLOW_WRITE}), frozenset({project}))


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" when there is none."""
    scheme, _, token = (request.headers.get("authorization") or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Unprocessable(MockError):
    http_status = HTTPStatus.UNPROCESSABLE_ENTITY


class LengthRequired(MockError):
    http_status = HTTPStatus.LENGTH_REQUIRED


class UnmappedError(RuntimeError):
    """An error of the server's own stack (database, deserializer) that no handler maps to a 4xx: the
    dispatcher answers it 500, as a real server's catch-all would."""


class DefectiveDispatcher(Dispatcher):
    """The dispatcher of a defective mock: its crashes are the defects' doing, not bugs to shout about."""

    crash_log_level = logging.DEBUG


AnswerRewrite = Callable[[JSONObject], None]


class SteppedStore(MockStore):
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


class SteppedHandlers(Handlers):
    """`Handlers` with the retry split into the steps the defects replace, and the defects' rewrites
    of its answer applied; with neither it answers exactly as `Handlers.retry`."""

    def __init__(self, store: SteppedStore, answer_rewrites: Sequence[AnswerRewrite] = ()) -> None:
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
        return parse_uuid(raw, PATH_ID)

    def retry_check_headers(self, headers: Headers) -> None:
        """The faithful mock reads any body it can decode, whatever its declared type and framing."""

    async def retry_nonce(self, call: Call) -> object:
        return parse_nonce(await self.retry_body(call))

    async def retry_body(self, call: Call) -> object:
        """The decoded JSON body; every variant of the retry reads it through here."""
        return await call.body()

    def retry_in_store(self, project: str, execution_id: str, nonce: object) -> JSONObject:
        return self._retry_store.retry(project, execution_id, nonce)


@dataclass
class WireResponse:
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
class Wire:
    # Rewrites the answer; None for a defect that only drops connections.
    rewrite: Callable[[WireResponse], None] | None = None
    # Whether the request (headers, complete body) makes the server die mid-answer.
    drops: Callable[[Headers, bytes], bool] | None = None
    # Whether the request's path segments make a middleware in front of the JSON error handling fail,
    # so that the framework's default error page answers.
    fails: Callable[[Sequence[str]], bool] | None = None
    # Every endpoint, not only the retry.
    everywhere: bool = False


@dataclass(frozen=True)
class Patch:
    """How a defect is made: at most one class per slot, an answer rewrite, a wire rewrite."""

    dispatcher: type[DefectiveDispatcher] | None = None
    handlers: type[SteppedHandlers] | None = None
    store: type[SteppedStore] | None = None
    engine: type[TaskEngine] | None = None
    answer: AnswerRewrite | None = None
    wire: Wire | None = None


@dataclass(frozen=True)
class Defect:
    """One deliberate server bug, declared once in its family's module: what it is called, what it does
    as its users would see it, the requirements it breaks, how it is made, and how to see it (a probe
    that passes on a mock with the defect and fails on the faithful one, `probing`)."""

    name: str
    # One line: what the server does wrong, as its users would see it.
    description: str
    # The requirement IDs it violates, the one it is mainly about first.
    breaks: tuple[str, ...]
    patch: Patch = field(repr=False)
    probe: Probe = field(repr=False)
