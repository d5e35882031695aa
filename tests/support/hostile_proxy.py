"""A hostile HTTP/1.1 server on loopback, in front of the embedded mock, for the self-test of how the
suite behaves against servers that leak its secrets back, stall, drip, bomb it or lie about framing.

One `Hostility` per proxy: a `Mode` and a `Selector` saying which requests meet it (the retries, the
first few of them, everything after the preflight, or one endpoint); every other request is forwarded
to the upstream unchanged. The proxy also serves an OAuth token endpoint at `TOKEN_PATH` (for the
client-credentials path) and the target of its own redirects at `REDIRECT_PATH`.

Every hostile answer is bounded: in time (`HOSTILE_ANSWER_SECONDS`), in bytes (the size it declares),
and it stops as soon as the client goes away. Big bodies are streamed from one preallocated chunk.

    >>> with hostile_proxy(mock.base_url, Hostility(Mode.DRIP, Retries(limit=1))) as (url, proxy):
    ...     ...  # point the suite at url; afterwards proxy.applied says how often the mode struck
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import itertools
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol
from urllib.parse import parse_qs, quote, urlsplit

from support.fault_proxy import STREAM_LIMIT, _close_connection, _read_message, _shutdown

TOKEN_PATH = "/oauth2/token"
REDIRECT_PATH = "/redirected"
# The longest any hostile answer lasts when the client stays: a bound, not a synchronisation.
HOSTILE_ANSWER_SECONDS = 300.0
DRIP_INTERVAL_SECONDS = 1.0
STREAM_CHUNK_BYTES = 1024 * 1024
HUGE_BODY_BYTES = 2 * 1024**3
GZIP_DECODED_MIB = 1536
DEEP_NESTING = 5000
# Where a report cuts a body: the repr of the first 80 bytes of a non-JSON error body, of the first 120
# of a JSON error body that is not an envelope, the first 300 bytes as a preview, and a larger cut.
ECHO_CUTS = (80, 120, 300, 2048)
_REASONS = {200: "OK", 307: "Temporary Redirect", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


class Mode(Enum):
    ECHO_FORMS = "echo-forms"  # 400 envelope whose message holds the token in every encoded form
    ECHO_CUT = "echo-cut"  # the raw token straddling byte `cut_at` of the body
    HEADER_ECHO = "header-echo"  # 400 envelope, the token in response headers
    HEADER_MALFORMED = "header-malformed"  # a header line without a colon, holding the token
    DRIP = "drip"  # the upstream's answer, one byte a second
    STALL_HEAD = "stall-head"  # the request is read, no answer ever comes
    STALL_BODY = "stall-body"  # a head announcing a body that never comes
    DEEP_JSON = "deep-json"  # the upstream acts; its answer's body nested DEEP_NESTING deep
    INVALID_UTF8 = "invalid-utf8"  # the upstream acts; its answer's body is not UTF-8
    GZIP_BOMB = "gzip-bomb"  # 200, Content-Encoding gzip, GZIP_DECODED_MIB of zeros once decoded
    HUGE_BODY = "huge-body"  # 200, a plain body of `body_bytes`
    LOST_ANSWER = "lost-answer"  # the upstream acts; its answer is dropped with the connection
    REDIRECT_CREDENTIALS = "redirect-credentials"  # 307 to a URL with the token as its password
    TOKEN_NOT_JSON = "token-not-json"  # the token endpoint answers text
    TOKEN_HTML = "token-html"  # the token endpoint answers an HTML login page
    TOKEN_ERROR_ECHO = "token-error-echo"  # the token endpoint refuses, echoing the client secret


OAUTH_MODES = frozenset({Mode.TOKEN_NOT_JSON, Mode.TOKEN_HTML, Mode.TOKEN_ERROR_ECHO})


@dataclass(frozen=True)
class Request:
    number: int
    method: str
    path: str


class Selector(Protocol):
    def __call__(self, request: Request) -> bool:
        """Whether the mode applies to this request (called once per request, in order)."""
        ...


@dataclass
class Retries:
    """`POST .../retry` requests: every `every`-th one, at most `limit` of them."""

    limit: int | None = None
    every: int = 1
    _seen: int = field(default=0, init=False)
    _chosen: int = field(default=0, init=False)

    def __call__(self, request: Request) -> bool:
        if request.method != "POST" or not request.path.endswith("/retry"):
            return False
        self._seen += 1
        if (self._seen - 1) % self.every or (self.limit is not None and self._chosen >= self.limit):
            return False
        self._chosen += 1
        return True


@dataclass
class AfterPreflight:
    """Every request after the preflight, which ends with its second `GET /api/v1/token/inspect`
    (the main token's, then the read-only token's)."""

    _inspections: int = field(default=0, init=False)

    def __call__(self, request: Request) -> bool:
        if request.path.endswith("/token/inspect"):
            self._inspections += 1
            return False
        return self._inspections >= 2


@dataclass(frozen=True)
class Endpoint:
    """Requests whose path ends with `suffix` (and has `method`, when given)."""

    suffix: str
    method: str | None = None

    def __call__(self, request: Request) -> bool:
        return request.path.endswith(self.suffix) and self.method in (None, request.method)


@dataclass(frozen=True)
class Hostility:
    mode: Mode
    select: Selector = field(default_factory=Retries)
    cut_at: int = 300
    body_bytes: int = HUGE_BODY_BYTES


# --- what the hostile answers hold ---------------------------------------------------------------


def echo_forms(secret: str) -> dict[str, str]:
    """The secret as a hostile server may send it back: raw, base64 (standard and URL-safe) at each
    of the three alignments inside a longer base64 string, percent-encoded, as JSON \\u escapes (so
    the parsed body holds it raw while its bytes do not), and hex in both cases."""
    raw = secret.encode()
    forms = {"raw": secret}
    for offset in range(3):
        wrapped = b"lead" + bytes(range(1, 1 + 3 + offset)) + raw + b"\x00trail"
        forms[f"base64@{offset}"] = base64.b64encode(wrapped).decode()
        forms[f"base64url@{offset}"] = base64.urlsafe_b64encode(wrapped).decode()
    forms["percent"] = quote(secret, safe="")
    forms["json-u"] = "".join(f"\\u{ord(char):04x}" for char in secret)
    forms["hex-lower"] = raw.hex()
    forms["hex-upper"] = raw.hex().upper()
    return forms


def echo_forms_body(secret: str) -> bytes:
    """A 400 error envelope whose message lists every form (the \\u form as JSON escapes, unescaped)."""
    forms = echo_forms(secret)
    escaped = forms.pop("json-u")
    listed = " ".join(f"{name}={form}" for name, form in forms.items())
    text = json.dumps({"error": {"code": 400, "message": f"your token: {listed} json-u=@ESCAPED@"}})
    return text.replace("@ESCAPED@", escaped).encode()


def echo_cut_body(secret: str, cut_at: int) -> tuple[bytes, str]:
    """A 400 body, and its Content-Type, shaped so the report's cut at `cut_at` lands inside the raw
    secret: plain text at 80 (not JSON), JSON without an envelope at 120, an envelope beyond."""
    if cut_at <= 80:
        lead, tail, content_type = "denied: ", " (rejected)", "text/plain"
    elif cut_at <= 120:
        lead, tail, content_type = '{"message": "', '"}', "application/json"
    else:
        lead, tail, content_type = '{"error": {"code": 400, "message": "', '"}}', "application/json"
    padding = "x" * max(0, cut_at - len(secret) // 2 - len(lead))
    return f"{lead}{padding}{secret}{tail}".encode(), content_type


def deep_json_body(status: int) -> bytes:
    nested = "[" * DEEP_NESTING + "]" * DEEP_NESTING
    if status >= 400:
        return f'{{"error": {{"code": {status}, "message": "deep", "details": {nested}}}}}'.encode()
    return f'{{"id": "x", "status": "running", "deep": {nested}}}'.encode()


def invalid_utf8_body(status: int, secret: str) -> bytes:
    """JSON-looking bytes that are not UTF-8, with the secret right after a broken sequence."""
    return (
        b'{"error": {"code": '
        + str(status).encode()
        + b', "message": "\xff\xfe\xc3'
        + secret.encode()
        + b' \xed\xa0\x80 lone surrogate \xf4\x90\x80\x80 beyond U+10FFFF \xc0\xaf overlong"}}'
    )


@dataclass(frozen=True)
class GzipBomb:
    """A gzip member of `decoded_mib` MiB of zeros, as a head, one compressed block of 1 MiB of zeros
    repeated, and a tail: the block is made byte-aligned and self-contained by a full flush, so the
    stream is never built in memory."""

    head: bytes
    block: bytes
    repeats: int
    tail: bytes

    @property
    def length(self) -> int:
        return len(self.head) + self.repeats * len(self.block) + len(self.tail)

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        batch = max(1, STREAM_CHUNK_BYTES // len(self.block))
        for start in range(0, self.repeats, batch):
            yield self.block * min(batch, self.repeats - start)
        yield self.tail


@functools.cache
def gzip_bomb(decoded_mib: int = GZIP_DECODED_MIB) -> GzipBomb:
    zeros = bytes(1024 * 1024)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(decoded_mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", crc, (decoded_mib * len(zeros)) & 0xFFFFFFFF)
    return GzipBomb(header + first, block, decoded_mib - 1, end + trailer)


def _response(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    *,
    length: int | None = None,
    raw_lines: tuple[str, ...] = (),
) -> bytes:
    """A response head (and body); `length` declares a body sent separately, `raw_lines` are header
    lines sent as they are, however malformed."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}", *(f"{n}: {v}" for n, v in headers)]
    lines += [*raw_lines, f"Content-Length: {len(body) if length is None else length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _json_response(status: int, body: bytes, extra: list[tuple[str, str]] | None = None) -> bytes:
    return _response(status, [("Content-Type", "application/json"), *(extra or [])], body)


def _envelope(status: int, message: str) -> bytes:
    return json.dumps({"error": {"code": status, "message": message}}).encode()


def _headers(head: bytes) -> dict[str, str]:
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


def _bearer(head: bytes) -> str:
    authorization = _headers(head).get("authorization", "")
    return authorization.removeprefix("Bearer ").strip() or "no-token-sent"


def _status(head: bytes) -> int:
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 502


# --- the proxy -----------------------------------------------------------------------------------


class HostileProxy:
    def __init__(self, upstream: str, hostility: Hostility) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hostility = hostility
        self.base_url = ""
        self._numbers = itertools.count(1)
        self.requests = 0
        self.applied = 0
        self.hostile_bytes_sent = 0
        self.redirects_followed = 0
        self.token_requests = 0
        if hostility.mode is Mode.GZIP_BOMB:
            gzip_bomb()  # made before serving, off the clock of any request

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (message := await _read_message(reader)) is not None:
                head, body = message
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                method, target = [*request_line, "", ""][:2]
                request = Request(next(self._numbers), method, urlsplit(target).path)
                self.requests = request.number
                if request.path == TOKEN_PATH:
                    await self._send(writer, self._token_answer(head, body))
                elif request.path.startswith(REDIRECT_PATH):
                    self.redirects_followed += 1
                    await self._send(writer, _json_response(404, _envelope(404, "nothing here")))
                elif self.hostility.mode not in OAUTH_MODES and self.hostility.select(request):
                    self.applied += 1
                    if not await self._hostile(reader, writer, head, body):
                        return
                else:
                    upstream_head, upstream_body = await self._forward(head, body)
                    writer.write(upstream_head + upstream_body)
                    await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Only the proxy's shutdown cancels a handler: ending quietly spares asyncio's complaint
            # about a cancelled connection callback.
            pass
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        # A client that neither reads nor leaves must not hold the proxy longer than any hostile answer.
        await asyncio.wait_for(writer.drain(), HOSTILE_ANSWER_SECONDS)

    async def _hostile(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
    ) -> bool:
        """Answer one selected request; whether the connection may serve another."""
        mode, token = self.hostility.mode, _bearer(head)
        if mode is Mode.ECHO_FORMS:
            await self._send_hostile(writer, _json_response(400, echo_forms_body(token)))
        elif mode is Mode.ECHO_CUT:
            cut_body, content_type = echo_cut_body(token, self.hostility.cut_at)
            await self._send_hostile(writer, _response(400, [("Content-Type", content_type)], cut_body))
        elif mode is Mode.HEADER_ECHO:
            echoed = [
                ("X-Echo-Authorization", f"Bearer {token}"),
                ("WWW-Authenticate", f'Bearer t="{token}"'),
            ]
            await self._send_hostile(writer, _json_response(400, _envelope(400, "see headers"), echoed))
        elif mode is Mode.HEADER_MALFORMED:
            headers = [("Content-Type", "application/json")]
            malformed = (f"X-Echo-Authorization Bearer {token}",)
            answer = _response(400, headers, _envelope(400, "see headers"), raw_lines=malformed)
            await self._send_hostile(writer, answer)
        elif mode is Mode.DRIP:
            upstream_head, upstream_body = await self._forward(head, body)
            await self._drip(reader, writer, upstream_head + upstream_body)
            return False
        elif mode is Mode.STALL_HEAD:
            await _client_gone(reader, HOSTILE_ANSWER_SECONDS)
            return False
        elif mode is Mode.STALL_BODY:
            await self._send_hostile(
                writer, _response(200, [("Content-Type", "application/json")], length=4096)
            )
            await _client_gone(reader, HOSTILE_ANSWER_SECONDS)
            return False
        elif mode is Mode.DEEP_JSON:
            upstream_head, _ = await self._forward(head, body)
            status = _status(upstream_head)
            await self._send_hostile(writer, _json_response(status, deep_json_body(status)))
        elif mode is Mode.INVALID_UTF8:
            upstream_head, _ = await self._forward(head, body)
            status = _status(upstream_head)
            await self._send_hostile(writer, _json_response(status, invalid_utf8_body(status, token)))
        elif mode is Mode.GZIP_BOMB:
            bomb = gzip_bomb()
            headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
            await self._stream(reader, writer, _response(200, headers, length=bomb.length), bomb.chunks())
            return False
        elif mode is Mode.HUGE_BODY:
            size = self.hostility.body_bytes
            head_bytes = _response(200, [("Content-Type", "application/json")], length=size)
            await self._stream(reader, writer, head_bytes, _spaces(size))
            return False
        elif mode is Mode.LOST_ANSWER:
            await self._forward(head, body)
            return False
        elif mode is Mode.REDIRECT_CREDENTIALS:
            host, port = writer.get_extra_info("sockname")[:2]
            location = f"http://retry-contract:{quote(token, safe='')}@{host}:{port}{REDIRECT_PATH}/retry"
            answer = _json_response(307, _envelope(307, f"moved to {location}"), [("Location", location)])
            await self._send_hostile(writer, answer)
        return True

    async def _send_hostile(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.hostile_bytes_sent += len(data)
        await self._send(writer, data)

    async def _drip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes) -> None:
        deadline = time.monotonic() + HOSTILE_ANSWER_SECONDS
        for index in range(len(answer)):
            await self._send_hostile(writer, answer[index : index + 1])
            if time.monotonic() > deadline or await _client_gone(reader, DRIP_INTERVAL_SECONDS):
                return

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, chunks: Iterator[bytes]
    ) -> None:
        deadline = time.monotonic() + HOSTILE_ANSWER_SECONDS
        await self._send_hostile(writer, head)
        for chunk in chunks:
            if time.monotonic() > deadline or reader.at_eof() or writer.is_closing():
                return
            await self._send_hostile(writer, chunk)

    def _token_answer(self, head: bytes, body: bytes) -> bytes:
        self.token_requests += 1
        secret = parse_qs(body.decode("latin-1")).get("client_secret", [""])[0]
        basic = _headers(head).get("authorization", "")
        if not secret and basic.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                secret = base64.b64decode(basic[6:]).decode("latin-1").partition(":")[2]
        mode = self.hostility.mode
        if mode is Mode.TOKEN_NOT_JSON:
            text = f"upstream identity provider failed for client_secret={secret} ({basic})"
            return _response(200, [("Content-Type", "text/plain")], text.encode())
        if mode is Mode.TOKEN_HTML:
            page = (
                "<!doctype html><html><head><title>Sign in</title></head><body><form method=post>"
                f'<input type=hidden name=client_secret value="{secret}"><p>{basic}</p></form></body></html>'
            )
            return _response(200, [("Content-Type", "text/html; charset=utf-8")], page.encode())
        if mode is Mode.TOKEN_ERROR_ECHO:
            refusal = {
                "error": "invalid_client",
                "error_description": f"client secret {secret} is not valid for this client ({basic})",
            }
            return _json_response(401, json.dumps(refusal).encode())
        return _json_response(404, _envelope(404, "no token endpoint here"))

    async def _forward(self, head: bytes, body: bytes) -> tuple[bytes, bytes]:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream, limit=STREAM_LIMIT)
        try:
            upstream_writer.write(_close_connection(head) + body)
            await upstream_writer.drain()
            answer = await _read_message(upstream_reader, bodiless=head.startswith(b"HEAD "))
        finally:
            upstream_writer.close()
        if answer is None:
            return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", b""
        return answer


def _spaces(size: int) -> Iterator[bytes]:
    """`size` bytes of JSON whitespace, in chunks of one preallocated buffer."""
    chunk = b" " * STREAM_CHUNK_BYTES
    for start in range(0, size, len(chunk)):
        yield chunk[: min(len(chunk), size - start)]


async def _client_gone(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait up to `seconds` for the client to close its side; whether it did."""
    try:
        data = await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return not data


@contextlib.contextmanager
def hostile_proxy(upstream: str, hostility: Hostility) -> Iterator[tuple[str, HostileProxy]]:
    """The proxy on 127.0.0.1:0, served from an event loop in a daemon thread."""
    proxy = HostileProxy(upstream, hostility)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="hostile proxy", daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(proxy.handle, "127.0.0.1", 0, limit=STREAM_LIMIT), loop
    ).result(timeout=10)
    proxy.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy.base_url, proxy
    finally:
        asyncio.run_coroutine_threadsafe(_shutdown(server), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
