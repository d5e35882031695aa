#!/usr/bin/env python3
"""An HTTP/1.1 reverse proxy on loopback that makes a local server look remote: every response waits.

Every response is held back for a fixed time (e.g. 25 ms), or for a time with jitter (25 ms ± 15 ms,
drawn from a seeded `random.Random`, so a rerun draws the same sequence), after the upstream answered:
what a client sees is the server's own time plus a network round trip. Connections are kept alive on
both sides (one upstream connection per client connection, opened on its first request), messages are
framed by Content-Length and chunked transfer encoding and relayed byte for byte (only the Host header
is rewritten to the upstream's), request heads may be up to 4 MB and bodies any size. The proxy counts
the requests and connections it sees, and can record each request (method, target, times). It serves
from an asyncio loop in a daemon thread:

    >>> with LatencyProxy("http://127.0.0.1:8000", delay_ms=25, jitter_ms=15, seed=1) as proxy:
    ...     ...  # point the client at proxy.base_url; afterwards proxy.requests, proxy.connections

Standalone, in front of a server already running, until Ctrl-C:

    .venv/bin/python benchmarks/latency_proxy.py http://127.0.0.1:8000 --delay-ms 25 --jitter-ms 15

Plain http upstreams only. What it does not model: connection set-up (a new connection costs no
extra round trip here, unlike TCP + TLS to a remote host) and bandwidth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

# A request head (request line and headers) may be this long: the suite sends a 1 MB execution id.
HEAD_LIMIT_BYTES = 4 * 1024 * 1024
COPY_CHUNK_BYTES = 64 * 1024
TARGET_RECORD_CHARS = 300
STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
UPSTREAM_CONNECT_TIMEOUT_SECONDS = 10.0

CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"


class ProxyError(Exception):
    """A message the proxy cannot frame; the connection is dropped."""


@dataclass(frozen=True)
class Head:
    """A request or status line and its header lines, as received (bytes, without CRLFs)."""

    start: bytes
    fields: list[tuple[bytes, bytes]]

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.fields if key.lower() == name]

    def tokens(self, name: bytes) -> list[bytes]:
        """Comma-separated tokens of every `name` field, lower-cased (Connection, Transfer-Encoding)."""
        return [t.strip().lower() for v in self.values(name) for t in v.split(b",") if t.strip()]

    def encode(self) -> bytes:
        return CRLF.join([self.start, *(key + b": " + value for key, value in self.fields)]) + HEAD_END


def parse_head(raw: bytes) -> Head:
    lines = raw[: -len(HEAD_END)].split(CRLF)
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ProxyError(f"malformed header line {line[:80]!r}")
        fields.append((name, value.strip(b" \t")))
    return Head(lines[0], fields)


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head, or None when the peer closed cleanly before sending one."""
    while True:
        try:
            raw = await reader.readuntil(HEAD_END)
        except asyncio.IncompleteReadError as error:
            if error.partial.strip(CRLF):
                raise
            return None
        except asyncio.LimitOverrunError as error:
            raise ProxyError(f"message head longer than {HEAD_LIMIT_BYTES} bytes") from error
        # Empty lines before a request line are to be ignored (RFC 9112, 2.2).
        raw = raw.lstrip(CRLF)
        if raw:
            return parse_head(raw)


def body_framing(head: Head) -> tuple[str, int]:
    """("chunked", 0), ("length", n) or ("none", 0) from the head's framing fields."""
    codings = head.tokens(b"transfer-encoding")
    if codings:
        if codings[-1] != b"chunked":
            raise ProxyError("transfer coding without chunked last: cannot frame the body")
        return "chunked", 0
    lengths = {v.strip() for v in head.values(b"content-length")}
    if len(lengths) > 1:
        raise ProxyError("conflicting Content-Length fields")
    if lengths:
        text = lengths.pop()
        if not text.isdigit():
            raise ProxyError(f"invalid Content-Length {text[:40]!r}")
        return "length", int(text)
    return "none", 0


async def copy_exactly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int) -> None:
    while size > 0:
        data = await reader.read(min(size, COPY_CHUNK_BYTES))
        if not data:
            raise asyncio.IncompleteReadError(b"", size)
        writer.write(data)
        size -= len(data)
        await writer.drain()


async def copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Relay a chunked body as it is (sizes, extensions, trailers), up to its last chunk."""
    while True:
        size_line = await reader.readuntil(CRLF)
        writer.write(size_line)
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProxyError(f"invalid chunk size {size_text[:40]!r}") from None
        if size == 0:
            while True:  # trailer fields, then the empty line
                line = await reader.readuntil(CRLF)
                writer.write(line)
                if line == CRLF:
                    await writer.drain()
                    return
        await copy_exactly(reader, writer, size)
        terminator = await reader.readexactly(2)
        if terminator != CRLF:
            raise ProxyError("chunk data not followed by CRLF")
        writer.write(terminator)


async def copy_to_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(COPY_CHUNK_BYTES):
        writer.write(data)
        await writer.drain()


async def copy_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, framing: str, size: int
) -> None:
    if framing == "chunked":
        await copy_chunked(reader, writer)
    elif framing == "length":
        await copy_exactly(reader, writer, size)
    elif framing == "eof":
        await copy_to_eof(reader, writer)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


@dataclass(frozen=True)
class Exchange:
    """One relayed request, when the proxy records them: times from `time.perf_counter()`."""

    started: float  # its head has arrived
    finished: float  # its response has been written to the client
    method: str
    target: str  # at most TARGET_RECORD_CHARS characters
    status: int


class LatencyProxy:
    """A reverse proxy on `host`:`port` (0: a free port) in front of `upstream`; a context manager.

    With `record=True` it also keeps an `Exchange` per relayed request (`exchanges`).
    """

    def __init__(
        self,
        upstream: str,
        delay_ms: float = 25.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        if delay_ms < 0 or jitter_ms < 0:
            raise ValueError("delay and jitter must not be negative")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self._upstream_netloc = parts.netloc.encode("ascii")
        self._prefix = parts.path.rstrip("/").encode("ascii")
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self._random = random.Random(seed)
        self._host = host
        self._port = port
        self._bound_port: int | None = None
        self._requests = 0
        self._connections = 0
        self._delayed_seconds = 0.0
        self._record = record
        self._exchanges: list[Exchange] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    # What the caller reads (from its own thread; plain ints and floats, written by the loop thread).

    @property
    def base_url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("the proxy is not running; use it as a context manager or call start()")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._bound_port}"

    @property
    def requests(self) -> int:
        """Requests received from clients so far (each counted when its head has arrived)."""
        return self._requests

    @property
    def connections(self) -> int:
        """Client connections accepted so far."""
        return self._connections

    @property
    def delayed_seconds(self) -> float:
        """The sum of the delays applied so far."""
        return self._delayed_seconds

    @property
    def exchanges(self) -> list[Exchange]:
        """The requests relayed so far, in the order their responses finished (with `record=True`)."""
        return list(self._exchanges)

    def next_delay(self) -> float:
        """Seconds to hold back the next response: delay ± jitter, uniform, never negative."""
        jitter = self._random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.delay_ms + jitter) / 1000.0

    # Lifecycle.

    def start(self) -> LatencyProxy:
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        self._thread = threading.Thread(target=self._run, name="latency proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_SECONDS) or self._bound_port is None:
            self.stop()
            raise RuntimeError(f"the latency proxy did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        self._thread = None
        self._bound_port = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start(); a daemon thread must not raise
            self._error = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, self._host, self._port, limit=HEAD_LIMIT_BYTES)
        self._bound_port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

    # One client connection: requests in order, each relayed to the upstream and its response back.

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._connections += 1
        _nodelay(client_writer)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await read_head(client_reader)
                if request is None:
                    return
                self._requests += 1
                # The upstream may have closed an idle connection (uvicorn does after 5 s): open another.
                if upstream is None or upstream[0].at_eof():
                    if upstream is not None:
                        await _close(upstream[1])
                    upstream = None
                    upstream = await asyncio.wait_for(
                        asyncio.open_connection(
                            self.upstream_host, self.upstream_port, limit=HEAD_LIMIT_BYTES
                        ),
                        UPSTREAM_CONNECT_TIMEOUT_SECONDS,
                    )
                    _nodelay(upstream[1])
                keep_alive = await self._exchange(request, client_reader, client_writer, *upstream)
                if not keep_alive:
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ProxyError, TimeoutError):
            return  # the client meets a dropped connection, as it would from the upstream
        except asyncio.CancelledError:
            # stop(): end quietly (asyncio 3.11 logs a traceback for a handler task that ends cancelled).
            return
        finally:
            await _close(upstream[1] if upstream is not None else None)
            await _close(client_writer)
            if task is not None:
                self._handlers.discard(task)

    async def _exchange(
        self,
        request: Head,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> bool:
        """Relay one request and its response; whether both connections stay open."""
        started = time.perf_counter()
        method, _, rest = request.start.partition(b" ")
        target, _, version = rest.rpartition(b" ")
        if self._prefix and target.startswith(b"/"):
            target = self._prefix + target
        fields = [
            (key, self._upstream_netloc if key.lower() == b"host" else value) for key, value in request.fields
        ]
        upstream_writer.write(Head(b" ".join([method, target, version]), fields).encode())
        framing, size = body_framing(request)
        await copy_body(client_reader, upstream_writer, framing, size)
        await upstream_writer.drain()

        while True:
            response = await read_head(upstream_reader)
            if response is None:
                raise ProxyError("the upstream closed the connection without answering")
            status = response.start.split(b" ", 2)[1] if response.start.count(b" ") else b""
            if status.startswith(b"1") and status != b"101":
                client_writer.write(response.encode())  # interim (100 Continue): no body, not delayed
                continue
            break

        delay = self.next_delay()
        self._delayed_seconds += delay
        await asyncio.sleep(delay)

        client_writer.write(response.encode())
        if method == b"HEAD" or status in (b"204", b"304"):
            framing, size = "none", 0
        else:
            framing, size = body_framing(response)
            if framing == "none":
                framing = "eof"  # neither length nor chunked: the body ends with the connection
        await copy_body(upstream_reader, client_writer, framing, size)
        await client_writer.drain()
        if self._record:
            self._exchanges.append(
                Exchange(
                    started,
                    time.perf_counter(),
                    method.decode("latin-1"),
                    target[:TARGET_RECORD_CHARS].decode("latin-1"),
                    int(status) if status.isdigit() else 0,
                )
            )

        closes = b"close" in request.tokens(b"connection") or b"close" in response.tokens(b"connection")
        http10 = version == b"HTTP/1.0" and b"keep-alive" not in request.tokens(b"connection")
        return not (closes or http10 or framing == "eof" or status == b"101")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "upstream", help="base URL of the server behind the proxy, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--delay-ms", type=float, default=25.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    proxy = LatencyProxy(args.upstream, args.delay_ms, args.jitter_ms, args.seed, port=args.port)
    with proxy:
        print(f"{proxy.base_url} -> {args.upstream}, {args.delay_ms} ± {args.jitter_ms} ms", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    print(f"{proxy.requests} requests on {proxy.connections} connections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
