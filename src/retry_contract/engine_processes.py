"""The fuzzing engines' processes: made first thing in a run, so that their start-up (an interpreter
each, Schemathesis and Hypothesis imported) overlaps the run's own, and served by `fuzzing.Fuzzer`.

This module imports neither Schemathesis nor Hypothesis (nor anything that does): the command line
makes the engines before it imports the rest of the run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from multiprocessing.connection import Connection

from retry_contract import contract
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB, MIB
from retry_contract.fuzz_protocol import EngineFinished, EngineMessage, EngineSettings, StartEngine
from retry_contract.provisioning import DEFAULT_POOL_SIZE
from retry_contract.results import RunOptions

# The module an engine's process runs (`python -m`): named, not imported, here.
ENGINE_MODULE = "retry_contract.fuzz_engine"
# How long the engines' process has to end once every engine said it finished.
_ENGINE_EXIT_SECONDS = 10.0

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
        self.finished = False

    def start(self, project_url: str) -> bool:
        """Tell it where to send; False when its process is already gone."""
        try:
            self.connection.send(StartEngine(project_url))
        except OSError:
            return False
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


@contextmanager
def engines_made(settings: FuzzSettings) -> Iterator[list[EngineProcess]]:
    """The run's engines, one per group of `ENGINE_PHASES`, in one process group that is ended on the
    way out (at once, unless every engine finished).

    One interpreter (`python -m retry_contract.fuzz_engine`) imports the engine once and forks one
    process per further engine: a run pays one start-up, not one per engine. A fresh interpreter, not
    a `multiprocessing` child: those import the caller's main module again (which runs a script
    without a `__main__` guard a second time), and one forked from the run would inherit its threads
    mid-flight. Each engine's end of its connection is a socket it inherits; their output goes nowhere.
    """
    pairs = [multiprocessing.Pipe() for _ in ENGINE_PHASES]
    theirs = [pair[1] for pair in pairs]
    engines = [
        EngineProcess(ours, settings.engine_settings(phases))
        for (ours, _), phases in zip(pairs, ENGINE_PHASES, strict=True)
    ]
    environment = dict(os.environ)
    # The modules this process imports from, wherever they were found (an editable install, a
    # benchmark's checkout of another commit): the engines are the same code as the fuzzer.
    environment["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    descriptors = [connection.fileno() for connection in theirs]
    process: subprocess.Popen[bytes] | None = None
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", ENGINE_MODULE, *map(str, descriptors)],
            pass_fds=descriptors,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
            # Its own process group: the engines it forks are ended with it.
            start_new_session=True,
        )
        for connection in theirs:
            connection.close()
        for engine in engines:
            engine.connection.send(engine.settings)
        yield engines
    finally:
        for connection in theirs:
            connection.close()
        for engine in engines:
            engine.end()
        if process is not None:
            _end_group(process, finished=all(engine.finished for engine in engines))


def _end_group(process: subprocess.Popen[bytes], *, finished: bool) -> None:
    """The engines' processes end: by themselves once every engine finished, else they are stopped at
    once (one may be in the middle of a case, or still starting up: nothing it would do is wanted)."""
    if finished:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_ENGINE_EXIT_SECONDS)
            return
    # Not reaped yet, so its id, the group's, cannot have been reused: the signal reaches only engines.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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
