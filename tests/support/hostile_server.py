"""A hostile HTTP/1.1 server on loopback (port 0), for tests of how the suite reads answers.

Each path is one behaviour: an answer dripped a byte at a time (its head or its body), a stall after
the head, a gzip or deflate bomb (a precompressed block of zeros repeated: gigabytes once inflated,
a few kilobytes a second on the wire), a plain body of gigabytes (streamed, never built), and bodies
of an exact size. Every answer ends when the client goes away or after `MAX_SECONDS`, whichever
comes first, and the server itself stops with its context manager.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

MAX_SECONDS = 60.0
# One block inflates to this many zero bytes.
BLOCK_BYTES = 1024 * 1024
GIB = 1024 * 1024 * 1024
DRIP_INTERVAL_SECONDS = 0.1
# The request line may be over 64 KiB: the http.client fallback's oversized paths.
_STREAM_LIMIT = 4 * 1024 * 1024
BEHAVIOURS = frozenset(
    {
        "drip-head",
        "drip-body",
        "stall",
        "gzip-bomb",
        "deflate-bomb",
        "raw-deflate-bomb",
        "plain-2gib",
        "brotli",
    }
)


def compressed_zeros(encoding: str) -> tuple[bytes, bytes]:
    """(the stream's first bytes, a block to repeat after them): each block inflates to BLOCK_BYTES
    zeros, and a full flush makes every block the same bytes."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[encoding]
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(BLOCK_BYTES)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "a full flush must make the blocks identical"
    return first, block


def _head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class HostileServer:
    def __init__(self) -> None:
        self.url = ""
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._answering: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the hostile server did not start")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=_STREAM_LIMIT)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._started.set()
        async with server:
            await self._stop.wait()
            for answering in self._answering:
                answering.cancel()
            await asyncio.gather(*self._answering, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        answering = asyncio.current_task()
        if answering is not None:
            self._answering.add(answering)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            # Read the request's body: closing on unread input would reset the connection, and the
            # client could lose the answer's end.
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            path = head.split(b" ", 2)[1].decode("latin-1")
            # The behaviour is a segment of the path anywhere (an execution id, for Schemathesis).
            segments = path.split("?", 1)[0].split("/")
            behaviour = next((s for s in segments if s in BEHAVIOURS or s.startswith("bytes-")), "")
            await asyncio.wait_for(self._answer(behaviour, path, writer), MAX_SECONDS)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # The server is stopping: the answer ends here, quietly (asyncio would log a cancelled
            # handler as an error).
            pass
        finally:
            writer.close()
            if answering is not None:
                self._answering.discard(answering)

    async def _answer(self, behaviour: str, path: str, writer: asyncio.StreamWriter) -> None:
        send = writer.write
        if behaviour == "drip-head":
            for byte in _head(Content_Length="2") + b"{}":
                send(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(DRIP_INTERVAL_SECONDS)
        elif behaviour == "drip-body":
            send(_head(Content_Length="1000"))
            for _ in range(1000):
                send(b" ")
                await writer.drain()
                await asyncio.sleep(DRIP_INTERVAL_SECONDS)
        elif behaviour == "stall":
            send(_head(Content_Length="2"))
            await writer.drain()
            await asyncio.sleep(MAX_SECONDS)
        elif behaviour in ("gzip-bomb", "deflate-bomb", "raw-deflate-bomb"):
            encoding = behaviour.removesuffix("-bomb")
            first, block = compressed_zeros(encoding)
            send(_head(Content_Encoding="deflate" if encoding == "raw-deflate" else encoding))
            send(first)
            # 2 GiB once inflated, unless the client stops reading first.
            for _ in range(2 * GIB // BLOCK_BYTES):
                send(block)
                await writer.drain()
        elif behaviour == "plain-2gib":
            send(_head(Content_Length=str(2 * GIB)))
            chunk = bytes(64 * 1024)
            for _ in range(2 * GIB // len(chunk)):
                send(chunk)
                await writer.drain()
        elif behaviour.startswith("bytes-"):
            # bytes-N: a JSON string of exactly N bytes, plain, or gzipped with ?gzip.
            size = int(behaviour.removeprefix("bytes-"))
            body = b'"' + b"x" * (size - 2) + b'"'
            if path.endswith("?gzip"):
                send(_head(Content_Encoding="gzip", Content_Length=str(len(gzipped := _gzip(body)))))
                send(gzipped)
            else:
                send(_head(Content_Length=str(size)))
                send(body)
            await writer.drain()
        elif behaviour == "brotli":
            send(_head(Content_Encoding="br", Content_Length="4"))
            send(b"\x0b\x01\x80{")
            await writer.drain()
        else:
            send(_head(Content_Length="2") + b"{}")
            await writer.drain()


def _gzip(body: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
