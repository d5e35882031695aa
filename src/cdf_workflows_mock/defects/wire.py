"""Defects of the wire: how the retry's request is read (encodings, media types, framing, methods) and
what happens to its answer on the way out (status, headers, error envelopes, dropped connections,
the web framework's own error page), through the `WireDefects` middleware around the app.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from http import HTTPStatus
from types import MappingProxyType

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdf_workflows_mock.app import Call
from cdf_workflows_mock.bodies import MAX_BODY_BYTES, REQUEST_ID_HEADER, _decode_content
from cdf_workflows_mock.defects.base import (
    LengthRequired,
    Patch,
    SteppedHandlers,
    Wire,
    WireResponse,
    is_retry_endpoint,
    is_retry_path,
)
from cdf_workflows_mock.errors import InvalidRequest, UnsupportedMediaType
from cdf_workflows_mock.routing import Endpoint, path_segments
from cdf_workflows_mock.validation import show

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
        raw, replay = await _read_request(call.request.receive)
        # An empty body, or one larger than the mock reads (None), is the faithful reader's to refuse.
        if raw and not _decode_content(raw, call.request.headers.get("content-encoding", "")).isascii():
            raise InvalidRequest("The request body is not valid JSON")
        return await super().retry_body(Call(Request(call.request.scope, replay), call.caller, call.params))


class WireDefects:
    """ASGI middleware with the wire-level defects: it fails a request in front of the app, or buffers
    each affected answer, lets the defects rewrite its status, headers and body, and sends the result."""

    def __init__(self, app: ASGIApp, wires: Sequence[Wire]) -> None:
        self._app = app
        self._wires = tuple(wires)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        segments = path_segments(scope)
        on_retry = is_retry_path(segments)
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
        response = WireResponse(
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


def _errors_as_text(response: WireResponse) -> None:
    if 400 <= response.status < 500:
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Error"
        response.body = phrase.encode()
        response.headers["content-type"] = "text/plain; charset=utf-8"


def _flat_envelope(response: WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        response.set_json(envelope["error"])


def _envelope_without_message(response: WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        envelope["error"].pop("message", None)
        response.set_json(envelope)


def _code_as_string(response: WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        envelope["error"]["code"] = str(envelope["error"]["code"])
        response.set_json(envelope)


def _code_always_400(response: WireResponse) -> None:
    envelope = response.error_envelope()
    if envelope is not None:
        envelope["error"]["code"] = 400
        response.set_json(envelope)


def _no_request_id_on_errors(response: WireResponse) -> None:
    if response.status >= 400:
        del response.headers["x-request-id"]


def _405_without_allow(response: WireResponse) -> None:
    if response.status == 405:
        del response.headers["allow"]


def _success_202(response: WireResponse) -> None:
    if response.status == 200:
        response.status = 202


def _success_as_text(response: WireResponse) -> None:
    if response.status == 200:
        response.headers["content-type"] = "text/plain; charset=utf-8"


# How each defect of this family is made (the catalogue says what each does and breaks).
PATCHES: Mapping[str, Patch] = MappingProxyType(
    {
        "raw-utf8-misread": Patch(handlers=_BodyDecodedAsAscii),
        "method-any-accepted": Patch(handlers=_AnyMethodRetries),
        "method-405-without-allow": Patch(wire=Wire(rewrite=_405_without_allow)),
        "gzip-body-refused": Patch(handlers=_GzipRefused),
        "charset-refused": Patch(handlers=_WholeContentTypeCompared),
        "chunked-body-refused": Patch(handlers=_ChunkedRefused),
        "malformed-json-drops-connection": Patch(wire=Wire(drops=_is_malformed_json)),
        "long-path-id-500": Patch(wire=Wire(fails=_path_id_overflows_tracing)),
        "errors-as-text": Patch(wire=Wire(rewrite=_errors_as_text)),
        "error-envelope-flat": Patch(wire=Wire(rewrite=_flat_envelope)),
        "error-message-missing": Patch(wire=Wire(rewrite=_envelope_without_message)),
        "error-code-as-string": Patch(wire=Wire(rewrite=_code_as_string)),
        "error-code-always-400": Patch(wire=Wire(rewrite=_code_always_400)),
        "no-request-id-on-errors": Patch(wire=Wire(rewrite=_no_request_id_on_errors, everywhere=True)),
        "success-202": Patch(wire=Wire(rewrite=_success_202)),
        "success-text-content-type": Patch(wire=Wire(rewrite=_success_as_text)),
    }
)
