"""The engine host: the process the fuzzing engines are forked from (`fuzz_engine.host`), one per run's
process. Its start-up (an interpreter, Schemathesis imported and warmed up) is the longest thing a run
waits for before it can fuzz: the command line starts it before it does anything else, so this module
imports nothing but the standard library, `errors` and `fuzz_protocol`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass

from retry_contract.errors import RetryContractError
from retry_contract.fuzz_protocol import receive_control, send_control

# The module an engine's process runs (`python -m`): named, not imported, here.
ENGINE_MODULE = "retry_contract.fuzz_engine"


class EngineHostUnavailable(RetryContractError):
    """The machine would not start another process (a process limit, no memory)."""


@dataclass
class MadeEngines:
    pids: list[int] | None = None


class EngineHost:
    """Started on first use and kept for the life of the process that started it, so that only its first
    run pays the engine's start-up (an interpreter, Schemathesis and Hypothesis imported), and later
    runs none.

    A fresh interpreter, not a `multiprocessing` child: those import the caller's main module again
    (which runs a script without a `__main__` guard a second time), and one forked from the run's
    process would inherit its threads mid-flight. It is killed at exit, and ends by itself when the
    run's process dies (the control socket closes); its output, and its engines', goes nowhere.
    """

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.lock = threading.Lock()
        self.pending: deque[MadeEngines] = deque()
        try:
            self.control, theirs = socket.socketpair()
        except OSError as error:
            raise _unavailable(error) from None
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
        except OSError as error:
            self.control.close()
            raise _unavailable(error) from None
        finally:
            theirs.close()

    def usable(self) -> bool:
        # A process forked from the one that started it would share its control socket.
        return self.owner == os.getpid() and self.process.poll() is None

    def make(self, descriptors: list[int]) -> MadeEngines:
        """One engine process per descriptor (its end of a connection). Not waited for: the host may
        still be importing, and the run goes on meanwhile; `pids` waits."""
        made = MadeEngines()
        with self.lock:
            send_control(self.control, {"make": len(descriptors)}, descriptors)
            self.pending.append(made)
        return made

    def pids(self, made: MadeEngines) -> list[int]:
        """The process ids of what `make` made: the host answers in order."""
        with self.lock:
            while made.pids is None:
                received = receive_control(self.control)
                if received is None:
                    raise OSError("the engine host ended")
                self.pending.popleft().pids = received[0]
        return made.pids

    def pid(self, made: MadeEngines, index: int) -> int:
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


def _unavailable(error: OSError) -> EngineHostUnavailable:
    return EngineHostUnavailable(
        f"cannot start the process of the fuzzing engines ({error.strerror or error}); "
        "--no-fuzz runs the scenarios without them"
    )


_host: EngineHost | None = None
_host_lock = threading.Lock()


def engine_host() -> EngineHost:
    """This process's engine host, started now if it has none (or the one it had ended): a run that
    fuzzes calls this as early as it can, so that the host's start-up overlaps the run's own."""
    global _host
    with _host_lock:
        if _host is None or not _host.usable():
            _host = EngineHost()
            atexit.register(_host.close)
        return _host
