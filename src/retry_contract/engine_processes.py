"""The fuzzing engines' processes: made first thing in a run, so that their start-up (an interpreter
each, Schemathesis and Hypothesis imported) overlaps the run's own, and served by `fuzzing.Fuzzer`.

This module imports neither Schemathesis nor Hypothesis (nor anything that does): the command line
makes the engines before it imports the rest of the run.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from retry_contract import contract
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB, MIB
from retry_contract.fuzz_protocol import EngineFinished, EngineMessage, EngineSettings, StartEngine
from retry_contract.provisioning import DEFAULT_POOL_SIZE
from retry_contract.results import RunOptions

# The module an engine's process runs (`python -m`): named, not imported, here.
ENGINE_MODULE = "retry_contract.fuzz_engine"
# How long an engine's process has to end once it said it finished.
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
    """One engine's process (`python -m retry_contract.fuzz_engine`), made ahead of the fuzzing so that
    its start-up (an interpreter, Schemathesis and Hypothesis imported) overlaps the run's; it sends
    nothing until `start`. `end` stops it whatever state it is in.

    A fresh interpreter, not a `multiprocessing` child: those import the caller's main module again,
    which runs a script without a `__main__` guard a second time, and forked ones would inherit the
    run's threads mid-flight. Its end of the connection is a socket it inherits; its output goes nowhere.
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.connection, theirs = multiprocessing.Pipe()
        environment = dict(os.environ)
        # The modules this process imports from, wherever they were found (an editable install, a
        # benchmark's checkout of another commit): the engine is the same code as the fuzzer.
        environment["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", ENGINE_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.connection.send(settings)
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
        """Its process ends: by itself once it finished, else it is stopped at once (it may be in the
        middle of a case, or still starting up: nothing it would do is wanted any more)."""
        self.connection.close()
        if not self.finished:
            self.process.kill()
        try:
            self.process.wait(_ENGINE_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def engines_made(settings: FuzzSettings) -> Iterator[list[EngineProcess]]:
    """The run's engine processes, one per group of `ENGINE_PHASES`, ended on the way out."""
    engines: list[EngineProcess] = []
    try:
        for phases in ENGINE_PHASES:
            engines.append(EngineProcess(settings.engine_settings(phases)))
        yield engines
    finally:
        for engine in engines:
            engine.end()


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
