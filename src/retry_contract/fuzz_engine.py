"""Schemathesis's engine, in the process of its own that the fuzzer starts (`serve`).

It generates and sends the cases (examples, coverage and fuzzing phases, positive and negative), with
a placeholder in place of the Authorization header: it asks the fuzzer how each case goes out
(`fuzz_protocol.CallAsked`), steers the cases it is granted an execution for, and hands over every
exchange with the verdicts of Schemathesis's built-in checks. Judging, the budget, the credentials,
the pool of retryable executions and their nonces all stay with the fuzzer (`fuzzing`).

The process prints nothing (the fuzzer starts it with its standard output and error going nowhere):
what it has to say (its errors, Hypothesis's warnings) goes to the fuzzer as text, which it redacts.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import hypothesis.strategies as st
import schemathesis
from requests import PreparedRequest
from requests.auth import AuthBase
from schemathesis.engine import events, from_schema

from retry_contract import contract
from retry_contract.bounded_read import MIB, ReadLimits
from retry_contract.engine_isolation import RawWarnings, isolated
from retry_contract.exchange import parse_json
from retry_contract.fuzz_protocol import (
    PLACEHOLDER_AUTHORIZATION,
    CallAnswered,
    CallAsked,
    CallGrant,
    CaseShape,
    EngineCase,
    EngineFailure,
    EngineFinished,
    EngineSettings,
    Harvest,
    StartEngine,
    receive_control,
    send_control,
)
from retry_contract.fuzz_transport import body_over_cap, bound_engine_sessions

# Stateful checks need API links, which this one-operation spec does not declare.
DISABLED_CHECKS = ("use_after_free", "ensure_resource_availability", "object_level_authorization")

# Generated cases that the steering hook marks: the fuzzer grants them a real execution and nonce.
STEERED_EXECUTION_ID = "00000000-0000-4000-8000-000000000000"
STEERED_NONCE = "retry-contract-steered-nonce"
STEER_PERCENT = 40

# Statuses the built-in acceptance checks treat as correct, from the requirement catalogue:
# a schema-valid request may still carry a nonce the server never issued (BODY-NONCE: 400/401/403)
# or target an execution that does not exist (STATE-404) or is not retryable (409).
POSITIVE_STATUSES = [200, 400, 401, 403, 404, 409, 429]
NEGATIVE_STATUSES = [400, 401, 403, 404, 405, 409, 415, 429]


@schemathesis.deserializer("application/json")
def _json_as_judged(context: Any, response: Any) -> Any:
    """Schemathesis reads JSON answers as the judges do (`parse_json`): its own reading recurses without
    bound, and a deeply nested answer would end its worker thread, and the fuzzing, unreported."""
    value, problem = parse_json(response.content)
    if problem is not None:
        raise json.JSONDecodeError(problem, "", 0)
    return value


class _AuthorizationAtSend(AuthBase):
    """Puts the run's `Authorization` in place of the placeholder on the prepared request: `requests`
    applies it (a transport argument of this one call) after the case is serialised, as it sends.
    A case whose header the engine removed or changed on purpose keeps what the engine made of it."""

    def __init__(self, authorization: str) -> None:
        self._authorization = authorization

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        if request.headers.get("Authorization") == PLACEHOLDER_AUTHORIZATION:
            request.headers["Authorization"] = self._authorization
        return request

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# The phases an engine may run; each engine of a run runs some of them (`EngineSettings.phases`).
PHASES = ("examples", "coverage", "fuzzing")


def load_schema(settings: EngineSettings, project_url: str) -> Any:
    """The spec, configured for a run: its seed and size, its phases, the placeholder credential, bounded
    reads."""
    config = schemathesis.Config.from_dict(
        {
            "seed": settings.seed,
            "headers": {"Authorization": PLACEHOLDER_AUTHORIZATION},
            "base-url": project_url,
            "request-timeout": settings.request_timeout,
            "continue-on-failure": True,
            "generation": {"max-examples": settings.max_examples, "mode": "all", "database": "none"},
            "phases": {
                **{phase: {"enabled": phase in settings.phases} for phase in PHASES},
                "stateful": {"enabled": False},
            },
            # Schemathesis's cache lives in `.schemathesis/` in the working directory, and is
            # replayed against the target: a run sends only what this run generated.
            "cache": {"enabled": False},
            "checks": {
                **{name: {"enabled": False} for name in DISABLED_CHECKS},
                "positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES},
                "negative_data_rejection": {"expected-statuses": NEGATIVE_STATUSES},
            },
        }
    )
    schema = schemathesis.openapi.from_path(str(settings.spec_path), config=config)
    bound_engine_sessions(schema, ReadLimits(settings.request_timeout, settings.max_response_bytes))
    schema.hooks.hook("flatmap_case")(_steering_hook())
    return schema


def _steering_hook() -> Callable[..., Any]:
    def flatmap_case(ctx: Any, case: Any) -> Any:
        if (
            case.meta is None
            or case.meta.generation.mode.value != "positive"
            or case.method.upper() != "POST"
        ):
            return st.just(case)

        def steer(roll: int) -> Any:
            if roll < STEER_PERCENT:
                case.path_parameters = {**case.path_parameters, "executionId": STEERED_EXECUTION_ID}
                # Only the documented field: a server may refuse unknown ones (the contract leaves
                # that open), and a steered case must be one that has to succeed.
                case.body = {"authentication": {"nonce": STEERED_NONCE}}
            return case

        # A Hypothesis draw, not `random`: runs stay reproducible from the seed.
        return st.integers(min_value=0, max_value=99).map(steer)

    return flatmap_case


class _Engine:
    """The one engine of this process: its stream of events and the cases it steered."""

    def __init__(self, connection: Connection, settings: EngineSettings, project_url: str) -> None:
        self.connection = connection
        self.schema = load_schema(settings, project_url)
        self.stream: Any = None
        self.steered: set[str] = set()
        # Every execution a case was steered to: a case sent again (Hypothesis may replay an example)
        # would still name it, and it belongs to the pool again, so that case is steered anew.
        self.leased: set[str] = set()
        self.errors: list[str] = []

    def before_call(self, case: Any, kwargs: dict[str, Any]) -> None:
        # A case the engine still sends once told to stop goes out as it was made: unsteered, and with
        # the placeholder, which the server refuses before the request can have any effect.
        if self.stream is None or self.stream.stop_event.is_set():
            return
        target = case.path_parameters.get("executionId") if case.path_parameters else None
        steer = target == STEERED_EXECUTION_ID or target in self.leased
        self._send(CallAsked(case.id, steer))
        grant: CallGrant = self._receive()
        if grant.authorization is not None:
            kwargs["auth"] = _AuthorizationAtSend(grant.authorization)
        if grant.execution_id is not None and grant.nonce is not None:
            self.steered.add(case.id)
            self.leased.add(grant.execution_id)
            case.path_parameters["executionId"] = grant.execution_id
            case.body["authentication"] = {"nonce": grant.nonce}
        if grant.stop:
            self.stream.stop()

    def after_call(self, case: Any, response: Any) -> None:
        if case.id in self.steered:
            status = response.status_code if response is not None else None
            self._send(CallAnswered(case.id, status))

    # The fuzzer gone (its connection closed: the run stopped or ended), nothing this engine would
    # still send is wanted: it ends at once, from inside Schemathesis's hooks too.
    def _send(self, message: object) -> None:
        try:
            self.connection.send(message)
        except OSError:
            os._exit(0)

    def _receive(self) -> Any:
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            os._exit(0)

    def run(self) -> None:
        stream = self.stream = from_schema(self.schema).execute()
        for event in stream:
            if isinstance(event, events.ScenarioFinished):
                self._send(Harvest(tuple(_harvest(event.recorder))))
            elif isinstance(event, events.NonFatalError):
                message = event.info.message if hasattr(event, "info") else event
                self.errors.append(f"{event.label}: {message}")
            elif isinstance(event, events.FatalError):
                self.errors.append(f"fatal: {event.exception}")


# The engine this process serves. Schemathesis accepts `before_call` and `after_call` only as global
# hooks; they do nothing in a process that serves no engine (one that imports this module to read it).
_ENGINE: _Engine | None = None


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if _ENGINE is not None:
        _ENGINE.before_call(case, kwargs)


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if _ENGINE is not None:
        _ENGINE.after_call(case, response)


def _harvest(recorder: Any) -> list[EngineCase]:
    harvested = []
    for case_id, interaction in recorder.interactions.items():
        node = recorder.cases.get(case_id)
        if node is None:
            continue
        case = node.value
        request, response = interaction.request, interaction.response
        harvested.append(
            EngineCase(
                case_id=case_id,
                shape=_shape(case),
                origin=_origin(case),
                method=request.method.upper(),
                url=request.uri,
                request_headers={
                    k.lower(): (v[0] if isinstance(v, list) else v) for k, v in request.headers.items()
                },
                request_body=request.body,
                execution_id=str(case.path_parameters.get("executionId")) if case.path_parameters else None,
                status=response.status_code if response is not None else None,
                response_headers={k: ", ".join(v) for k, v in response.headers.items()}
                if response is not None
                else {},
                response_body=response.content or b"" if response is not None else b"",
                elapsed_ms=response.elapsed * 1000 if response is not None else 0.0,
                body_over_cap=body_over_cap(response),
                failures=tuple(
                    _failure(check.name, check.failure_info.failure)
                    for check in recorder.checks.get(case_id, [])
                    if check.failure_info is not None
                ),
            )
        )
    return harvested


def _failure(check: str, failure: Any) -> EngineFailure:
    path = tuple(p if isinstance(p, int) else str(p) for p in getattr(failure, "instance_path", ()) or ())
    title, message = str(getattr(failure, "title", "")), str(getattr(failure, "message", failure))
    return EngineFailure(check, title, message, path)


def _shape(case: Any) -> CaseShape:
    meta = case.meta
    components = {
        str(getattr(k, "value", k)): v.mode.value for k, v in (meta.components.items() if meta else [])
    }
    content_type = next((v for k, v in (case.headers or {}).items() if k.lower() == "content-type"), None)
    media_type = getattr(case, "media_type", None) or content_type or "application/json"
    return CaseShape(
        method=case.method.upper(),
        generation_mode=meta.generation.mode.value if meta is not None else None,
        path_mode=components.get("path"),
        body_mode=components.get("body"),
        declares_json=str(media_type).split(";", 1)[0].strip().lower() == "application/json",
    )


def _origin(case: Any) -> str:
    meta = case.meta
    if meta is None:
        return "schemathesis"
    description = getattr(meta.phase.data, "description", "") or ""
    label = f"schemathesis {meta.phase.name.value} ({meta.generation.mode.value})"
    return f"{label}: {description}" if description else label


def serve(connection: Connection) -> None:
    """The engine process's body: its settings, then once told where to (`StartEngine`), its phases;
    at the end, how it went (`EngineFinished`). Told nothing, it ends without a request."""
    global _ENGINE
    # An interrupt reaches the whole process group: the fuzzer decides what happens to this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warned = RawWarnings()
    errors: list[str] = []
    try:
        settings: EngineSettings = connection.recv()
        start: StartEngine = connection.recv()
        with isolated(warned):
            _ENGINE = _Engine(connection, settings, start.project_url)
            _ENGINE.run()
            errors = _ENGINE.errors
    except (EOFError, BrokenPipeError):
        return  # the fuzzer is gone: nobody to tell
    except BaseException:  # whatever ends the engine is the fuzzer's to report
        errors = [*(_ENGINE.errors if _ENGINE else []), f"fatal: {traceback.format_exc(limit=8)}"]
    try:
        connection.send(EngineFinished(tuple(errors), warned.count, tuple(warned.texts)))
    except OSError:
        pass
    finally:
        connection.close()


def host(control: socket.socket) -> NoReturn:
    """The engine host: forks one engine process per connection it is passed (`fuzz_protocol`'s control
    messages). It has run the engine once (`_warm_up`), so an engine starts warm, and as it is a fresh
    interpreter on one thread, forking it is safe. It kills only engines it has not yet reaped (their
    ids cannot have been reused), and once the run's process is gone, it ends them all and itself."""
    _warm_up()
    # What the host made so far is never freed: the collector of an engine leaves it alone, and so
    # leaves its pages shared with the host, instead of copying them to look at them.
    gc.freeze()
    live: set[int] = set()
    while True:
        _reap(live)
        received = receive_control(control)
        if received is None:
            for pid in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os._exit(0)
        message, descriptors = received
        if "make" in message:
            made = [
                _fork_engine(served, descriptors[index + 1 :], control)
                for index, served in enumerate(descriptors)
            ]
            live.update(made)
            send_control(control, made)
        elif "kill" in message:
            for pid in message["kill"]:
                if pid in live:
                    os.kill(pid, signal.SIGKILL)


def _warm_up() -> None:
    """Runs every phase, one example each, against a port that refuses every connection: nothing leaves
    the host. Schemathesis imports most of itself only as a run needs it, and Hypothesis derives, in
    memory, what it draws from (above all the characters a codec encodes: a second of CPU, and its file
    cache is the run's temporary directory); done once here, an engine forked later finds it all in
    place, instead of each engine of each run doing it again."""
    settings = EngineSettings(
        spec_path=contract.spec_path(),
        seed=0,
        max_examples=1,
        request_timeout=1.0,
        max_response_bytes=MIB,
        phases=PHASES,
    )
    with socket.socket() as refusing, isolated(RawWarnings()):
        refusing.bind(("127.0.0.1", 0))
        port = refusing.getsockname()[1]
        schema = load_schema(settings, f"http://127.0.0.1:{port}/api/v1/projects/warm-up")
        # Every case fails (refused): nothing to learn from shrinking one.
        schema.config.generation.update(no_shrink=True)
        # Whatever goes wrong here goes wrong again, and is reported, in a run's engine.
        with contextlib.suppress(Exception):
            for _event in from_schema(schema).execute():
                pass


def _fork_engine(served: int, others: list[int], control: socket.socket) -> int:
    """An engine process serving `served`; `others`: the connections of engines still to be forked
    (those forked before were closed here already)."""
    pid = os.fork()
    if pid == 0:
        control.close()
        for descriptor in others:
            os.close(descriptor)
        serve(Connection(served))
        # Without Python's exit handlers: they are the host's.
        os._exit(0)
    os.close(served)
    return pid


def _reap(live: set[int]) -> None:
    for pid in list(live):
        with contextlib.suppress(ChildProcessError):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
        live.discard(pid)


if __name__ == "__main__":
    # Started by `engine_processes` with the descriptor of its end of the control socket.
    host(socket.socket(fileno=int(sys.argv[1])))
