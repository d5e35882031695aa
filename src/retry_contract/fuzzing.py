"""Fuzzing with Schemathesis: its engine generates and sends cases (examples, coverage, fuzzing
phases, positive and negative), this module steers a share of positive cases to provisioned
retryable executions with fresh nonces, and hands every exchange to the judges.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import schemathesis
from requests import PreparedRequest
from requests.auth import AuthBase
from schemathesis.engine import events, from_schema

from retry_contract import contract
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB, MIB, ReadLimits
from retry_contract.budget import BudgetExhausted
from retry_contract.cdf_client import CdfClient, ClientError
from retry_contract.checks import Judge
from retry_contract.checks.schemathesis_results import DISABLED_CHECKS
from retry_contract.engine_isolation import EngineWarnings, isolated
from retry_contract.exchange import Exchange, Expectation, credential_of, parse_json
from retry_contract.fuzz_transport import body_over_cap, bound_engine_sessions
from retry_contract.provisioning import RetryablePool
from retry_contract.requirements import OPEN_METHODS
from retry_contract.resilience import FAULT_STATUSES
from retry_contract.retry_readings import read_after
from retry_contract.scenarios.context import resent_note, weigh_resent

# Recomputed by the client when a request is re-sent.
_HOP_HEADERS = frozenset({"content-length", "host", "connection", "transfer-encoding"})
# Generated cases that the steering hook marks: before_call swaps in a real execution and nonce.
STEERED_EXECUTION_ID = "00000000-0000-4000-8000-000000000000"
STEERED_NONCE = "retry-contract-steered-nonce"
STEER_PERCENT = 40
# Retryable executions that steered cases take turns on while used ones are made retryable again.
DEFAULT_POOL_SIZE = 6
# What the engine is configured with in place of the run's `Bearer <token>`: its configuration, its
# strategies and its cases (and every warning, error or report that prints them) hold no secret.
# The real header replaces it on the prepared request only, as it goes out (`_AuthorizationAtSend`);
# a request that goes out with it anyway carries a token no server accepts.
PLACEHOLDER_AUTHORIZATION = "Bearer retry-contract-placeholder-not-a-token"

# Statuses the built-in acceptance checks treat as correct, from the requirement catalogue:
# a schema-valid request may still carry a nonce the server never issued (BODY-NONCE: 400/401/403)
# or target an execution that does not exist (STATE-404) or is not retryable (409).
POSITIVE_STATUSES = [200, 400, 401, 403, 404, 409, 429]
NEGATIVE_STATUSES = [400, 401, 403, 404, 405, 409, 415, 429]


@dataclass(frozen=True, slots=True)
class FuzzSettings:
    seed: int
    max_examples: int
    request_timeout: float = 30.0
    pool_size: int = DEFAULT_POOL_SIZE
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_MIB * MIB


@dataclass
class FuzzStats:
    cases: int = 0
    steered: int = 0
    successes: int = 0
    errors: list[str] = field(default_factory=list)
    # Cases by Schemathesis's generation mode: valid requests (positive) and requests that break the
    # schema on purpose (negative). A case without generation metadata counts in neither.
    positive: int = 0
    negative: int = 0
    # What Hypothesis warned of while fuzzing (redacted, the first few): kept off the terminal.
    warnings: list[str] = field(default_factory=list)


def _expectation(case: Any, our_credentials: bool, steered: bool) -> Expectation | None:
    """Which requirement governs the status of a generated case, from how it was generated; None
    where the contract leaves the status open (OPTIONS and HEAD on the retry path)."""
    if case.method.upper() in OPEN_METHODS:
        return None
    if case.method.upper() != "POST":
        return Expectation("METHOD", frozenset({404, 405}), "undeclared method on the retry path")
    if not our_credentials:
        return Expectation("AUTH-401", frozenset({401}), "missing or invalid Authorization")
    components = {
        str(getattr(k, "value", k)): v.mode.value
        for k, v in (case.meta.components.items() if case.meta else [])
    }
    if components.get("path") == "negative":
        return Expectation("PATH-UUID", frozenset({400, 404}), "malformed executionId")
    if components.get("body") == "negative" or (
        case.meta is not None and case.meta.generation.mode.value == "negative"
    ):
        # The id is random, so a server that looks the execution up first may answer 404; a body not
        # declared as JSON may be refused as such (415).
        statuses = {400, 404} if _declares_json(case) else {400, 404, 415}
        return Expectation("BODY-SHAPE", frozenset(statuses), "malformed body on an unknown id")
    if steered:
        return Expectation("RESP-200", frozenset({200}), "retry of a retryable execution with a fresh nonce")
    return Expectation(
        "STATE-404",
        frozenset({400, 401, 403, 404}),
        "unknown id with a never-issued nonce: 404, or the nonce rejection if checked first",
    )


# Schemathesis accepts `before_call` only as a global hook; it finds the fuzzer of the case's schema here.
_ACTIVE: weakref.WeakValueDictionary[int, Fuzzer] = weakref.WeakValueDictionary()


@schemathesis.deserializer("application/json")
def _json_as_judged(context: Any, response: Any) -> Any:
    """Schemathesis reads JSON answers as the judges do (`parse_json`): its own reading recurses without
    bound, and a deeply nested answer would end its worker thread, and the fuzzing, unreported."""
    value, problem = parse_json(response.content)
    if problem is not None:
        raise json.JSONDecodeError(problem, "", 0)
    return value


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    fuzzer = _ACTIVE.get(id(case.operation.schema))
    if fuzzer is not None:
        fuzzer._before_call(case, kwargs)


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    fuzzer = _ACTIVE.get(id(case.operation.schema))
    if fuzzer is not None:
        fuzzer._after_call(case, response)


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


def _declares_json(case: Any) -> bool:
    content_type = next((v for k, v in (case.headers or {}).items() if k.lower() == "content-type"), None)
    media_type = getattr(case, "media_type", None) or content_type or "application/json"
    return str(media_type).split(";", 1)[0].strip().lower() == "application/json"


class Fuzzer:
    def __init__(
        self,
        *,
        base_url: str,
        client: CdfClient,
        pool: RetryablePool,
        judge: Judge,
        settings: FuzzSettings,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.should_stop = should_stop
        self.client = client
        self.pool = pool
        self.judge = judge
        self.settings = settings
        self.stats = FuzzStats()
        # Every `Bearer <token>` requests were sent with: the token is read afresh for each, so client
        # credentials refreshed during a long run are used.
        self._bearers: set[str] = set()
        self._lock = threading.Lock()
        # case id -> (leased execution id, detailed execution before the call)
        self._steered: dict[str, tuple[str, dict[str, Any]]] = {}
        # case id -> the leased execution once a successful retry took effect (None: not a success)
        self._effects: dict[str, Future[Mapping[str, Any] | None]] = {}
        # Every execution the pool ever handed out: no case may reach one outside a lease.
        self._pooled: set[str] = set()
        # Where leased executions are read after their retry and made retryable again, off the
        # engine's thread: a steered case costs the fuzzing only its nonce and its call.
        self._background = ThreadPoolExecutor(
            max_workers=max(1, settings.pool_size), thread_name_prefix="pool"
        )
        self._returns: list[Future[str | None]] = []
        self.pool.fill(settings.pool_size, self._background)
        # Nonces made ahead in the background, one per pooled execution: a steered case then waits
        # for neither. Single-use, so at most that many are left unused at the end.
        self._nonces: list[Future[str]] = [
            self._background.submit(client.create_nonce) for _ in range(settings.pool_size)
        ]
        self._stream: Any = None
        # What stopped the engine from inside a hook, re-raised once the engine has wound down.
        self.interruption: BudgetExhausted | ClientError | None = None
        self.schema = self._load_schema(base_url)

    def _load_schema(self, base_url: str) -> Any:
        config = schemathesis.Config.from_dict(
            {
                "seed": self.settings.seed,
                "headers": {"Authorization": PLACEHOLDER_AUTHORIZATION},
                "base-url": contract.project_base_url(base_url, self.client.project),
                "request-timeout": self.settings.request_timeout,
                "continue-on-failure": True,
                "generation": {"max-examples": self.settings.max_examples, "mode": "all", "database": "none"},
                "phases": {"stateful": {"enabled": False}},
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
        schema = schemathesis.openapi.from_path(str(contract.spec_path()), config=config)
        limits = ReadLimits(self.settings.request_timeout, self.settings.max_response_bytes)
        bound_engine_sessions(schema, limits)

        schema.hooks.hook("flatmap_case")(self._steering_hook())
        _ACTIVE[id(schema)] = self
        return schema

    # -- steering ---------------------------------------------------------------------------------

    @staticmethod
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

    def _before_call(self, case: Any, kwargs: dict[str, Any]) -> None:
        # A case the engine still sends once told to stop goes out as it was made: unsteered, and with
        # the placeholder, which the server refuses before the request can have any effect.
        if self._stream is None or self._stream.stop_event.is_set():
            return
        try:
            self.client.budget.spend()
            current = f"Bearer {self.client.token}"
            with self._lock:
                self._bearers.add(current)
            kwargs["auth"] = _AuthorizationAtSend(current)
            target = case.path_parameters.get("executionId")
            # A case sent again (Hypothesis may replay an example) would still name the execution it was
            # steered to: that one belongs to the pool again, so the case gets a lease of its own.
            if target == STEERED_EXECUTION_ID or target in self._pooled:
                self._steer(case)
        except (BudgetExhausted, ClientError) as error:
            # The case still goes out (a hook cannot cancel it), unsteered; the run ends after it.
            self.interruption = error
            self._stream.stop()

    def _steer(self, case: Any) -> None:
        execution_id, before = self.pool.take()
        with self._lock:
            self._pooled.add(execution_id)
            self._steered[case.id] = (execution_id, before)
            self.stats.steered += 1
        case.path_parameters["executionId"] = execution_id
        case.body["authentication"] = {"nonce": self._next_nonce()}

    def _next_nonce(self) -> str:
        with self._lock:
            ready = self._nonces.pop(0)
            self._nonces.append(self._background.submit(self.client.create_nonce))
        return ready.result()

    def _after_call(self, case: Any, response: Any) -> None:
        with self._lock:
            lease = self._steered.get(case.id)
        if lease is None:
            return
        if response is None or response.status_code in FAULT_STATUSES:
            return  # _confirm sends it again, and only then gives the execution back
        execution_id, before = lease
        # Read as every retry is (`retry_readings`): the answer's own exchange is built only later.
        answered = Exchange(
            method=case.method.upper(),
            url="",
            request_headers={},
            request_body=None,
            status=response.status_code,
            execution_id=execution_id,
            before=before,
        )
        settled: Future[Mapping[str, Any] | None] = Future()

        def judge_and_return() -> tuple[str, dict[str, Any] | None, str | None]:
            try:
                read_after(self.client, answered)
                after = answered.after
            except BaseException as error:
                settled.set_exception(error)
                raise
            settled.set_result(after)
            return self.pool.made_retryable(execution_id)

        with self._lock:
            self._effects[case.id] = settled
        self._returns.append(self.pool.return_later(self._background, judge_and_return))

    # -- running and harvesting -------------------------------------------------------------------

    def run(self) -> FuzzStats:
        """Run every phase; raises the ClientError or BudgetExhausted that interrupted it, if any."""
        engine_warnings = EngineWarnings(self.client.secrets.redact)
        try:
            with isolated(engine_warnings):
                self._run()
        finally:
            self._background.shutdown(wait=True)
            self.stats.warnings = list(engine_warnings.kept)
            summary = engine_warnings.summary()
            if summary is not None:
                self.judge.ledger.notes.append(summary)
        for returned in self._returns:
            try:
                lost = returned.result()
            except (BudgetExhausted, ClientError) as error:
                self.interruption = self.interruption or error
            else:
                if lost is not None:
                    self.judge.ledger.notes.append(lost)
        if self.interruption is not None:
            raise self.interruption
        return self.stats

    def _settled(self, case_id: str) -> Mapping[str, Any] | None:
        """The leased execution after its retry (`retry_readings.read_after`: once a success took effect,
        at once after a refusal), waiting for the background read."""
        with self._lock:
            settled = self._effects.pop(case_id, None)
        if settled is None:
            return None
        try:
            return settled.result()
        except (BudgetExhausted, ClientError) as error:
            self.interruption = self.interruption or error
            return None

    def _run(self) -> None:
        stream = self._stream = from_schema(self.schema).execute()
        for event in stream:
            if isinstance(event, events.ScenarioFinished):
                for exchange, failures in self._harvest(event.recorder):
                    self.judge.observe(exchange, failures)
                if self.should_stop():
                    stream.stop()
            elif isinstance(event, events.NonFatalError):
                self.stats.errors.append(
                    f"{event.label}: {event.info.message if hasattr(event, 'info') else event}"
                )
            elif isinstance(event, events.FatalError):
                self.stats.errors.append(f"fatal: {event.exception}")

    def _harvest(self, recorder: Any) -> Iterator[tuple[Exchange, list[tuple[str, Any]]]]:
        for case_id, interaction in recorder.interactions.items():
            node = recorder.cases.get(case_id)
            if node is None:
                continue
            case = node.value
            request, response = interaction.request, interaction.response
            headers = {k.lower(): (v[0] if isinstance(v, list) else v) for k, v in request.headers.items()}
            lease = self._steered.get(case_id)
            exchange = Exchange(
                method=request.method.upper(),
                url=request.uri,
                request_headers=headers,
                request_body=request.body,
                status=response.status_code if response is not None else None,
                response_headers={k: ", ".join(v) for k, v in response.headers.items()}
                if response is not None
                else {},
                response_body=response.content or b"" if response is not None else b"",
                elapsed_ms=response.elapsed * 1000 if response is not None else 0.0,
                origin=_origin(case),
                transport_error=None
                if response is not None
                else "no response (connection dropped or timed out)",
                expectation=_expectation(
                    case, headers.get("authorization") in self._bearers, lease is not None
                ),
                execution_id=str(case.path_parameters.get("executionId")) if case.path_parameters else None,
                before=lease[1] if lease is not None else None,
                after=self._settled(case_id),
                request_form="schemathesis",
                body_over_cap=body_over_cap(response),
                credential=credential_of(headers.get("authorization"), self._bearers),
            )
            if exchange.status is None or exchange.status in FAULT_STATUSES:
                exchange = self._confirm(exchange)
                failures = []
            else:
                failures = [
                    (check.name, check.failure_info.failure)
                    for check in recorder.checks.get(case_id, [])
                    if check.failure_info is not None
                ]
            self.stats.cases += 1
            mode = case.meta.generation.mode.value if case.meta is not None else None
            if mode == "positive":
                self.stats.positive += 1
            elif mode == "negative":
                self.stats.negative += 1
            if exchange.status == 200:
                self.stats.successes += 1
            yield exchange, failures

    def _confirm(self, exchange: Exchange) -> Exchange:
        """Re-send a request whose answer looked like a fault, with retries, before judging anything.

        A retry of a steered execution may have taken effect before the fault: a reading of the
        execution decides how its re-sent answer is judged (`weigh_resent`), with the same nonce
        refused as used, and the execution goes back to the pool only then.
        """
        headers = {k: v for k, v in exchange.request_headers.items() if k not in _HOP_HEADERS}
        before, execution_id = exchange.before, exchange.execution_id
        steered = before is not None and execution_id is not None
        confirmed = self.client.send(
            exchange.method,
            exchange.url,
            content=exchange.request_body,
            headers=headers,
            token=None,
            origin=f"{exchange.origin} (re-sent after: {exchange.transport_error or exchange.status})",
            expectation=None if steered else exchange.expectation,
            execution_id=exchange.execution_id,
        )
        if before is None or execution_id is None:
            return confirmed
        confirmed.before = before
        conclusion = weigh_resent(self.client, confirmed, exchange.expectation)
        read_after(self.client, confirmed)
        self.judge.ledger.notes.append(resent_note(confirmed, conclusion))
        self._returns.append(
            self.pool.return_later(self._background, lambda: self.pool.made_retryable(execution_id))
        )
        return confirmed


def _origin(case: Any) -> str:
    meta = case.meta
    if meta is None:
        return "schemathesis"
    description = getattr(meta.phase.data, "description", "") or ""
    label = f"schemathesis {meta.phase.name.value} ({meta.generation.mode.value})"
    return f"{label}: {description}" if description else label
