"""Defects of the retry's checks of what it was given and of the execution's state: the path id, the
method, how the body is framed and encoded, the body and its nonce, the session behind the nonce, the
lookup of the execution, and which execution states may be retried; with them the failures that such
requests provoke (a crash, a dropped connection, the web framework's own error page).
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar, cast

from starlette.datastructures import Headers
from starlette.requests import Request

from cdf_workflows_mock.app import Call
from cdf_workflows_mock.bodies import _decode_content
from cdf_workflows_mock.cdf import RETRYABLE_EXECUTION_STATUSES, ExecutionStatus
from cdf_workflows_mock.defects.base import (
    Defect,
    LengthRequired,
    Patch,
    SteppedHandlers,
    SteppedStore,
    UnmappedError,
    Unprocessable,
    Wire,
    WireResponse,
    is_retry_endpoint,
    is_retry_path,
)
from cdf_workflows_mock.defects.probing import (
    NON_ASCII_EXTRA,
    Prober,
    assert_envelope,
    drops_connection,
    function_task,
    send_retry,
)
from cdf_workflows_mock.defects.wire import read_request
from cdf_workflows_mock.engine import TaskEngine
from cdf_workflows_mock.errors import Conflict, InvalidRequest, NotFound, UnsupportedMediaType
from cdf_workflows_mock.model import Execution, JSONObject
from cdf_workflows_mock.routing import Endpoint
from cdf_workflows_mock.store import Session
from cdf_workflows_mock.validation import expect_object, json_type, parse_nonce, show


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


_OTHER_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS")


class _AnyMethodRetries(SteppedHandlers):
    """The retry route is registered for every method, not just POST."""

    def endpoints(self) -> list[Endpoint]:
        endpoints = super().endpoints()
        retry = next(endpoint for endpoint in endpoints if is_retry_endpoint(endpoint))
        return endpoints + [replace(retry, method=method) for method in _OTHER_METHODS]


class _GzipRefused(SteppedHandlers):
    """The retry route was mounted without the decompression filter of the other routes, and its body
    reader refuses every Content-Encoding it was not written for: gzip, what the Cognite SDK sends, too."""

    def retry_check_headers(self, headers: Headers) -> None:
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported")


_JSON_MEDIA_TYPE = "application/json"


class _WholeContentTypeCompared(SteppedHandlers):
    """The media-type check compares the whole Content-Type header, parameters and case included, with
    'application/json'; a request without the header is taken for JSON."""

    def retry_check_headers(self, headers: Headers) -> None:
        content_type = headers.get("content-type")
        if content_type is not None and content_type != _JSON_MEDIA_TYPE:
            raise UnsupportedMediaType(f"Content-Type must be {_JSON_MEDIA_TYPE}, got {show(content_type)}")


class _ChunkedRefused(SteppedHandlers):
    """The body reader reads exactly Content-Length bytes, so a chunked body, which clients that stream
    their body send without a length, is refused before it is read."""

    def retry_check_headers(self, headers: Headers) -> None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise LengthRequired("A Content-Length is required; chunked request bodies are not supported")


class _BodyDecodedAsAscii(SteppedHandlers):
    """The body is decoded with the platform's default charset (US-ASCII in a container without a
    locale) before it is parsed, and the decoding error is reported as malformed JSON: raw UTF-8 is
    refused, the same document with \\u escapes is accepted."""

    async def retry_body(self, call: Call) -> object:
        raw, replay = await read_request(call.request.receive)
        # An empty body, or one larger than the mock reads (None), is the faithful reader's to refuse.
        if raw and not _decode_content(raw, call.request.headers.get("content-encoding", "")).isascii():
            raise InvalidRequest("The request body is not valid JSON")
        return await super().retry_body(Call(Request(call.request.scope, replay), call.caller, call.params))


# The longest span attribute value the tracing library of the retry route accepts.
_SPAN_ATTRIBUTE_MAX_LENGTH = 1024


def _path_id_overflows_tracing(segments: Sequence[str]) -> bool:
    # The retry route's tracing middleware puts the path id in a span attribute before routing; the
    # library raises beyond its limit, outside the handler that turns exceptions into JSON.
    return is_retry_path(segments) and len(segments[6]) > _SPAN_ATTRIBUTE_MAX_LENGTH


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


def _405_without_allow(response: WireResponse) -> None:
    if response.status == 405:
        del response.headers["allow"]


# --- probes: each defect's change, shown on the mock through its API (`probing`) -----------


def _probe_malformed_id_500(p: Prober) -> None:
    assert_envelope(p.post_retry("not-a-uuid", json=p.body()), 500)
    assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 404)


def _probe_id_truncated_to_36(p: Prober) -> None:
    execution_id = p.failed()
    answer = p.post_retry(execution_id + "0", json=p.body())
    assert answer.status_code == 200 and answer.json()["id"] == execution_id
    assert_envelope(p.post_retry(execution_id[:-1], json=p.body()), 400)


def _probe_malformed_id_422(p: Prober) -> None:
    assert_envelope(p.post_retry("not-a-uuid", json=p.body()), 422)


def _probe_empty_body_500(p: Prober) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id), 500)
    assert_envelope(p.post_retry(execution_id, json={}), 400)
    assert p.api.detail(execution_id)["status"] == "FAILED"


def _probe_body_array_500(p: Prober) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id, json=[p.body()]), 500)
    assert_envelope(p.post_retry(execution_id, json="authentication"), 400)


def _probe_body_errors_422(p: Prober) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id, json={}), 422)
    assert_envelope(p.post_retry(execution_id, content=b"nonce=x"), 422)
    assert_envelope(p.post_retry(execution_id, json=p.body("never-issued")), 400)


def _probe_nonce_empty_accepted(p: Prober) -> None:
    assert p.post_retry(p.failed(), json=p.body("")).status_code == 200
    assert_envelope(p.post_retry(p.failed(), json=p.body(12345)), 400)


def _probe_nonce_non_string_accepted(p: Prober) -> None:
    for nonce in (12345, {"value": "x"}):
        assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert p.post_retry(p.failed(), json={"authentication": {"nonce": None}}).status_code == 200
    assert_envelope(p.post_retry(p.failed(), json={"authentication": {}}), 400)
    assert_envelope(p.post_retry(p.failed(), json=p.body("")), 400)


def _probe_raw_utf8_misread(p: Prober) -> None:
    execution_id = p.failed()
    for gzipped in (False, True):
        body = {**p.body(), **NON_ASCII_EXTRA}
        error = assert_envelope(send_retry(p, execution_id, body, gzipped=gzipped, raw_utf8=True), 400)
        assert "not valid JSON" in error["message"]
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert send_retry(p, execution_id, {**p.body(), **NON_ASCII_EXTRA}).status_code == 200


def _probe_nonce_not_verified(p: Prober) -> None:
    assert p.post_retry(p.failed(), json=p.body("never-issued-nonce")).status_code == 200
    nonce = p.api.nonce()
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200


def _probe_nonce_reusable(p: Prober) -> None:
    nonce = p.api.nonce()
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert_envelope(p.post_retry(p.failed(), json=p.body("never-issued-nonce")), 400)


def _probe_method_any_accepted(p: Prober) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        answer = p.api.http.request(method, p.retry_url(p.failed()), json=p.body())
        assert answer.status_code == 200, method
    assert_envelope(p.api.http.request("GET", p.retry_url(p.failed())), 400)


def _probe_method_405_without_allow(p: Prober) -> None:
    answer = p.api.http.get(p.retry_url(p.failed()))
    assert_envelope(answer, 405)
    assert "allow" not in answer.headers
    assert p.api.http.get(f"/workflows/executions/{p.failed()}/cancel").headers["allow"] == "POST"


def _probe_unknown_execution_400(p: Prober) -> None:
    error = assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 400)
    assert "missing" not in error


def _probe_unknown_execution_500(p: Prober) -> None:
    assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 500)
    assert_envelope(p.api.http.get(f"/workflows/executions/{uuid.uuid4()}"), 404)


def _probe_retry_running(p: Prober) -> None:
    assert p.api.retry(p.running()).json()["status"] == "RUNNING"
    assert_envelope(p.api.retry(p.completed()), 409)


def _probe_retry_completed(p: Prober) -> None:
    execution_id = p.completed()
    assert p.api.retry(execution_id).status_code == 200
    assert_envelope(p.api.retry(p.running()), 409)


def _probe_terminated_not_retryable(p: Prober) -> None:
    assert_envelope(p.api.retry(p.terminated()), 409)
    assert p.api.retry(p.failed()).status_code == 200


def _probe_timed_out_not_retryable(p: Prober) -> None:
    execution_id = p.api.start([function_task("step", timeout=1)])
    p.clock.advance(2)
    assert p.api.detail(execution_id)["status"] == "TIMED_OUT"
    assert_envelope(p.api.retry(execution_id), 409)
    assert p.api.retry(p.terminated()).status_code == 200


def _probe_gzip_body_refused(p: Prober) -> None:
    execution_id = p.failed()
    assert_envelope(send_retry(p, execution_id, gzipped=True), 415)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert send_retry(p, execution_id).status_code == 200


def _probe_charset_refused(p: Prober) -> None:
    execution_id = p.failed()
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        assert_envelope(send_retry(p, execution_id, content_type=content_type), 415)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert send_retry(p, execution_id).status_code == 200


def _probe_chunked_body_refused(p: Prober) -> None:
    execution_id = p.failed()
    assert_envelope(send_retry(p, execution_id, chunked=True), 411)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert send_retry(p, execution_id).status_code == 200


def _probe_unicode_nonce_500(p: Prober) -> None:
    assert_envelope(p.post_retry(p.failed(), json=p.body("nonce-\u00fc")), 500)
    assert_envelope(p.post_retry(p.failed(), json=p.body("ascii-nonce-never-issued")), 400)


def _probe_malformed_json_drops_connection(p: Prober) -> None:
    execution_id = p.failed()
    for content in (b'{"authentication": {"nonce": "abc"', b"authentication=nonce"):
        with drops_connection():
            p.post_retry(execution_id, content=content, headers={"content-type": "application/json"})
    assert_envelope(p.post_retry(execution_id), 400)
    assert_envelope(p.post_retry(execution_id, json={"authentication": "nonce"}), 400)


def _probe_long_nonce_500(p: Prober) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id, json=p.body("n" * 4097)), 500)
    assert_envelope(p.post_retry(execution_id, json=p.body("n" * 4096)), 400)
    assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body("n" * 4097)), 404)
    assert p.api.detail(execution_id)["status"] == "FAILED"


def _probe_long_path_id_500(p: Prober) -> None:
    answer = p.post_retry("a" * 1025, json=p.body())
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("text/html")
    assert answer.headers["x-request-id"] and answer.text.startswith("<html>")
    assert_envelope(p.post_retry("a" * 1024, json=p.body()), 400)
    assert_envelope(p.api.http.get(f"/workflows/executions/{'a' * 1025}"), 400)


def _probe_nul_in_body_500(p: Prober) -> None:
    execution_id = p.failed()
    for body in (p.body("nonce\x00"), {"authentication": "\x00"}, {**p.body(), "note\x00": "x"}):
        assert_envelope(p.post_retry(execution_id, json=body), 500)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert_envelope(p.post_retry(execution_id, json=p.body("never-issued")), 400)


def _probe_extra_field_500(p: Prober) -> None:
    execution_id = p.failed()
    for body in ({**p.body(), "comment": "x"}, {"authentication": {"nonce": p.api.nonce(), "type": "x"}}):
        assert_envelope(p.post_retry(execution_id, json=body), 500)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert_envelope(p.post_retry(execution_id, json={"authentication": "nonce"}), 400)
    assert p.post_retry(execution_id, json=p.body()).status_code == 200


# Every defect of this family, in the catalogue's order.
DEFECTS: tuple[Defect, ...] = (
    Defect(
        name="malformed-id-500",
        breaks=("PATH-UUID", "ROBUST"),
        description="A path id that is not a UUID crashes the UUID parser: 500",
        patch=Patch(handlers=_MalformedIdCrashes),
        probe=_probe_malformed_id_500,
    ),
    Defect(
        name="id-truncated-to-36",
        breaks=("PATH-UUID", "RESP-ID"),
        description=(
            "Path ids are cut to 36 characters before the lookup: a 37-character id retries a real execution"
        ),
        patch=Patch(handlers=_IdTruncatedTo36),
        probe=_probe_id_truncated_to_36,
    ),
    Defect(
        name="malformed-id-422",
        breaks=("PATH-UUID",),
        description="A path id that is not a UUID is answered 422",
        patch=Patch(handlers=_MalformedId422),
        probe=_probe_malformed_id_422,
    ),
    Defect(
        name="empty-body-500",
        breaks=("BODY-SHAPE", "ROBUST"),
        description="A retry without a body (or with a JSON null or number) crashes the handler: 500",
        patch=Patch(handlers=_MissingBodyCrashes),
        probe=_probe_empty_body_500,
    ),
    Defect(
        name="body-array-500",
        breaks=("BODY-SHAPE", "ROBUST"),
        description="A JSON array as the body crashes the handler: 500",
        patch=Patch(handlers=_ArrayBodyCrashes),
        probe=_probe_body_array_500,
    ),
    Defect(
        name="body-errors-422",
        breaks=("BODY-SHAPE",),
        description="Every invalid retry body is answered 422 instead of 400",
        patch=Patch(handlers=_BodyErrors422),
        probe=_probe_body_errors_422,
    ),
    Defect(
        name="nonce-empty-accepted",
        breaks=("BODY-SHAPE",),
        description="An empty-string nonce skips the session check and the retry proceeds",
        patch=Patch(handlers=_EmptyNonceParsed, store=_EmptyNonceSkipsSession),
        probe=_probe_nonce_empty_accepted,
    ),
    Defect(
        name="nonce-non-string-accepted",
        breaks=("BODY-SHAPE",),
        description=(
            "A nonce that is not a string (number, object, null) skips the session check; the retry proceeds"
        ),
        patch=Patch(handlers=_AnyNonceTypeParsed, store=_NonStringNonceSkipsSession),
        probe=_probe_nonce_non_string_accepted,
    ),
    Defect(
        name="raw-utf8-misread",
        breaks=("BODY-SHAPE",),
        description=(
            "A body with raw non-ASCII UTF-8 is refused 400 as malformed JSON; with \\u escapes it is not"
        ),
        patch=Patch(handlers=_BodyDecodedAsAscii),
        probe=_probe_raw_utf8_misread,
    ),
    Defect(
        name="nonce-not-verified",
        breaks=("BODY-NONCE", "NONCE-REUSE"),
        description=(
            "Any well-formed nonce is accepted, never issued, used or expired alike; the retry proceeds"
        ),
        patch=Patch(store=_NonceNotVerified),
        probe=_probe_nonce_not_verified,
    ),
    Defect(
        name="nonce-reusable",
        breaks=("NONCE-REUSE",),
        description="The retry never marks its nonce used, so the nonce works again",
        patch=Patch(store=_NonceReusable),
        probe=_probe_nonce_reusable,
    ),
    Defect(
        name="method-any-accepted",
        breaks=("METHOD",),
        description="The retry route answers every method: GET, PUT, PATCH, DELETE... retry the execution",
        patch=Patch(handlers=_AnyMethodRetries),
        probe=_probe_method_any_accepted,
    ),
    Defect(
        name="method-405-without-allow",
        breaks=("METHOD",),
        description="A 405 on the retry path has no Allow header",
        patch=Patch(wire=Wire(rewrite=_405_without_allow)),
        probe=_probe_method_405_without_allow,
    ),
    Defect(
        name="unknown-execution-400",
        breaks=("STATE-404",),
        description="A retry of an unknown execution is answered 400 without error.missing",
        patch=Patch(handlers=_UnknownExecution400),
        probe=_probe_unknown_execution_400,
    ),
    Defect(
        name="unknown-execution-500",
        breaks=("STATE-404", "ROBUST"),
        description="A retry of an unknown execution crashes on the missing record: 500",
        patch=Patch(store=_UnknownExecutionCrashes),
        probe=_probe_unknown_execution_500,
    ),
    Defect(
        name="retry-running",
        breaks=("STATE-RETRYABLE", "SEM-CONCURRENT"),
        description="A RUNNING execution is retried (only COMPLETED is refused)",
        patch=Patch(engine=_RetriesRunning),
        probe=_probe_retry_running,
    ),
    Defect(
        name="retry-completed",
        breaks=("STATE-RETRYABLE",),
        description="A COMPLETED execution is retried (only RUNNING is refused)",
        patch=Patch(engine=_RetriesCompleted),
        probe=_probe_retry_completed,
    ),
    Defect(
        name="terminated-not-retryable",
        breaks=("STATE-RETRYABLE",),
        description="A TERMINATED execution is refused with 409",
        patch=Patch(engine=_state_check_forgetting(ExecutionStatus.TERMINATED)),
        probe=_probe_terminated_not_retryable,
    ),
    Defect(
        name="timed-out-not-retryable",
        breaks=("STATE-RETRYABLE",),
        description="A TIMED_OUT execution is refused with 409",
        patch=Patch(engine=_state_check_forgetting(ExecutionStatus.TIMED_OUT)),
        probe=_probe_timed_out_not_retryable,
    ),
    Defect(
        name="gzip-body-refused",
        breaks=("STATE-RETRYABLE",),
        description="A gzipped body (Content-Encoding: gzip, what the Cognite SDK sends) is refused with 415",
        patch=Patch(handlers=_GzipRefused),
        probe=_probe_gzip_body_refused,
    ),
    Defect(
        name="charset-refused",
        breaks=("STATE-RETRYABLE",),
        description=(
            "Content-Type: application/json; charset=utf-8 is refused with 415 (the whole header must match)"
        ),
        patch=Patch(handlers=_WholeContentTypeCompared),
        probe=_probe_charset_refused,
    ),
    Defect(
        name="chunked-body-refused",
        breaks=("STATE-RETRYABLE",),
        description=(
            "A retry with a chunked body (Transfer-Encoding: chunked, no Content-Length) is refused with 411"
        ),
        patch=Patch(handlers=_ChunkedRefused),
        probe=_probe_chunked_body_refused,
    ),
    Defect(
        name="unicode-nonce-500",
        breaks=("ROBUST", "STATE-404"),
        description="A nonce with a non-ASCII character crashes the session lookup: 500",
        patch=Patch(handlers=_UnicodeNonceCrashes),
        probe=_probe_unicode_nonce_500,
    ),
    Defect(
        name="malformed-json-drops-connection",
        breaks=("ROBUST", "BODY-SHAPE"),
        description="A body that is not valid JSON kills the answer after its headers: the connection drops",
        patch=Patch(wire=Wire(drops=_is_malformed_json)),
        probe=_probe_malformed_json_drops_connection,
    ),
    Defect(
        name="long-nonce-500",
        breaks=("ROBUST", "BODY-NONCE"),
        description="A nonce longer than 4096 characters overflows the request log's column: 500",
        patch=Patch(store=_NonceLoggedInNarrowColumn),
        probe=_probe_long_nonce_500,
    ),
    Defect(
        name="long-path-id-500",
        breaks=("ROBUST", "PATH-UUID", "ERR-ENVELOPE"),
        description=(
            "A path id longer than 1024 characters crashes the tracing middleware: 500 with an HTML page"
        ),
        patch=Patch(wire=Wire(fails=_path_id_overflows_tracing)),
        probe=_probe_long_path_id_500,
    ),
    Defect(
        name="nul-in-body-500",
        breaks=("ROBUST", "BODY-NONCE", "BODY-SHAPE"),
        description="A NUL character (\\u0000) in any string of the body fails the audit-log insert: 500",
        patch=Patch(handlers=_AuditLogRefusesNul),
        probe=_probe_nul_in_body_500,
    ),
    Defect(
        name="extra-field-500",
        breaks=("ROBUST", "BODY-SHAPE"),
        description=(
            "An unknown field in the body (top level or in authentication) crashes the strict binder: 500"
        ),
        patch=Patch(handlers=_StrictBinding),
        probe=_probe_extra_field_500,
    ),
)
