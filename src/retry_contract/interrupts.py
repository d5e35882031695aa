"""Ctrl-C (SIGINT) and CI cancellation (SIGTERM): critical sections they must not cut in half, and
the counting handlers and waits that let a run stop sending, clean up and report whatever its threads do."""

from __future__ import annotations

import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from enum import Enum
from typing import Any, Generic, TypeVar

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise KeyboardInterrupt if one came.

    Used where the server may change state before the client learns of it (creating an
    execution) and for cleanup, which must finish even if the user presses Ctrl-C again.
    Signals can only be handled in the main thread; elsewhere the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _: received.append(number)) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt


class Wake(Enum):
    """Why `StopSignals.wait_until` returned."""

    DONE = "done"
    SIGNAL = "signal"
    DEADLINE = "deadline"


class StopSignals:
    """Counts SIGINT/SIGTERM while a run goes, and lets the main thread wait for work on other threads
    until it is done, a deadline passes or one more stop signal comes, whichever is first.

    The handlers only count and wake the waiter: they raise nothing, so no signal can cut the run's
    own bookkeeping in half, and the main thread decides what a signal means where it waits. The
    waiter sleeps in `select` on a socket pair that the handlers and the finishing work write a byte
    to (`wake`), so it wakes at once for either and never polls. Outside the main thread no handler
    can be installed: then only the work and the deadlines end a wait.
    """

    def __init__(self) -> None:
        self.received = 0
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in _STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        self._reader.close()
        self._writer.close()

    def _handle(self, signum: int, frame: object) -> None:
        self.received += 1
        self.wake()

    def wake(self) -> None:
        """Wake the waiter; safe from any thread and from a signal handler."""
        # A full buffer (or a closed pair, once the run is over) already says what a byte would.
        with suppress(OSError):
            self._writer.send(b"\0")

    def wait_until(self, done: Callable[[], bool], *, deadline: float | None, signals_seen: int) -> Wake:
        """Wait until `done()` holds, `time.monotonic()` reaches `deadline`, or more than `signals_seen`
        stop signals have come. Whoever makes `done()` hold must call `wake()` after."""
        while True:
            if self.received > signals_seen:
                return Wake.SIGNAL
            if done():
                return Wake.DONE
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return Wake.DEADLINE
            select.select([self._reader], [], [], remaining)
            with suppress(BlockingIOError):
                while self._reader.recv(4096):
                    pass


class Background(Generic[T]):
    """`work` on a daemon thread of its own, which the main thread may stop waiting for.

    Daemon, so that work stuck in a request the main thread has abandoned does not hold the process
    up when it ends. When it ends (its answer or its error kept), `wake` is called.
    """

    def __init__(self, name: str, work: Callable[[], T], wake: Callable[[], None]) -> None:
        self.finished = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self._work = work
        self._wake = wake
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.value = self._work()
        except BaseException as error:  # kept for the main thread, which decides what it means
            self.error = error
        finally:
            self.finished.set()
            self._wake()
