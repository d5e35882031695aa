"""Defects of the wire: what happens to the retry's answer on the way out (status, headers, error
envelopes), and the `WireDefects` middleware around the app that makes them, and the wire-level
defects of other families (dropped connections, the web framework's own error page).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from http import HTTPStatus

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdf_workflows_mock.bodies import MAX_BODY_BYTES, REQUEST_ID_HEADER
from cdf_workflows_mock.defects.base import (
    Defect,
    Patch,
    Wire,
    WireResponse,
    is_retry_path,
)
from cdf_workflows_mock.defects.probing import (
    Prober,
    assert_envelope,
    error_body,
)
from cdf_workflows_mock.routing import path_segments


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
            body, receive = await read_request(receive)
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


async def read_request(receive: Receive) -> tuple[bytes | None, Receive]:
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


def _success_202(response: WireResponse) -> None:
    if response.status == 200:
        response.status = 202


def _success_as_text(response: WireResponse) -> None:
    if response.status == 200:
        response.headers["content-type"] = "text/plain; charset=utf-8"


# --- probes: each defect's change, shown on the mock through its API (`probing`) -----------


def _probe_errors_as_text(p: Prober) -> None:
    answer = p.post_retry(p.failed(), json={})
    assert answer.status_code == 400 and answer.text == "Bad Request"
    assert answer.headers["content-type"].startswith("text/plain") and answer.headers["x-request-id"]
    assert_envelope(p.api.http.get(f"/workflows/executions/{uuid.uuid4()}"), 404)


def _probe_error_envelope_flat(p: Prober) -> None:
    _, body = error_body(p)
    assert body["code"] == 404 and isinstance(body["message"], str) and "error" not in body


def _probe_error_message_missing(p: Prober) -> None:
    _, body = error_body(p)
    assert body["error"]["code"] == 404 and "message" not in body["error"]


def _probe_error_code_as_string(p: Prober) -> None:
    _, body = error_body(p)
    assert body["error"]["code"] == "404"


def _probe_error_code_always_400(p: Prober) -> None:
    _, body = error_body(p)
    assert body["error"]["code"] == 400
    assert p.post_retry(p.failed(), json=p.body("never-issued")).json()["error"]["code"] == 400


def _probe_no_request_id_on_errors(p: Prober) -> None:
    answer, _ = error_body(p)
    assert "x-request-id" not in answer.headers
    assert "x-request-id" not in p.api.http.get(f"/workflows/executions/{uuid.uuid4()}").headers
    assert p.api.retry(p.failed()).headers["x-request-id"]


def _probe_success_202(p: Prober) -> None:
    answer = p.api.retry(p.failed())
    assert answer.status_code == 202 and answer.json()["status"] == "RUNNING"


def _probe_success_text_content_type(p: Prober) -> None:
    answer = p.api.retry(p.failed())
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert answer.json()["status"] == "RUNNING"


# Every defect of this family, in the catalogue's order.
DEFECTS: tuple[Defect, ...] = (
    Defect(
        name="errors-as-text",
        breaks=("ROBUST", "ERR-ENVELOPE"),
        description="4xx answers of the retry are plain-text status phrases such as 'Bad Request'",
        patch=Patch(wire=Wire(rewrite=_errors_as_text)),
        probe=_probe_errors_as_text,
    ),
    Defect(
        name="error-envelope-flat",
        breaks=("ERR-ENVELOPE",),
        description='Errors of the retry are {"code", "message"} at the top level, not inside "error"',
        patch=Patch(wire=Wire(rewrite=_flat_envelope)),
        probe=_probe_error_envelope_flat,
    ),
    Defect(
        name="error-message-missing",
        breaks=("ERR-ENVELOPE",),
        description="Errors of the retry have no error.message",
        patch=Patch(wire=Wire(rewrite=_envelope_without_message)),
        probe=_probe_error_message_missing,
    ),
    Defect(
        name="error-code-as-string",
        breaks=("ERR-ENVELOPE",),
        description='Errors of the retry carry error.code as a string ("404")',
        patch=Patch(wire=Wire(rewrite=_code_as_string)),
        probe=_probe_error_code_as_string,
    ),
    Defect(
        name="error-code-always-400",
        breaks=("ERR-CODE",),
        description="Errors of the retry all say error.code 400, whatever the status",
        patch=Patch(wire=Wire(rewrite=_code_always_400)),
        probe=_probe_error_code_always_400,
    ),
    Defect(
        name="no-request-id-on-errors",
        breaks=("HDR-REQUEST-ID",),
        description="4xx and 5xx answers of every endpoint have no X-Request-ID header",
        patch=Patch(wire=Wire(rewrite=_no_request_id_on_errors, everywhere=True)),
        probe=_probe_no_request_id_on_errors,
    ),
    Defect(
        name="success-202",
        breaks=("RESP-200",),
        description="A successful retry answers 202 Accepted",
        patch=Patch(wire=Wire(rewrite=_success_202)),
        probe=_probe_success_202,
    ),
    Defect(
        name="success-text-content-type",
        breaks=("RESP-200",),
        description="A successful retry answers its JSON with Content-Type text/plain",
        patch=Patch(wire=Wire(rewrite=_success_as_text)),
        probe=_probe_success_text_content_type,
    ),
)
