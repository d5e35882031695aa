"""The fuzzing engines' processes: made first thing in a run, so that their start-up (an interpreter
each, Schemathesis and Hypothesis imported) overlaps the run's own, and served by `fuzzing.Fuzzer`.

This module imports neither Schemathesis nor Hypothesis (nor anything that does): the command line
makes the engines before it imports the rest of the run. The engines are forked by the engine host
(`engine_host`), which the command line starts earlier still.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection

from retry_contract import contract
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB, MIB
from retry_contract.engine_host import MadeEngines, engine_host
from retry_contract.fuzz_protocol import (
    EngineFinished,
    EngineMessage,
    EngineSettings,
    StartEngine,
)
from retry_contract.provisioning import DEFAULT_POOL_SIZE
from retry_contract.results import RunOptions

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
    host = engine_host()
    made: MadeEngines | None = None
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
