"""The fuzzing engines' processes: made first thing in a run, so that their start-up (an interpreter
each, Schemathesis and Hypothesis imported) overlaps the run's own, and served by `fuzzing.Fuzzer`.

This module imports neither Schemathesis nor Hypothesis (nor anything that does): the command line
makes the engines before it imports the rest of the run.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection

from retry_contract import contract
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB, MIB
from retry_contract.fuzz_protocol import (
    EngineFinished,
    EngineMessage,
    EngineSettings,
    StartEngine,
    receive_control,
    send_control,
)
from retry_contract.provisioning import DEFAULT_POOL_SIZE
from retry_contract.results import RunOptions

# The module an engine's process runs (`python -m`): named, not imported, here.
ENGINE_MODULE = "retry_contract.fuzz_engine"

# Schemathesis runs its phases one after the other; the run's engines run them side by side, one group
# each, in processes of their own. The groups are fixed (not drawn from the concurrency), so every run
# of a seed sends the same cases; the longest phase, coverage, is its own.
ENGINE_PHASES: tuple[tuple[str, ...], ...] = (("examples", "coverage"), ("fuzzing",))


@dataclass(frozen=True, slots=True)
class FuzzSettings:
    seed: int
    max_examples: int
    request_timeout: float = 30.0
    pool_size: int = DEFAULT_POOL_SIZE
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_MIB * MIB

    def engine_settings(self, phases: tuple[str, ...]) -> EngineSettings:
        """What the engine that runs `phases` is made with."""
        return EngineSettings(
            spec_path=contract.spec_path(),
            seed=self.seed,
            max_examples=self.max_examples,
            request_timeout=self.request_timeout,
            max_response_bytes=self.max_response_bytes,
            phases=phases,
        )


class EngineProcess:
    """One engine, seen from the fuzzer: its connection. It sends nothing until `start`; `end` (closing
    the connection) ends it at its next exchange with the fuzzer."""

    def __init__(self, connection: Connection, settings: EngineSettings) -> None:
        self.connection = connection
        self.settings = settings
        self.started = False
        self.finished = False
        # Its process's id, from the engine host (set once the host was asked to make it).
        self.pid_of: Callable[[], int] | None = None

    def pid(self) -> int:
        """Its process's id (waits for the engine host to have made it)."""
        if self.pid_of is None:
            raise RuntimeError("the engine was never made")
        return self.pid_of()

    def start(self, project_url: str) -> bool:
        """Tell it where to send; False when its process is already gone."""
        try:
            self.connection.send(StartEngine(project_url))
        except OSError:
            return False
        self.started = True
        return True

    def receive(self) -> EngineMessage | None:
        """The engine's next message; None once its process has ended (its end of the connection
        closes with it) and nothing is left to read."""
        try:
            message: EngineMessage = self.connection.recv()
        except (EOFError, OSError):
            return None
        self.finished = isinstance(message, EngineFinished)
        return message

    def end(self) -> None:
        self.connection.close()


@dataclass
class _Made:
    pids: list[int] | None = None


class _EngineHost:
    """The process the engines are forked from (`fuzz_engine.host`): one per run's process, started on
    first use and kept for the life of that process, so that only its first run pays the engine's
    start-up (an interpreter, Schemathesis and Hypothesis imported), and later runs none.

    A fresh interpreter, not a `multiprocessing` child: those import the caller's main module again
    (which runs a script without a `__main__` guard a second time), and one forked from the run's
    process would inherit its threads mid-flight. It is killed at exit, and ends by itself when the
    run's process dies (the control socket closes); its output, and its engines', goes nowhere.
    """

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.pending: deque[_Made] = deque()
        self.control, theirs = socket.socketpair()
        environment = dict(os.environ)
        # The modules this process imports from, wherever they were found (an editable install, a
        # benchmark's checkout of another commit): the engines are the same code as the fuzzer.
        environment["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", ENGINE_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=environment,
                # Out of the terminal's process group: Ctrl-C is for the run to handle.
                start_new_session=True,
            )
        finally:
            theirs.close()

    def usable(self) -> bool:
        # A process forked from the one that started it would share its control socket.
        return self.owner == os.getpid() and self.process.poll() is None

    def make(self, descriptors: list[int]) -> _Made:
        """One engine process per descriptor (its end of a connection). Not waited for: the host may
        still be importing, and the run goes on meanwhile; `pids` waits."""
        made = _Made()
        with self.lock:
            send_control(self.control, {"make": len(descriptors)}, descriptors)
            self.pending.append(made)
        return made

    def pids(self, made: _Made) -> list[int]:
        """The process ids of what `make` made: the host answers in order."""
        with self.lock:
            while made.pids is None:
                received = receive_control(self.control)
                if received is None:
                    raise OSError("the engine host ended")
                self.pending.popleft().pids = received[0]
        return made.pids

    def pid(self, made: _Made, index: int) -> int:
        return self.pids(made)[index]

    def kill(self, pids: list[int]) -> None:
        with self.lock, contextlib.suppress(OSError):
            send_control(self.control, {"kill": pids})

    def close(self) -> None:
        """At exit: every run is over, so its engines have ended or are ending by themselves (their
        connections are closed); the host, maybe still warming up, has nothing left to do. A process
        forked from the run's (exit handlers and all) leaves the host to the run's."""
        if self.owner != os.getpid():
            return
        self.control.close()
        self.process.kill()
        self.process.wait()


_host: _EngineHost | None = None
_host_lock = threading.Lock()


def _engine_host() -> _EngineHost:
    global _host
    with _host_lock:
        if _host is None or not _host.usable():
            _host = _EngineHost()
            atexit.register(_host.close)
        return _host


@contextmanager
def engines_made(settings: FuzzSettings) -> Iterator[list[EngineProcess]]:
    """The run's engines, one per group of `ENGINE_PHASES`, each a process forked by the engine host;
    on the way out, those that did not finish are killed (one may be in the middle of a case, or still
    waiting to start: nothing it would do is wanted any more)."""
    pairs = [multiprocessing.Pipe() for _ in ENGINE_PHASES]
    engines = [
        EngineProcess(ours, settings.engine_settings(phases))
        for (ours, _), phases in zip(pairs, ENGINE_PHASES, strict=True)
    ]
    host = _engine_host()
    made: _Made | None = None
    try:
        made = host.make([theirs.fileno() for _, theirs in pairs])
        for index, engine in enumerate(engines):
            engine.pid_of = partial(host.pid, made, index)
        for _, theirs in pairs:
            theirs.close()
        for engine in engines:
            engine.connection.send(engine.settings)
        yield engines
    finally:
        for _, theirs in pairs:
            theirs.close()
        for engine in engines:
            engine.end()
        # An engine never started ends by itself, its connection closed; one that did may be waiting on
        # a server, in the middle of a case. Only then is the host waited for (it may be warming up).
        unfinished = [index for index, engine in enumerate(engines) if engine.started and not engine.finished]
        if made is not None and unfinished:
            with contextlib.suppress(OSError):
                pids = host.pids(made)
                host.kill([pids[index] for index in unfinished])


def fuzz_settings_of(options: RunOptions) -> FuzzSettings:
    return FuzzSettings(
        options.seed,
        options.max_examples,
        options.request_timeout,
        options.pool_size,
        options.max_response_mib * MIB,
    )


def engines_for(options: RunOptions) -> AbstractContextManager[list[EngineProcess] | None]:
    """The engines of a run with `options`, or None for a run that does not fuzz."""
    return engines_made(fuzz_settings_of(options)) if options.fuzz else nullcontext(None)
