"""Reading an answer within a total deadline and a size cap, whatever the server sends.

A socket timeout bounds only the wait for the next byte: an answer dripping one byte a second
never ends under it. Here every request gets a :class:`Deadline` (connect + send + headers + body)
that the socket operations of all three transports honour: httpx through
:class:`DeadlineNetworkBackend`, `http.client` and urllib3 (under `requests`) through
:class:`DeadlineHTTPResponse`. Bodies are read in chunks up to a cap, and gzip/deflate are inflated
incrementally with `zlib.decompressobj(...).decompress(data, max_length)`, so neither a long body
nor a compression bomb is ever held past the cap.
"""

from __future__ import annotations

import http.client
import io
import math
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore

from retry_contract.exchange import KEPT_BODY_BYTES

MIB = 1024 * 1024
# 4 MiB, not more: the judges, the reports and Schemathesis each hold a few copies of every answer
# across the run's threads, so answers just under the cap cost their size many times over (measured
# with benchmarks/bounded_reads.py --whole-run: 3.9 MiB answers peaked at 762 MiB, 15 MiB ones at
# 2 GiB). A retry answer is a few KiB; the largest a run reads, a page of executions, some hundreds.
DEFAULT_MAX_RESPONSE_MIB = 4
# The encodings the suite inflates itself; asking for others (br, zstd) would bring answers it can
# only keep raw.
DECODED_ENCODINGS = ("gzip", "deflate")
ACCEPT_ENCODING = ", ".join(DECODED_ENCODINGS)
READ_CHUNK_BYTES = 64 * 1024


class DeadlineExceeded(TimeoutError):
    """The request's total time ran out (between two reads, or before the next one could start)."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """The monotonic instant by which a whole request, its answer's body included, must be done."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def bound(self, timeout: float | None = None) -> float:
        """`timeout` shortened to what is left; DeadlineExceeded when nothing is."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded("the request's total time ran out")
        return left if timeout is None else min(timeout, left)


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What one request may take: `seconds` in all, `max_body_bytes` of body (raw and decoded)."""

    seconds: float
    max_body_bytes: int = DEFAULT_MAX_RESPONSE_MIB * MIB


# The deadline of the request the current thread is sending: every transport here sends and reads
# on the caller's thread, so the socket operations below find it without being handed it.
_current = threading.local()


@contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    previous = getattr(_current, "deadline", None)
    _current.deadline = deadline
    try:
        yield deadline
    finally:
        _current.deadline = previous


def current_deadline() -> Deadline | None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    return deadline


# -- bodies -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoundedBody:
    # Decoded when the answer's encoding was one asked for and decoded here, raw otherwise.
    content: bytes
    # The cap in bytes when the answer was larger: content then holds only the beginning of what was
    # read, KEPT_BODY_BYTES of it (no judge reads a body cut short; reports show its start).
    over_cap: int | None = None
    # Why the body could not be inflated (content then holds what was inflated before).
    undecodable: str | None = None


class _Inflater:
    """gzip (every member of it) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding == "gzip"
        self._raw_deflate = False
        self._started = False
        self._inflater = self._new()

    def _new(self) -> Any:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def inflate(self, data: bytes, max_length: int) -> bytes:
        """What `data` inflates to, cut at `max_length` bytes (the rest of `data` is then dropped)."""
        out = bytearray()
        while data and len(out) < max_length:
            try:
                piece = self._inflater.decompress(data, max_length - len(out))
            except zlib.error:
                if self._gzip or self._started or self._raw_deflate:
                    raise
                # Not zlib-wrapped: the raw deflate stream some servers send as "deflate".
                self._raw_deflate = True
                self._inflater = self._new()
                continue
            self._started = True
            out += piece
            if self._inflater.eof:
                data = self._inflater.unused_data
                if not (self._gzip and data):
                    break
                # The next member of a multi-member gzip stream.
                self._inflater = self._new()
            else:
                data = self._inflater.unconsumed_tail
        return bytes(out)


def encodings_to_decode(content_encoding: str | None, accept_encoding: str | None) -> list[str] | None:
    """The codings to undo, last applied first; None when the body is to be kept raw: an encoding
    not decoded here, or not asked for (`accept_encoding` None: the client asked for ours)."""
    applied = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    applied = [c for c in applied if c != "identity"]
    asked = {c.split(";", 1)[0].strip().lower() for c in (accept_encoding or ACCEPT_ENCODING).split(",")}
    if any(c not in DECODED_ENCODINGS or (c not in asked and "*" not in asked) for c in applied):
        return None
    return list(reversed(applied))


def read_body(
    chunks: Iterable[bytes],
    *,
    max_bytes: int,
    deadline: Deadline,
    content_encoding: str | None = None,
    accept_encoding: str | None = None,
) -> BoundedBody:
    """Read `chunks` (the raw body, as it came off the wire) until they end, the raw or the decoded
    size passes `max_bytes` (the rest is never read), or `deadline` passes (DeadlineExceeded)."""
    codings = encodings_to_decode(content_encoding, accept_encoding)
    inflaters = [_Inflater(c) for c in codings or ()]
    parts: list[bytes] = []
    raw_size = decoded_size = 0
    for chunk in chunks:
        deadline.bound()
        raw_size += len(chunk)
        room = max_bytes - decoded_size
        larger = raw_size > max_bytes
        try:
            # One byte beyond the room tells that the body is larger than the cap.
            for inflater in inflaters:
                chunk = inflater.inflate(chunk, room + 1)
                larger = larger or len(chunk) > room
        except zlib.error as error:
            return BoundedBody(b"".join(parts), undecodable=f"{', '.join(codings or ())}: {error}")
        if larger:
            parts.append(chunk[:room])
            return BoundedBody(_prefix(parts, KEPT_BODY_BYTES), over_cap=max_bytes)
        parts.append(chunk)
        decoded_size += len(chunk)
    return BoundedBody(b"".join(parts))


def _prefix(parts: list[bytes], size: int) -> bytes:
    kept = bytearray()
    for part in parts:
        kept += part[: size - len(kept)]
        if len(kept) >= size:
            break
    return bytes(kept)


# -- httpx (httpcore) ---------------------------------------------------------------------------


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = current_deadline()
    if deadline is None:
        return timeout
    try:
        return deadline.bound(timeout)
    except DeadlineExceeded as exceeded:
        raise error(str(exceeded)) from None


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineNetworkBackend(httpcore.NetworkBackend):
    """httpcore's sockets, each operation cut short at the current thread's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend | None = None) -> None:
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# -- http.client (and urllib3, which reads through it) ---------------------------------------------


class _DeadlineSocketReader(io.RawIOBase):
    """A socket's input, each receive waiting at most until the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._input = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.bound())
        read: int | None = self._input.readinto(buffer)
        return read

    def close(self) -> None:
        self._input.close()
        super().close()


class DeadlineHTTPResponse(http.client.HTTPResponse):
    """`http.client`'s response, its status line, headers and body read by the current deadline."""

    def __init__(
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        deadline = current_deadline()
        if deadline is not None:
            self.fp.close()
            self.fp = io.BufferedReader(_DeadlineSocketReader(sock, deadline))


def total_seconds(timeout: Any, default: float) -> float:
    """One total from what `requests` takes as a timeout: seconds, (connect, read), or None."""
    if isinstance(timeout, tuple):
        parts = [float(p) for p in timeout if p is not None]
        return max(parts) if parts else default
    if isinstance(timeout, int | float) and math.isfinite(timeout):
        return float(timeout)
    return default
