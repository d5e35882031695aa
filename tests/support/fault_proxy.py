"""A fault-injecting HTTP/1.1 proxy on loopback, for tests of the suite's resilience.

Each request gets a number; `plan(number)` (or, when it says none, `by_request(head)`) says which fault, if
any, it meets: the connection dropped before forwarding, a 429/502/503/504 answered by the proxy (the
server never sees the request), a delay, the server's answer cut short, a request never answered or
an answer that drips for ever (both until the proxy stops). Everything is bounded by the plan.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from urllib.parse import urlsplit


class Fault(Enum):
    DROP = "drop"
    TOO_MANY_REQUESTS = 429
    BAD_GATEWAY = 502
    UNAVAILABLE = 503
    GATEWAY_TIMEOUT = 504
    DELAY = "delay"
    TRUNCATE = "truncate"
    # Forwarded at once, answered late: the server acts on it before the client gives up waiting.
    SLOW_ANSWER = "slow answer"
    # Never forwarded, never answered: the connection is held until the proxy stops.
    STALL = "stall"
    # Never forwarded; answered with a head at once and a body that never ends, a byte of whitespace
    # every delay, so a read timeout between bytes never fires.
    DRIP = "drip"

    # Forwarded, and the server's answer replaced by a 504: a gateway that gave up on it after the
    # server had acted.
    ANSWER_LOST_AT_GATEWAY = "answer lost at the gateway"


Plan = Callable[[int], Fault | None]
# Decides from the request's head (request line and headers), for faults aimed at one kind of request.
RequestPlan = Callable[[bytes], Fault | None]
# The suite sends a request line of 1 MB (an oversized executionId): the proxy must pass it on.
STREAM_LIMIT = 4 * 1024 * 1024
_REASONS = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


async def _read_message(
    reader: asyncio.StreamReader, *, bodiless: bool = False
) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message: its head and its body, framed by Content-Length or chunked; `bodiless`
    for the answer to a HEAD request, which has none whatever its Content-Length says."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    if bodiless:
        return head, b""
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                return head, body
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        return head, await reader.readexactly(length) if length else b""
    if head.startswith(b"HTTP/"):
        # A response framed by the end of the connection.
        return head, await reader.read()
    return head, b""


def _gateway_timeout() -> tuple[bytes, bytes]:
    body = json.dumps({"error": {"code": 504, "message": "injected by the fault proxy"}}).encode()
    head = (
        "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode(), body


def _close_connection(head: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines[:-2], b"Connection: close", b"", b""])


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        plan: Plan,
        delay_seconds: float = 0.3,
        by_request: RequestPlan | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._plan = plan
        self._by_request = by_request
        self._delay = delay_seconds
        self._numbers = itertools.count(1)
        self.injected: Counter[Fault] = Counter()
        self.requests = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (message := await _read_message(reader)) is not None:
                number = next(self._numbers)
                self.requests = number
                fault = self._plan(number)
                if fault is None and self._by_request is not None:
                    fault = self._by_request(message[0])
                if fault is not None:
                    self.injected[fault] += 1
                if fault is Fault.DROP:
                    return
                if fault is not None and isinstance(fault.value, int):
                    error = {"error": {"code": fault.value, "message": "injected by the fault proxy"}}
                    body = json.dumps(error).encode()
                    writer.write(
                        f"HTTP/1.1 {fault.value} {_REASONS[fault.value]}\r\n"
                        "Content-Type: application/json\r\nRetry-After: 0\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
                    continue
                if fault is Fault.STALL:
                    await asyncio.Event().wait()
                if fault is Fault.DRIP:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                    writer.write(b"Content-Length: 1000000\r\n\r\n")
                    while True:
                        writer.write(b" ")
                        await writer.drain()
                        await asyncio.sleep(self._delay)
                if fault is Fault.DELAY:
                    await asyncio.sleep(self._delay)
                head, body = await self._forward(*message)
                if fault is Fault.ANSWER_LOST_AT_GATEWAY:
                    head, body = _gateway_timeout()
                if fault is Fault.SLOW_ANSWER:
                    await asyncio.sleep(self._delay)
                if fault is Fault.TRUNCATE:
                    writer.write(head + body[: len(body) // 2])
                    await writer.drain()
                    return
                writer.write(head + body)
                await writer.drain()
                if b"content-length:" not in head.lower() and b"chunked" not in head.lower():
                    return  # the body ended with the connection, so must this one
        except asyncio.CancelledError:
            pass  # the proxy is stopping (a stalled or dripping connection ends here); nothing to report
        finally:
            writer.close()

    async def _forward(self, head: bytes, body: bytes) -> tuple[bytes, bytes]:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream, limit=STREAM_LIMIT)
        upstream_writer.write(_close_connection(head) + body)
        await upstream_writer.drain()
        answer = await _read_message(upstream_reader, bodiless=head.startswith(b"HEAD "))
        upstream_writer.close()
        if answer is None:
            return b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", b""
        return answer


def nth_request(request_line: re.Pattern[bytes], faults: Mapping[int, Fault]) -> RequestPlan:
    """Faults for the n-th request (from 1) whose request line matches, in the order they arrive."""
    seen = itertools.count(1)

    def plan(head: bytes) -> Fault | None:
        if not request_line.search(head.split(b"\r\n", 1)[0]):
            return None
        return faults.get(next(seen))

    return plan


@contextmanager
def fault_proxy(
    upstream: str, plan: Plan, *, by_request: RequestPlan | None = None, delay_seconds: float = 0.3
) -> Iterator[tuple[str, FaultProxy]]:
    proxy = FaultProxy(upstream, plan, delay_seconds, by_request)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(proxy._handle, "127.0.0.1", 0, limit=STREAM_LIMIT), loop
    ).result(timeout=10)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        asyncio.run_coroutine_threadsafe(_shutdown(server), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def _shutdown(server: asyncio.Server) -> None:
    server.close()
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
