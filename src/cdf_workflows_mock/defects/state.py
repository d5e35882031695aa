"""Defects of the retry's checks of what it was given and of the execution's state: the path id, the
body and its nonce, the session behind the nonce, the lookup of the execution, and which execution
states may be retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, cast

from cdf_workflows_mock.app import Call
from cdf_workflows_mock.cdf import RETRYABLE_EXECUTION_STATUSES, ExecutionStatus
from cdf_workflows_mock.defects.base import Patch, SteppedHandlers, SteppedStore, UnmappedError, Unprocessable
from cdf_workflows_mock.engine import TaskEngine
from cdf_workflows_mock.errors import Conflict, InvalidRequest, NotFound
from cdf_workflows_mock.model import Execution, JSONObject
from cdf_workflows_mock.store import Session
from cdf_workflows_mock.validation import expect_object, json_type, parse_nonce


def _nonce_field(body: object) -> object:
    """`authentication.nonce` as sent, after the shape checks that come before the nonce's own."""
    obj = expect_object(body, "The request body")
    authentication = expect_object(obj.get("authentication"), "'authentication'")
    if "nonce" not in authentication:
        raise InvalidRequest("'authentication.nonce' is required: create one with POST /sessions")
    return authentication["nonce"]


class _MalformedIdCrashes(SteppedHandlers):
    """The path id is checked by a UUID parser whose error nobody catches."""

    def retry_execution_id(self, raw: str) -> str:
        uuid.UUID(raw)
        return raw


class _IdTruncatedTo36(SteppedHandlers):
    """The path id goes through a 36-character buffer before it is checked."""

    def retry_execution_id(self, raw: str) -> str:
        return super().retry_execution_id(raw[:36])


class _MalformedId422(SteppedHandlers):
    """A malformed path id is answered 422 Unprocessable Entity."""

    def retry_execution_id(self, raw: str) -> str:
        try:
            return super().retry_execution_id(raw)
        except InvalidRequest as error:
            raise Unprocessable(error.message) from None


class _MissingBodyCrashes(SteppedHandlers):
    """The body is read as optional, then used as if it were always there."""

    async def retry_body(self, call: Call) -> object:
        body: Any = await call.optional_body()
        if "authentication" not in body:
            raise InvalidRequest("The request body must have an 'authentication' object holding a 'nonce'")
        return body


class _ArrayBodyCrashes(SteppedHandlers):
    """The body's type check rejects scalars, and arrays slip through to a dict lookup."""

    async def retry_nonce(self, call: Call) -> object:
        body: Any = await self.retry_body(call)
        if isinstance(body, str | int | float | bool):
            raise InvalidRequest(f"The request body must be a JSON object, got {json_type(body)}")
        if body.get("authentication") is None:
            raise InvalidRequest("The request body must have an 'authentication' object holding a 'nonce'")
        return parse_nonce(body)


class _BodyErrors422(SteppedHandlers):
    """Every problem with the retry's body is answered 422 instead of 400."""

    async def retry_nonce(self, call: Call) -> object:
        try:
            return await super().retry_nonce(call)
        except InvalidRequest as error:
            raise Unprocessable(error.message) from None


class _EmptyNonceParsed(SteppedHandlers):
    """The nonce must be a string, but nothing says it must not be empty."""

    async def retry_nonce(self, call: Call) -> object:
        nonce = _nonce_field(await self.retry_body(call))
        if not isinstance(nonce, str):
            raise InvalidRequest(f"'authentication.nonce' must be a string, got {json_type(nonce)}")
        return nonce


class _EmptyNonceSkipsSession(SteppedStore):
    """`if nonce:` guards the session check, so an empty nonce needs no session."""

    def retry_session(self, project: str, nonce: object) -> Session | None:
        return super().retry_session(project, nonce) if nonce else None


class _AnyNonceTypeParsed(SteppedHandlers):
    """The nonce's type is never checked."""

    async def retry_nonce(self, call: Call) -> object:
        return _nonce_field(await self.retry_body(call))


class _NonStringNonceSkipsSession(SteppedStore):
    """The session check runs only for string nonces; anything else passes through."""

    def retry_session(self, project: str, nonce: object) -> Session | None:
        return super().retry_session(project, nonce) if isinstance(nonce, str) else None


class _UnicodeNonceCrashes(SteppedHandlers):
    """The nonce is turned into ASCII bytes for the session lookup, assuming nonces are base64."""

    async def retry_nonce(self, call: Call) -> object:
        nonce = await super().retry_nonce(call)
        if isinstance(nonce, str):
            nonce.encode("ascii")
        return nonce


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


class _AuditLogRefusesNul(SteppedHandlers):
    """The retry writes its parsed body to an audit table, a PostgreSQL jsonb column, before checking
    it; PostgreSQL cannot store \\u0000 in text, and nothing maps its error to a 4xx."""

    async def retry_body(self, call: Call) -> object:
        body = await super().retry_body(call)
        if any("\x00" in text for text in _json_strings(body)):
            raise UnmappedError("unsupported Unicode escape sequence: \\u0000 cannot be converted to text")
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


class _StrictBinding(SteppedHandlers):
    """The body is bound to a request class that fails on unknown properties (Jackson's
    FAIL_ON_UNKNOWN_PROPERTIES), and unlike its type errors that exception is not mapped to a 400."""

    async def retry_body(self, call: Call) -> object:
        body = await super().retry_body(call)
        unknown = _unknown_fields(body)
        if unknown:
            raise UnmappedError(f"Unrecognized field {unknown[0]!r}: not marked as ignorable")
        return body


class _UnknownExecution400(SteppedHandlers):
    """The retry reports every failed lookup as a bad request."""

    def retry_in_store(self, project: str, execution_id: str, nonce: object) -> JSONObject:
        try:
            return super().retry_in_store(project, execution_id, nonce)
        except NotFound as error:
            raise InvalidRequest(error.message) from None


class _UnknownExecutionCrashes(SteppedStore):
    """The retry's lookup returns None for an unknown id, and the code goes on with it."""

    def retry_lookup(self, project: str, execution_id: str) -> Execution:
        state = self._state(project)
        execution: Any = state.executions.get(execution_id)
        self._settle(state, execution, refresh=True)
        return cast(Execution, execution)


class _NonceNotVerified(SteppedStore):
    """The nonce's session is looked up only to be marked used; a miss, a used or an expired session
    is not refused."""

    def retry_session(self, project: str, nonce: object) -> Session | None:
        return self._sessions.get(nonce) if isinstance(nonce, str) else None


class _NonceReusable(SteppedStore):
    """The retry never marks its nonce's session used."""

    def retry_consume(self, session: Session | None) -> None:
        pass


class _NonceLoggedInNarrowColumn(SteppedStore):
    """Before it looks the session up, the retry records the nonce it was given in its request log, a
    VARCHAR(4096) column: a longer nonce fails the insert, and nothing maps that error to a 4xx."""

    nonce_column_length: ClassVar[int] = 4096

    def retry_session(self, project: str, nonce: object) -> Session | None:
        if isinstance(nonce, str) and len(nonce) > self.nonce_column_length:
            raise UnmappedError(f"value too long for type character varying({self.nonce_column_length})")
        return super().retry_session(project, nonce)


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


# How each defect of this family is made (the catalogue says what each does and breaks).
PATCHES: Mapping[str, Patch] = MappingProxyType(
    {
        "malformed-id-500": Patch(handlers=_MalformedIdCrashes),
        "id-truncated-to-36": Patch(handlers=_IdTruncatedTo36),
        "malformed-id-422": Patch(handlers=_MalformedId422),
        "empty-body-500": Patch(handlers=_MissingBodyCrashes),
        "body-array-500": Patch(handlers=_ArrayBodyCrashes),
        "body-errors-422": Patch(handlers=_BodyErrors422),
        "nonce-empty-accepted": Patch(handlers=_EmptyNonceParsed, store=_EmptyNonceSkipsSession),
        "nonce-non-string-accepted": Patch(handlers=_AnyNonceTypeParsed, store=_NonStringNonceSkipsSession),
        "nonce-not-verified": Patch(store=_NonceNotVerified),
        "nonce-reusable": Patch(store=_NonceReusable),
        "unknown-execution-400": Patch(handlers=_UnknownExecution400),
        "unknown-execution-500": Patch(store=_UnknownExecutionCrashes),
        "retry-running": Patch(engine=_RetriesRunning),
        "retry-completed": Patch(engine=_RetriesCompleted),
        "terminated-not-retryable": Patch(engine=_state_check_forgetting(ExecutionStatus.TERMINATED)),
        "timed-out-not-retryable": Patch(engine=_state_check_forgetting(ExecutionStatus.TIMED_OUT)),
        "unicode-nonce-500": Patch(handlers=_UnicodeNonceCrashes),
        "long-nonce-500": Patch(store=_NonceLoggedInNarrowColumn),
        "nul-in-body-500": Patch(handlers=_AuditLogRefusesNul),
        "extra-field-500": Patch(handlers=_StrictBinding),
    }
)
