"""How long the served mock waits for a request, and what it answers a request it cannot parse.

uvicorn's HTTP/1.1 protocol (h11) reads a request for as long as the client takes: a client that opens
a connection and says nothing, sends its head a byte at a time, or sends a head and never the body
would hold a connection (and, for the body, a request task) forever. Its keep-alive timeout covers
only the quiet time after an answer, and is cancelled by the first byte of the next request. A
request head h11 refuses (malformed, or longer than the head limit) gets uvicorn's plain-text 400,
which is not the Cognite error envelope every other answer of the mock has.

`ReadDeadlineProtocol`, uvicorn's h11 protocol with a read deadline, closes those gaps:

- Each request must arrive in full, head and body, within `read_timeout` seconds of the moment the
  connection opened (its first request) or of the first byte of the request (later ones on a
  kept-alive connection). What happens past the deadline depends on what had arrived:
  nothing (a silent connection) → the connection is closed, there is nothing to answer;
  part of a request → 408 with the error envelope and `Connection: close`, then the connection is
  closed; a request already answered while its body was still arriving (an early 413) → closed.
  The deadline covers reading only, never the time the mock takes to answer.
- Between requests on a kept-alive connection, uvicorn's `timeout_keep_alive` closes a quiet
  connection (`MockConfig.idle_timeout_seconds`).
- A head h11 refuses is answered with the envelope: 431 when it is longer than the head limit
  (`loopback.MAX_REQUEST_HEAD_BYTES`), 400 otherwise, and the connection is closed.
- A client that shuts down its sending side after a complete request (a half-close) still gets its
  answer; the connection is closed after it. Without this asyncio closes the connection at the
  client's end of stream, and an answer still being computed is lost.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from http import HTTPStatus

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cdf_workflows_mock.bodies import REQUEST_ID_HEADER
from cdf_workflows_mock.config import DEFAULT_READ_TIMEOUT_SECONDS
from cdf_workflows_mock.errors import error_body

# What h11 buffers for a request head when uvicorn is not told otherwise.
_H11_DEFAULT_HEAD_LIMIT = 16 * 1024
# After an error answer, how long what the client still sends is read and dropped before the
# connection is closed (a "lingering close", as Apache and nginx do): closing a socket with unread
# data makes the kernel send a reset, which can destroy the answer before the client reads it.
LINGER_SECONDS = 2.0


def raw_error_response(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 answer with the error envelope that closes the connection, as bytes.

    Written straight to the socket: these answers go out where h11 cannot send one (no complete
    request head yet), and the connection is closed right after, so no parser state matters.
    """
    body = json.dumps(error_body(status, message), ensure_ascii=True, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"{REQUEST_ID_HEADER.lower()}: {uuid.uuid4()}\r\n"
        "connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


class ReadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for reading each request (see the module's doc)."""

    read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS

    _deadline: asyncio.TimerHandle | None = None
    # Set once an error answer is out: what arrives afterwards is dropped until the connection closes.
    _lingering: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The first request's clock starts with the connection: a client that opens and says
        # nothing is closed like one that stops half-way.
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        super().data_received(data)
        self._follow(arm_for_head=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A quiet connection is uvicorn's keep-alive timer's now (armed just above). A pipelined
        # request that is already on its way (part of its head buffered, or its body still coming)
        # is under the read deadline instead, like any request, so it meets a 408 and not a silence.
        partial_head = self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])
        if partial_head or self.conn.their_state is h11.SEND_BODY:
            self._unset_keepalive_if_required()
        self._follow(arm_for_head=partial_head)

    def eof_received(self) -> bool | None:  # type: ignore[override]
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self.conn.their_state is h11.DONE:
            # The request is complete and its answer is being computed: keep the sending side open
            # for it, and close once it is out.
            cycle.keep_alive = False
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The connection becomes another protocol's; this one's deadline must not close it.
        self._disarm()
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        # h11 refused the request head. Its buffer exceeds the limit only when the head was too long.
        limit = self.config.h11_max_incomplete_event_size or _H11_DEFAULT_HEAD_LIMIT
        self._disarm()
        if len(self.conn.trailing_data[0]) > limit:
            status, message = 431, f"The request line and headers are longer than {limit} bytes"
        else:
            status, message = 400, "The request is not valid HTTP/1.1"
        self._answer_and_close(status, message)

    # --- the deadline -----------------------------------------------------------------------------

    def _follow(self, *, arm_for_head: bool) -> None:
        """Keep the deadline armed exactly while a request is being received."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY or (state is h11.IDLE and arm_for_head):
            # Bytes of a head (IDLE after data arrived) or of a body are on their way; a deadline
            # already running keeps running: it bounds the whole request, not the gap between bytes.
            if self._deadline is None:
                self._arm()
        else:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE and not self.conn.trailing_data[0]:
            # Nothing of a request has arrived: there is nothing to answer.
            self.transport.close()
            return
        if state is not h11.IDLE and state is not h11.SEND_BODY:
            return  # the request arrived in full after all
        cycle = self.cycle if state is h11.SEND_BODY else None
        if cycle is not None and cycle.response_started:
            # Answered early (e.g. 413 on its declared length) while the body kept coming: stop reading.
            self.transport.close()
            return
        if cycle is not None:
            # The handler waits for the rest of the body: wake it to a disconnect, and let whatever it
            # answers then go nowhere; the 408 below is the answer.
            cycle.disconnected = True
            cycle.message_event.set()
        self._answer_and_close(408, f"The request did not arrive within {self.read_timeout:g} seconds")

    def _answer_and_close(self, status: int, message: str) -> None:
        """Send an error answer, then close the connection without resetting it."""
        self._disarm()
        self._lingering = True
        self.transport.write(raw_error_response(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then the end of it
        self.flow.resume_reading()
        self.loop.call_later(min(LINGER_SECONDS, self.read_timeout), self.transport.close)


def read_deadline_protocol(read_timeout: float) -> type[ReadDeadlineProtocol]:
    """`ReadDeadlineProtocol` with this deadline, to hand to uvicorn as its `http` protocol class."""
    if not read_timeout > 0:
        raise ValueError("the read timeout must be a positive number of seconds")

    class ConfiguredReadDeadlineProtocol(ReadDeadlineProtocol):
        pass

    ConfiguredReadDeadlineProtocol.read_timeout = read_timeout
    return ConfiguredReadDeadlineProtocol
