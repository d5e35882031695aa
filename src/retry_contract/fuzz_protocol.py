"""What the fuzzer and its engine processes say to each other: plain, picklable data only.

The engines (Schemathesis on Hypothesis, `fuzz_engine`) run in processes of their own, so their
generation never waits on the interpreter lock the scenarios and the judges hold. An engine holds no
credential of its own: before each case goes out it asks the fuzzer (`CallAsked`), which spends the
budget, reads the current token and, for a steered case, leases a retryable execution and a fresh nonce
(`CallGrant`). An engine is made before the run reaches its target, so that its start-up overlaps the
run's, and sends nothing before it is told where (`StartEngine`). After a steered call it says what
came back (`CallAnswered`), so the execution is read and made retryable again at once; after each of
Schemathesis's scenarios it hands over what was sent and answered (`Harvest`), and at the end what it
has to say about itself (`EngineFinished`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What the engine is configured with in place of the run's `Bearer <token>`: its configuration, its
# strategies and its cases (and every warning, error or report that prints them) hold no secret.
# The real header replaces it on the prepared request only, as it goes out (`_AuthorizationAtSend`);
# a request that goes out with it anyway carries a token no server accepts.
PLACEHOLDER_AUTHORIZATION = "Bearer retry-contract-placeholder-not-a-token"


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """All an engine process is given when it is made: nothing in it is a secret."""

    spec_path: Path
    seed: int
    max_examples: int
    request_timeout: float
    max_response_bytes: int
    # Schemathesis's phases this engine runs (of "examples", "coverage", "fuzzing").
    phases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StartEngine:
    """The run reached its target: the engine starts sending, to the project's URL."""

    project_url: str


@dataclass(frozen=True, slots=True)
class CallAsked:
    """A case is about to go out; `steer`: it is to be sent to a leased execution with a fresh nonce."""

    case_id: str
    steer: bool


@dataclass(frozen=True, slots=True)
class CallGrant:
    """How the case goes out. `authorization` None: as the engine made it (with the placeholder, which
    every server refuses), and the engine stops after it (`stop`)."""

    authorization: str | None
    execution_id: str | None = None
    nonce: str | None = None
    stop: bool = False


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """A steered case's call returned: its status, None when no answer came."""

    case_id: str
    status: int | None


@dataclass(frozen=True, slots=True)
class CaseShape:
    """How the engine generated a case: what decides which requirement governs its status."""

    method: str
    generation_mode: str | None  # "positive", "negative", None without generation metadata
    path_mode: str | None
    body_mode: str | None
    declares_json: bool


@dataclass(frozen=True, slots=True)
class EngineFailure:
    """One of Schemathesis's built-in checks that failed on a case: what the judges read of it."""

    check: str
    title: str
    message: str
    instance_path: tuple[str | int, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineCase:
    """One case as it was sent and answered."""

    case_id: str
    shape: CaseShape
    origin: str
    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes | None
    execution_id: str | None
    # None: no answer (the connection dropped or the read timed out).
    status: int | None
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    elapsed_ms: float = 0.0
    body_over_cap: int | None = None
    failures: tuple[EngineFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class Harvest:
    """The cases of one of Schemathesis's scenarios, in the order it recorded them."""

    cases: tuple[EngineCase, ...]


@dataclass(frozen=True, slots=True)
class EngineFinished:
    """The engine ran to its end. Errors and warnings are raw text: the fuzzer redacts them."""

    errors: tuple[str, ...] = ()
    warning_count: int = 0
    warnings: tuple[str, ...] = ()


EngineMessage = CallAsked | CallAnswered | Harvest | EngineFinished


# -- the engine host's control socket -----------------------------------------------------------------
# The run's process asks the engine host (`fuzz_engine.host`) for engines ({"make": n}, with the n
# sockets of their connections passed alongside) and answers with their process ids; it asks it to
# kill those that must not finish ({"kill": [pid, ...]}), with no answer. Each message is one JSON
# object padded to CONTROL_MESSAGE_BYTES, so a stream socket carries them without other framing.
CONTROL_MESSAGE_BYTES = 512
MAX_PASSED_DESCRIPTORS = 16


def send_control(control: socket.socket, message: object, descriptors: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    if len(data) > CONTROL_MESSAGE_BYTES:
        raise ValueError(f"control message over {CONTROL_MESSAGE_BYTES} bytes")
    socket.send_fds(control, [data.ljust(CONTROL_MESSAGE_BYTES)], list(descriptors))


def receive_control(control: socket.socket) -> tuple[Any, list[int]] | None:
    """The next message and the descriptors passed with it; None once the other end has closed."""
    data, descriptors = b"", []
    while len(data) < CONTROL_MESSAGE_BYTES:
        chunk, passed, _flags, _address = socket.recv_fds(
            control, CONTROL_MESSAGE_BYTES - len(data), MAX_PASSED_DESCRIPTORS
        )
        descriptors += passed
        if not chunk:
            for descriptor in descriptors:
                os.close(descriptor)
            return None
        data += chunk
    return json.loads(data), descriptors
