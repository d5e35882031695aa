"""Hostile input over raw sockets: the served mock answers with a 4xx envelope or closes cleanly, in
bounded time, and answers normally afterwards.

Oversized and malformed bodies, slow and half-open connections (slowloris), pipelining, huge request
heads and hundreds of simultaneous connections. Two mocks: a *strict* one whose read deadline and
keep-alive are short, for what only the deadlines end, and a *patient* one with the defaults, for what
must succeed however slow the machine is. Every wait is on a socket with a deadline: no test sleeps
to synchronise, and none can hang.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cdf_workflows_mock import DEFAULT_PROJECT, DEFAULT_WRITE_TOKEN, EmbeddedMock, MockConfig
from cdf_workflows_mock.loopback import MAX_REQUEST_HEAD_BYTES
from support.mock_helpers import MockApi, function_task, latest

READ_TIMEOUT = 0.5  # the strict mock's read deadline, seconds
IDLE_TIMEOUT = 1  # the strict mock's keep-alive, whole seconds
# How late past its deadline the mock may close or answer, on a loaded 2-core machine.
SLACK = 5.0
# How long any single answer may take.
ANSWER_TIMEOUT = 15.0
API = f"/api/v1/projects/{DEFAULT_PROJECT}"
UNKNOWN_ID = "3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60"
SESSION_BODY = b'{"items":[{"tokenExchange":true}]}'
MB = 1024 * 1024


# --- a raw HTTP/1.1 client ----------------------------------------------------------------------


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, *, length: bool = True
) -> bytes:
    """One request as bytes, with the write token; `Content-Length` from the body unless given."""
    lines = [f"{method} {path} HTTP/1.1", "Host: mock", f"Authorization: Bearer {DEFAULT_WRITE_TOKEN}"]
    all_headers = dict(headers or {})
    if length and body and "Content-Length" not in all_headers:
        all_headers["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """A client socket with its own buffer; every read waits at most until a deadline."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read what arrives next; False at the end of the stream. Fails past the deadline."""
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the mock neither answered nor closed the connection in time"
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            pytest.fail("the mock neither answered nor closed the connection in time")
        except ConnectionResetError:
            pytest.fail("the mock reset the connection instead of closing it")
        self._buffer += chunk
        return bool(chunk)

    def response(self, timeout: float = ANSWER_TIMEOUT) -> RawResponse | None:
        """The next answer; None when the mock closed the connection before sending one."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill(deadline):
                assert not self._buffer, f"the connection closed in the middle of a head: {self._buffer!r}"
                return None
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers["content-length"])  # the mock always says how long its answers are
        while len(self._buffer) < size:
            assert self._fill(deadline), "the connection closed in the middle of a body"
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return RawResponse(int(status_line.split(" ")[1]), headers, body)

    def closed_by_peer(self, timeout: float) -> float:
        """Wait until the mock closes the connection (nothing more may arrive); the seconds waited."""
        start = time.monotonic()
        while self._fill(start + timeout):
            pass
        assert not self._buffer, f"unexpected bytes before the close: {self._buffer[:200]!r}"
        return time.monotonic() - start


def assert_envelope(response: RawResponse | None, status: int) -> dict[str, Any]:
    assert response is not None, f"the connection closed instead of answering {status}"
    assert response.status == status, (response.status, response.body[:500])
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == status, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def assert_closes_after_answer(connection: Connection) -> None:
    """After an error answer that says `Connection: close`, only the end of the stream follows."""
    connection.closed_by_peer(ANSWER_TIMEOUT)


def assert_answers_normally(mock: EmbeddedMock) -> None:
    """A plain request on a new connection still gets its ordinary answer."""
    with httpx.Client(base_url=mock.base_url + API, timeout=ANSWER_TIMEOUT) as client:
        headers = {"Authorization": f"Bearer {DEFAULT_WRITE_TOKEN}"}
        created = client.post("/sessions", json={"items": [{"tokenExchange": True}]}, headers=headers)
        assert created.status_code == 200 and created.json()["items"][0]["nonce"]
        missing = client.get(f"/workflows/executions/{UNKNOWN_ID}", headers=headers)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict() -> Iterator[EmbeddedMock]:
    config = MockConfig(read_timeout_seconds=READ_TIMEOUT, idle_timeout_seconds=IDLE_TIMEOUT)
    with EmbeddedMock(config) as server:
        yield server


@pytest.fixture(scope="module")
def patient() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig()) as server:
        yield server


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_server_errors() -> Iterator[None]:
    """Nothing the tests send may make the server log an error (a crash in the app or in uvicorn).

    uvicorn's loggers do not propagate to the root logger, so caplog would not see them.
    """
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "cdf_workflows_mock")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert not handler.records, [record.getMessage() for record in handler.records]


def connect(mock: EmbeddedMock) -> Connection:
    return Connection(mock.port)


# --- oversized and malformed bodies ---------------------------------------------------------------


def test_fifty_megabyte_body_is_413(patient: EmbeddedMock) -> None:
    connection = connect(patient)
    try:
        path = f"{API}/workflows/executions/{UNKNOWN_ID}/retry"
        connection.send(request("POST", path, headers={"Content-Length": str(50 * MB)}))
        chunk = b" " * MB
        for _ in range(50):  # the mock answers from the declared length and drops what follows
            connection.send(chunk)
        assert "larger than" in assert_envelope(connection.response(), 413)["message"]
    finally:
        connection.close()
    assert_answers_normally(patient)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100k-deep-arrays"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="100k-deep-objects"),
        pytest.param(b'{"authentication": {"nonce": "\xff\xfe\xfd"}}', id="invalid-utf8-in-a-string"),
        pytest.param(b"\xc3\x28\xa0\xa1", id="invalid-utf8"),
    ],
)
def test_deep_or_undecodable_bodies_are_400(patient: EmbeddedMock, body: bytes) -> None:
    connection = connect(patient)
    try:
        connection.send(request("POST", f"{API}/workflows/executions/{UNKNOWN_ID}/retry", body))
        assert_envelope(connection.response(), 400)
    finally:
        connection.close()
    assert_answers_normally(patient)


# Compresses and sends 200 MB (seconds): out of the fast tier.
@pytest.mark.slow
def test_gzip_bomb_of_200_megabytes_is_413(patient: EmbeddedMock) -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MB)
    bomb = b"".join(compressor.compress(zeros) for _ in range(200)) + compressor.flush()
    assert len(bomb) < MB  # small on the wire: only decompressing it would be large
    connection = connect(patient)
    try:
        path = f"{API}/workflows/executions/{UNKNOWN_ID}/retry"
        connection.send(request("POST", path, bomb, {"Content-Encoding": "gzip"}))
        assert "decompressed" in assert_envelope(connection.response(), 413)["message"]
    finally:
        connection.close()
    assert_answers_normally(patient)


# --- slow and half-open connections ---------------------------------------------------------------


def test_a_connection_that_says_nothing_is_closed_at_the_read_deadline(strict: EmbeddedMock) -> None:
    start = time.monotonic()
    connection = connect(strict)
    try:
        waited = connection.closed_by_peer(READ_TIMEOUT + SLACK)
    finally:
        connection.close()
    # Nothing arrived, so nothing is answered; and not before the deadline.
    assert time.monotonic() - start >= READ_TIMEOUT - 0.01, waited
    assert_answers_normally(strict)


def test_a_head_sent_a_byte_at_a_time_meets_408_at_the_deadline(strict: EmbeddedMock) -> None:
    head = request("POST", f"{API}/sessions", SESSION_BODY)
    start = time.monotonic()  # before the connection: its deadline starts when the mock accepts it
    connection = connect(strict)
    sent = 0
    try:
        # One byte every 50 ms would take several seconds; the mock must cut it off at its deadline,
        # however steadily the bytes come. Waiting for the socket to become readable paces the bytes
        # and notices the answer at once.
        while sent < len(head):
            connection.send(head[sent : sent + 1])
            sent += 1
            readable, _, _ = select.select([connection.sock], [], [], 0.05)
            if readable:
                break
            assert time.monotonic() - start < READ_TIMEOUT + SLACK, "no answer within the deadline"
        error = assert_envelope(connection.response(), 408)
        assert "did not arrive" in error["message"]
        assert sent < len(head), "the whole head went through before the mock answered"
        assert_closes_after_answer(connection)
    finally:
        connection.close()
    assert READ_TIMEOUT - 0.01 <= time.monotonic() - start < READ_TIMEOUT + SLACK
    assert_answers_normally(strict)


@pytest.mark.parametrize(
    ("headers", "partial_body"),
    [
        pytest.param({"Content-Length": "100"}, b"", id="head-and-no-body"),
        pytest.param({"Content-Length": "100"}, b'{"items": [', id="part-of-the-body"),
        pytest.param({"Transfer-Encoding": "chunked"}, b'10\r\n{"items"', id="unfinished-chunk"),
    ],
)
def test_a_body_that_never_comes_meets_408(
    strict: EmbeddedMock, headers: dict[str, str], partial_body: bytes
) -> None:
    start = time.monotonic()  # before the connection: its deadline starts when the mock accepts it
    connection = connect(strict)
    try:
        connection.send(request("POST", f"{API}/sessions", headers=headers, length=False) + partial_body)
        assert_envelope(connection.response(READ_TIMEOUT + SLACK), 408)
        assert_closes_after_answer(connection)
    finally:
        connection.close()
    assert time.monotonic() - start >= READ_TIMEOUT - 0.01
    assert_answers_normally(strict)


def test_a_body_still_trickling_after_an_early_413_is_cut_off(strict: EmbeddedMock) -> None:
    connection = connect(strict)
    try:
        declared = {"Content-Length": str(50 * MB)}
        connection.send(request("POST", f"{API}/sessions", headers=declared) + b" " * 1000)
        assert_envelope(connection.response(), 413)
        # The answer is out, but the body is still owed: the read deadline ends the connection.
        assert connection.closed_by_peer(READ_TIMEOUT + SLACK) < READ_TIMEOUT + SLACK
    finally:
        connection.close()
    assert_answers_normally(strict)


def test_a_quiet_kept_alive_connection_is_closed_after_the_idle_timeout(strict: EmbeddedMock) -> None:
    connection = connect(strict)
    try:
        start = time.monotonic()  # the idle time starts once the answer is out, after this
        connection.send(request("POST", f"{API}/sessions", SESSION_BODY))
        response = connection.response()
        assert response is not None and response.status == 200
        assert response.headers.get("connection") != "close"
        waited = connection.closed_by_peer(IDLE_TIMEOUT + SLACK)
        assert time.monotonic() - start >= IDLE_TIMEOUT - 0.01
        # uvicorn's own default is 5 s: closing well before that shows the configured value is used.
        assert waited < IDLE_TIMEOUT + 3
    finally:
        connection.close()
    assert_answers_normally(strict)


def test_a_half_closed_connection_still_gets_its_answer(patient: EmbeddedMock) -> None:
    """A client that shuts down its sending side after its request waits for the answer; the retry
    runs in a worker thread, so the answer comes well after the client's end of stream."""
    api = MockApi(patient.base_url)
    try:
        execution_id = api.start([function_task("a")])
        detail = api.finish(execution_id, "a", "FAILED_WITH_TERMINAL_ERROR")
        assert detail["status"] == "FAILED"
        body = json.dumps({"authentication": {"nonce": api.nonce()}}).encode()
        connection = connect(patient)
        try:
            connection.send(request("POST", f"{API}/workflows/executions/{execution_id}/retry", body))
            connection.sock.shutdown(socket.SHUT_WR)
            response = connection.response()
            assert response is not None and response.status == 200, response
            assert response.json()["status"] == "RUNNING"
            connection.closed_by_peer(ANSWER_TIMEOUT)
        finally:
            connection.close()
        assert latest(api.detail(execution_id), "a")["status"] == "IN_PROGRESS"
    finally:
        api.close()
    assert_answers_normally(patient)


# --- pipelining -----------------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(strict: EmbeddedMock) -> None:
    api = MockApi(strict.base_url)
    try:
        execution_id = api.start([function_task("a"), function_task("b")])
        api.finish(execution_id, "a", "FAILED_WITH_TERMINAL_ERROR")
        nonce = api.nonce()
    finally:
        api.close()
    retry_body = json.dumps({"authentication": {"nonce": nonce}}).encode()
    execution = f"{API}/workflows/executions/{execution_id}"
    pipeline = [
        request("POST", f"{API}/sessions", SESSION_BODY),
        request("GET", f"{API}/workflows/executions/{UNKNOWN_ID}"),
        request("GET", f"{API}/workflows/executions/not-a-uuid"),
        request("POST", f"{execution}/retry", retry_body),
        request("GET", execution),
        request("POST", f"{execution}/retry", retry_body),  # the same nonce again
        request("POST", f"{API}/sessions", SESSION_BODY),
    ]
    connection = connect(strict)
    try:
        connection.send(b"".join(pipeline))  # all at once, without waiting for any answer
        answers = [connection.response() for _ in pipeline]
        first, missing, malformed, retried, detail, again, second = answers
        assert first is not None and first.status == 200
        assert_envelope(missing, 404)
        assert_envelope(malformed, 400)
        assert retried is not None and retried.status == 200 and retried.json()["id"] == execution_id
        assert retried.json()["status"] == "RUNNING"
        # Each answer is its own request's: the detail already shows what the retry did.
        assert detail is not None and detail.status == 200
        tasks = [(task["externalId"], task["status"]) for task in detail.json()["executedTasks"]]
        assert tasks == [
            ("a", "FAILED_WITH_TERMINAL_ERROR"),
            ("b", "CANCELED"),
            ("a", "IN_PROGRESS"),
            ("b", "IN_PROGRESS"),
        ]
        assert "already been used" in assert_envelope(again, 400)["message"]
        assert second is not None and second.status == 200
        assert second.json()["items"][0]["nonce"] != first.json()["items"][0]["nonce"]
        # The connection is still good for more.
        connection.send(request("GET", f"{API}/workflows/executions/{UNKNOWN_ID}"))
        assert_envelope(connection.response(), 404)
    finally:
        connection.close()
    assert_answers_normally(strict)


def test_a_pipeline_ending_in_half_a_request_meets_408_after_its_answers(strict: EmbeddedMock) -> None:
    connection = connect(strict)
    try:
        complete = request("POST", f"{API}/sessions", SESSION_BODY)
        connection.send(complete + complete + complete[:40])
        for _ in range(2):
            answer = connection.response()
            assert answer is not None and answer.status == 200
        assert_envelope(connection.response(READ_TIMEOUT + SLACK), 408)
        assert_closes_after_answer(connection)
    finally:
        connection.close()
    assert_answers_normally(strict)


# --- huge request heads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Huge": "a" * (MAX_REQUEST_HEAD_BYTES + MB)}, id="one-huge-value"),
        pytest.param(
            {f"X-Many-{index}": "v" for index in range(MAX_REQUEST_HEAD_BYTES // 12)}, id="many-headers"
        ),
    ],
)
def test_a_head_over_the_limit_is_431(patient: EmbeddedMock, headers: dict[str, str]) -> None:
    connection = connect(patient)
    try:
        # The whole head goes out before the answer is read: the mock must not reset the connection
        # while the client is still sending, or the answer could be lost.
        connection.send(request("GET", f"{API}/workflows/executions/{UNKNOWN_ID}", headers=headers))
        error = assert_envelope(connection.response(), 431)
        assert str(MAX_REQUEST_HEAD_BYTES) in error["message"]
        assert_closes_after_answer(connection)
    finally:
        connection.close()
    assert_answers_normally(patient)


def test_a_large_head_under_the_limit_is_served(patient: EmbeddedMock) -> None:
    """Thousands of headers, a long value and a 1 MB path id: heavy, but within the limit, so each
    request gets its ordinary answer (the suite sends 1 MB ids on purpose)."""
    connection = connect(patient)
    try:
        many = {f"X-Header-{index}": "v" * 20 for index in range(5000)}
        connection.send(request("POST", f"{API}/sessions", SESSION_BODY, many))
        answer = connection.response()
        assert answer is not None and answer.status == 200
        connection.send(request("POST", f"{API}/sessions", SESSION_BODY, {"X-Long": "x" * MB}))
        answer = connection.response()
        assert answer is not None and answer.status == 200
        connection.send(request("GET", f"{API}/workflows/executions/{'1' * MB}"))
        assert_envelope(connection.response(), 400)
    finally:
        connection.close()
    assert_answers_normally(patient)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: mock\r\nX-Bad: \x00\r\n\r\n", id="nul-in-a-header"),
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="no-request-line"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", id="bad-content-length"),
    ],
)
def test_a_head_that_is_not_http_is_400_with_the_envelope(patient: EmbeddedMock, raw: bytes) -> None:
    connection = connect(patient)
    try:
        connection.send(raw)
        assert_envelope(connection.response(), 400)
        assert_closes_after_answer(connection)
    finally:
        connection.close()
    assert_answers_normally(patient)


# --- many connections at once ---------------------------------------------------------------------

CONNECTIONS = 300


def test_three_hundred_simultaneous_requests_are_all_answered(patient: EmbeddedMock) -> None:
    start = time.monotonic()
    connections = [connect(patient) for _ in range(CONNECTIONS)]
    try:
        # Every connection is open before any request goes out; then every request goes out before
        # any answer is read.
        for connection in connections:
            connection.send(request("POST", f"{API}/sessions", SESSION_BODY))
        nonces = set()
        for connection in connections:
            answer = connection.response(ANSWER_TIMEOUT - (time.monotonic() - start))
            assert answer is not None and answer.status == 200, answer
            nonces.add(answer.json()["items"][0]["nonce"])
        assert len(nonces) == CONNECTIONS
    finally:
        for connection in connections:
            connection.close()
    assert_answers_normally(patient)


def test_three_hundred_silent_connections_neither_starve_others_nor_stay_open(strict: EmbeddedMock) -> None:
    silent = [connect(strict) for _ in range(CONNECTIONS)]
    try:
        assert_answers_normally(strict)  # while all of them are open
        deadline = time.monotonic() + READ_TIMEOUT + SLACK
        for connection in silent:
            connection.closed_by_peer(max(deadline - time.monotonic(), 0.01))
    finally:
        for connection in silent:
            connection.close()
    assert_answers_normally(strict)
