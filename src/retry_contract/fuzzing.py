"""Fuzzing with Schemathesis: its engine generates and sends cases (examples, coverage, fuzzing
phases, positive and negative) in a process of its own (`fuzz_engine`); this module steers a share of
positive cases to provisioned retryable executions with fresh nonces, holds the credentials and the
budget, and hands every exchange to the judges.

The engine has a process of its own because it is the longest single task of a run, and beside the
scenarios and the judges in one interpreter it waited on their lock: against a server with real
latency, the run's time to verdict was its time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from retry_contract import contract
from retry_contract.budget import BudgetExhausted
from retry_contract.cdf_client import CdfClient, ClientError
from retry_contract.checks import Judge
from retry_contract.engine_isolation import EngineWarnings, RawWarnings
from retry_contract.engine_processes import ENGINE_PHASES, EngineProcess, FuzzSettings, engines_made
from retry_contract.exchange import Exchange, Expectation, credential_of
from retry_contract.fuzz_protocol import (
    PLACEHOLDER_AUTHORIZATION,
    CallAnswered,
    CallAsked,
    CallGrant,
    CaseShape,
    EngineCase,
    EngineFailure,
    EngineFinished,
    Harvest,
)
from retry_contract.provisioning import RetryablePool
from retry_contract.requirements import OPEN_METHODS
from retry_contract.resilience import FAULT_STATUSES
from retry_contract.results import FuzzStats
from retry_contract.retry_readings import read_after
from retry_contract.scenarios.context import resent_note, weigh_resent

__all__ = [
    "ENGINE_PHASES",
    "PLACEHOLDER_AUTHORIZATION",
    "EngineProcess",
    "FuzzSettings",
    "Fuzzer",
    "engines_made",
]

# Recomputed by the client when a request is re-sent.
_HOP_HEADERS = frozenset({"content-length", "host", "connection", "transfer-encoding"})


@dataclass
class _Leases:
    """One engine's steered cases (by its case ids, which only that engine's are unique among)."""

    # case id -> (leased execution id, detailed execution before the call)
    steered: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    # case id -> the leased execution once a successful retry took effect (None: not a success)
    effects: dict[str, Future[Mapping[str, Any] | None]] = field(default_factory=dict)


def _expectation(shape: CaseShape, our_credentials: bool, steered: bool) -> Expectation | None:
    """Which requirement governs the status of a generated case, from how it was generated; None
    where the contract leaves the status open (OPTIONS and HEAD on the retry path)."""
    if shape.method in OPEN_METHODS:
        return None
    if shape.method != "POST":
        return Expectation("METHOD", frozenset({404, 405}), "undeclared method on the retry path")
    if not our_credentials:
        return Expectation("AUTH-401", frozenset({401}), "missing or invalid Authorization")
    if shape.path_mode == "negative":
        return Expectation("PATH-UUID", frozenset({400, 404}), "malformed executionId")
    if shape.body_mode == "negative" or shape.generation_mode == "negative":
        # The id is random, so a server that looks the execution up first may answer 404; a body not
        # declared as JSON may be refused as such (415).
        statuses = {400, 404} if shape.declares_json else {400, 404, 415}
        return Expectation("BODY-SHAPE", frozenset(statuses), "malformed body on an unknown id")
    if steered:
        return Expectation("RESP-200", frozenset({200}), "retry of a retryable execution with a fresh nonce")
    return Expectation(
        "STATE-404",
        frozenset({400, 401, 403, 404}),
        "unknown id with a never-issued nonce: 404, or the nonce rejection if checked first",
    )


class Fuzzer:
    """Serves the run's engines: grants each case its credential (and a steered one its execution and
    nonce), reads leased executions after their retry, and judges every exchange, each engine's into
    its own judge's ledger, in the order that engine sent them."""

    def __init__(
        self,
        *,
        base_url: str,
        client: CdfClient,
        pool: RetryablePool,
        judges: Sequence[Judge],
        settings: FuzzSettings,
        should_stop: Callable[[], bool] = lambda: False,
        engines: Sequence[EngineProcess] | None = None,
        engines_at_once: int = len(ENGINE_PHASES),
    ) -> None:
        if len(judges) != len(ENGINE_PHASES) or (engines is not None and len(engines) != len(judges)):
            raise ValueError(f"one judge (and engine) per group of phases: {len(ENGINE_PHASES)}")
        self.should_stop = should_stop
        self.client = client
        self.pool = pool
        self.judges = list(judges)
        self.settings = settings
        self.project_url = contract.project_base_url(base_url, client.project)
        self._engines = list(engines) if engines is not None else None
        self._engines_at_once = max(1, engines_at_once)
        self.stats = FuzzStats()
        # Every `Bearer <token>` requests were sent with: the token is read afresh for each, so client
        # credentials refreshed during a long run are used.
        self._bearers: set[str] = set()
        self._lock = threading.Lock()
        # Where leased executions are read after their retry and made retryable again, off the
        # engines' way: a steered case costs the fuzzing only its nonce and its call.
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
        # What stopped the fuzzing (the budget, a client error), raised once the engines have wound down.
        self.interruption: BudgetExhausted | ClientError | None = None

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> FuzzStats:
        """Run every phase; raises the ClientError or BudgetExhausted that interrupted it, if any."""
        engine_warnings = EngineWarnings(self.client.secrets.redact)
        try:
            if self._engines is not None:
                self._serve_all(self._engines, engine_warnings)
            else:
                with engines_made(self.settings) as engines:
                    self._serve_all(engines, engine_warnings)
        finally:
            self._background.shutdown(wait=True)
            self.stats.warnings = list(engine_warnings.kept)
            summary = engine_warnings.summary()
            if summary is not None:
                self.judges[0].ledger.notes.append(summary)
        for returned in self._returns:
            try:
                lost = returned.result()
            except (BudgetExhausted, ClientError) as error:
                self.interruption = self.interruption or error
            else:
                if lost is not None:
                    self.judges[0].ledger.notes.append(lost)
        if self.interruption is not None:
            raise self.interruption
        return self.stats

    def _serve_all(self, engines: Sequence[EngineProcess], engine_warnings: EngineWarnings) -> None:
        with ThreadPoolExecutor(self._engines_at_once, thread_name_prefix="fuzz-engine") as serving:
            served = [
                serving.submit(self._serve, engine, judge, engine_warnings)
                for engine, judge in zip(engines, self.judges, strict=True)
            ]
        for done in served:
            done.result()

    def _serve(self, engine: EngineProcess, judge: Judge, engine_warnings: EngineWarnings) -> None:
        """Serve one engine until it finishes: its asks at once, here; its harvests in order on a
        thread of their own, so that judging never holds up the next case."""
        leases = _Leases()
        judging = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fuzz-judge")
        judged: list[Future[None]] = []
        try:
            if self.interruption is not None or self.should_stop() or not engine.start(self.project_url):
                return
            while (message := engine.receive()) is not None:
                if isinstance(message, CallAsked):
                    engine.connection.send(self._grant(message, leases))
                elif isinstance(message, CallAnswered):
                    self._answered(message, leases)
                elif isinstance(message, Harvest):
                    judged.append(judging.submit(self._judge_harvest, message, leases, judge))
                elif isinstance(message, EngineFinished):
                    self._finished(message, engine_warnings)
                    break
            else:
                if self.interruption is None:
                    with self._lock:
                        self.stats.errors.append(
                            f"fatal: the fuzzing engine of {', '.join(engine.settings.phases)} ended "
                            "before it finished; the cases it had sent until its last scenario were judged"
                        )
        finally:
            engine.end()
            judging.shutdown(wait=True)
        for done in judged:
            done.result()

    def _finished(self, finished: EngineFinished, engine_warnings: EngineWarnings) -> None:
        redact = self.client.secrets.redact
        with self._lock:
            self.stats.errors.extend(redact(error) for error in finished.errors)
        engine_warnings.absorb(RawWarnings(finished.warning_count, list(finished.warnings)))

    # -- steering ---------------------------------------------------------------------------------

    def _grant(self, asked: CallAsked, leases: _Leases) -> CallGrant:
        """How a case goes out: with the current token, and for a steered case on a leased execution
        with a fresh nonce. Once the run is to stop, as the engine made it, and the engine stops."""
        if self.interruption is not None or self.should_stop():
            return CallGrant(None, stop=True)
        try:
            self.client.budget.spend()
            current = f"Bearer {self.client.token}"
            with self._lock:
                self._bearers.add(current)
            if not asked.steer:
                return CallGrant(current)
            execution_id, before = self.pool.take()
            with self._lock:
                leases.steered[asked.case_id] = (execution_id, before)
                self.stats.steered += 1
            return CallGrant(current, execution_id, self._next_nonce())
        except (BudgetExhausted, ClientError) as error:
            # The case still goes out (the engine's hook cannot cancel it), unsteered; the run ends after it.
            self.interruption = error
            return CallGrant(None, stop=True)

    def _next_nonce(self) -> str:
        with self._lock:
            ready = self._nonces.pop(0)
            self._nonces.append(self._background.submit(self.client.create_nonce))
        return ready.result()

    def _answered(self, answered: CallAnswered, leases: _Leases) -> None:
        with self._lock:
            lease = leases.steered.get(answered.case_id)
        if lease is None:
            return
        if answered.status is None or answered.status in FAULT_STATUSES:
            return  # _confirm sends it again, and only then gives the execution back
        execution_id, before = lease
        # Read as every retry is (`retry_readings`): the answer's own exchange is built only later.
        reading = Exchange(
            method="POST",
            url="",
            request_headers={},
            request_body=None,
            status=answered.status,
            execution_id=execution_id,
            before=before,
        )
        settled: Future[Mapping[str, Any] | None] = Future()

        def judge_and_return() -> tuple[str, dict[str, Any] | None, str | None]:
            try:
                read_after(self.client, reading)
                after = reading.after
            except BaseException as error:
                settled.set_exception(error)
                raise
            settled.set_result(after)
            return self.pool.made_retryable(execution_id)

        with self._lock:
            leases.effects[answered.case_id] = settled
        self._returns.append(self.pool.return_later(self._background, judge_and_return))

    # -- judging ----------------------------------------------------------------------------------

    def _judge_harvest(self, harvest: Harvest, leases: _Leases, judge: Judge) -> None:
        try:
            for case in harvest.cases:
                exchange, failures = self._exchange_of(case, leases, judge)
                judge.observe(exchange, failures)
        except (BudgetExhausted, ClientError) as error:
            # The engines are told to stop at their next case.
            self.interruption = self.interruption or error

    def _exchange_of(
        self, case: EngineCase, leases: _Leases, judge: Judge
    ) -> tuple[Exchange, list[tuple[str, EngineFailure]]]:
        """The exchange a case made, as the judges read it, and the built-in checks it failed; a fault
        (no answer, 5xx, 429) is sent again first, and judged as the re-sent request was answered."""
        with self._lock:
            lease = leases.steered.get(case.case_id)
            bearers = frozenset(self._bearers)
        authorization = case.request_headers.get("authorization")
        exchange = Exchange(
            method=case.method,
            url=case.url,
            request_headers=case.request_headers,
            request_body=case.request_body,
            status=case.status,
            response_headers=case.response_headers,
            response_body=case.response_body,
            elapsed_ms=case.elapsed_ms,
            origin=case.origin,
            transport_error=None
            if case.status is not None
            else "no response (connection dropped or timed out)",
            expectation=_expectation(case.shape, authorization in bearers, lease is not None),
            execution_id=case.execution_id,
            before=lease[1] if lease is not None else None,
            after=self._settled(case.case_id, leases),
            request_form="schemathesis",
            body_over_cap=case.body_over_cap,
            credential=credential_of(authorization, bearers),
        )
        failures: list[tuple[str, EngineFailure]] = []
        if exchange.status is None or exchange.status in FAULT_STATUSES:
            exchange = self._confirm(exchange, judge)
        else:
            failures = [(failure.check, failure) for failure in case.failures]
        with self._lock:
            self.stats.cases += 1
            if case.shape.generation_mode == "positive":
                self.stats.positive += 1
            elif case.shape.generation_mode == "negative":
                self.stats.negative += 1
            if exchange.status == 200:
                self.stats.successes += 1
        return exchange, failures

    def _settled(self, case_id: str, leases: _Leases) -> Mapping[str, Any] | None:
        """The leased execution after its retry (`retry_readings.read_after`: once a success took effect,
        at once after a refusal), waiting for the background read."""
        with self._lock:
            settled = leases.effects.pop(case_id, None)
        if settled is None:
            return None
        try:
            return settled.result()
        except (BudgetExhausted, ClientError) as error:
            self.interruption = self.interruption or error
            return None

    def _confirm(self, exchange: Exchange, judge: Judge) -> Exchange:
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
        judge.ledger.notes.append(resent_note(confirmed, conclusion))
        self._returns.append(
            self.pool.return_later(self._background, lambda: self.pool.made_retryable(execution_id))
        )
        return confirmed
