"""Stateful exploration: generated operation sequences (`sequence_model`) run on the target, every
exchange judged by the run's judges, a failing sequence shrunk by Hypothesis to the shortest one.

Each sequence provisions a workflow version of its generated task graph through the real endpoints
(as `provisioning` does for its hand-picked graphs), runs it, then applies its steps. Retries go through
`ScenarioContext.retry` and `semantics.effects_of`, refusals are held unchanged by it, and a task
at its limit that fails again is judged by `limit_after_failure`: the same judges as every other
exchange, no judge of its own. A sequence fails when any judgement of it fails.

Hypothesis draws the sequences from the run's seed (`hypothesis.seed`, no example database), so the
same seed gives the same sequences against a server that answers the same; shrinking runs candidate
sequences on the target too, at most as many as were asked for (`count`): a server that fails a
sequence then costs at most twice a faithful one's exploration, whatever it breaks. Only the smallest
failing sequence's judgements enter the run's ledger, each failing exchange carrying the sequence
(`SEQUENCE_KEY` of `Exchange.sequence`: its JSON and a readable list of steps), which the report's
reproduction shows and `retry-contract replay --failure N` runs again (`replay_sequence`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from retry_contract import execution_view as view
from retry_contract.budget import BudgetExhausted
from retry_contract.cdf_client import ClientError, UnexpectedAnswer
from retry_contract.checks.retry_effects import limit_after_failure
from retry_contract.domain import (
    RETRYABLE_EXECUTION_STATUSES,
    ExecutionStatus,
    OnFailure,
    TaskStatus,
)
from retry_contract.engine_isolation import EngineWarnings, isolated
from retry_contract.exchange import Exchange
from retry_contract.polling import RETRY_SETTLE_SECONDS
from retry_contract.provisioning import TIMEOUT_GRACE_SECONDS
from retry_contract.results import ExplorationStats
from retry_contract.scenarios.context import ScenarioContext
from retry_contract.scenarios.semantics import effects_of
from retry_contract.scenarios.states import ACCEPTED, REFUSED
from retry_contract.sequence_model import (
    SHORT_TIMEOUT_SECONDS,
    OperationSequence,
    Step,
    StepKind,
    operation_sequences,
)
from retry_contract.verdict import Ledger

# Where an exchange of a failing sequence keeps it, for the reproduction and replay.
SEQUENCE_KEY = "sequence"
ORIGIN = "sequence"


@dataclass
class SequenceRun:
    """One sequence as it went: the readable steps and its judgements."""

    sequence: OperationSequence
    ledger: Ledger
    log: list[str]
    exchanges: list[Exchange]

    @property
    def failed(self) -> bool:
        return _has_failures(self.ledger)


def _has_failures(ledger: Ledger) -> bool:
    return any(result.failures for result in ledger.results.values())


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _key(sequence: OperationSequence) -> str:
    return _canonical(sequence.to_json())


def _graph_key(sequence: OperationSequence) -> str:
    return _canonical(sequence.graph.to_json())


@dataclass
class _KnownOutcomes:
    """What runs on the target already decided, by graph: a sequence that extends one which failed (up to
    its failing step) fails too, and one that a passing sequence extends passes; each step is judged as
    it is applied, on a server that answers the same. Shrinking's candidates mostly differ from a known
    sequence after its failing step or drop steps of a passing one: those cost nothing."""

    failing: dict[str, list[tuple[Step, ...]]] = field(default_factory=dict)
    passing: dict[str, list[tuple[Step, ...]]] = field(default_factory=dict)

    def add(self, run: SequenceRun) -> None:
        known = self.failing if run.failed else self.passing
        known.setdefault(_graph_key(run.sequence), []).append(run.sequence.steps)

    def outcome(self, sequence: OperationSequence) -> bool | None:
        """True: known to fail; False: known to pass; None: unknown."""
        graph, steps = _graph_key(sequence), sequence.steps
        if any(steps[: len(prefix)] == prefix for prefix in self.failing.get(graph, ())):
            return True
        if any(longer[: len(steps)] == steps for longer in self.passing.get(graph, ())):
            return False
        return None


class SequenceDriver:
    """Runs one sequence on the target; every exchange is judged through `ctx`."""

    def __init__(self, ctx: ScenarioContext, sequence: OperationSequence, label: str) -> None:
        self.ctx = ctx
        self.sequence = sequence
        self.label = label
        self.function = ctx.provisioner.function_external_id
        self.timeouts = sequence.graph.timeouts()
        self.exchanges: list[Exchange] = []
        self.execution_id = ""
        # Steps applied: all of them, or up to the first one a judgement failed on.
        self.applied = 0
        # The last retry that took effect: what a task failing at its limit is judged against.
        self.last_retry: Exchange | None = None

    def run(self) -> list[str]:
        graph = self.sequence.graph
        log = [f"Task graph {graph.digest}:", *(f"  {line}" for line in graph.describe())]
        self.execution_id = self.ctx.provisioner.graph_execution(
            graph.definition(self.function), graph.digest
        )
        log.append("0. run the version (every task waits for a task update)")
        for number, step in enumerate(self.sequence.steps, 1):
            log.append(f"{number}. {step.describe()}: {self._apply(step, number)}")
            self.applied = number
            if _has_failures(self.ctx.judge.ledger):
                # What follows cannot undo the failure: the sequence that shows it ends here.
                break
        return log

    def _apply(self, step: Step, number: int) -> str:
        if step.kind is StepKind.FINISH:
            return self._finish(step)
        if step.kind is StepKind.AWAIT_TIMEOUT:
            return self._await_timeout()
        if step.kind is StepKind.CANCEL:
            return self._cancel()
        return self._retry(number)

    def _read(self) -> Mapping[str, Any]:
        return self.ctx.client.detailed(self.execution_id)

    def _short_timeouts_pending(self, reading: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Attempts that have not ended and will time out within the sequence."""
        return [
            a
            for a in view.pending(reading)
            if self.timeouts.get(str(a.get("externalId"))) == SHORT_TIMEOUT_SECONDS
        ]

    def _finish(self, step: Step) -> str:
        assert step.outcome is not None
        before = self._read()
        running = sorted(view.in_progress(before), key=lambda a: (str(a.get("externalId")), str(a.get("id"))))
        if not running:
            return "skipped, no attempt in progress"
        attempt = running[step.pick % len(running)]
        name, attempt_id = str(attempt.get("externalId")), attempt.get("id")
        output = (
            self.sequence.graph.output_of(name, self.function)
            if step.outcome is TaskStatus.COMPLETED
            else None
        )
        try:
            self.ctx.client.update_task(str(attempt_id), step.outcome.value, output)
        except UnexpectedAnswer as error:
            # A short timeout may end the attempt first: the task update is not the endpoint under test.
            return f"{name}: the task update was refused ({error})"
        after = self.ctx.client.await_execution(
            self.execution_id,
            lambda d: (
                not any(
                    a.get("id") == attempt_id and a.get("status") == TaskStatus.IN_PROGRESS
                    for a in view.attempts(d)
                )
            ),
            timeout=RETRY_SETTLE_SECONDS,
        )
        if step.outcome is TaskStatus.FAILED and self._judged_at_limit(before, name):
            assert self.last_retry is not None
            final = self.ctx.client.await_execution(
                self.execution_id, lambda d: d.get("status") != ExecutionStatus.RUNNING, RETRY_SETTLE_SECONDS
            )
            self.ctx.judge.ledger.record(limit_after_failure(before, final, name, self.last_retry))
            after = final
        return f"{name} ended {step.outcome}; the execution is {view.text_at(after, 'status')}"

    def _judged_at_limit(self, before: Mapping[str, Any], name: str) -> bool:
        """A top-level task that aborts the workflow, at its limit after a retry took effect: if its attempt
        fails, the execution fails again with no automatic attempt (SEM-LIMIT's second half)."""
        if self.last_retry is None or before.get("status") != ExecutionStatus.RUNNING:
            return False
        top = {str(t.get("externalId")): t for t in self.sequence.graph.tasks}
        task = top.get(name)
        if task is None or task.get("onFailure", OnFailure.ABORT_WORKFLOW) != OnFailure.ABORT_WORKFLOW:
            return False
        return view.attempt_counts(before)[name] >= 1 + view.retries_allowed(before, name)

    def _await_timeout(self) -> str:
        reading = self._read()
        waiting = {a.get("id") for a in self._short_timeouts_pending(reading)}
        if not waiting:
            return f"skipped, no attempt in progress with a {SHORT_TIMEOUT_SECONDS} s timeout"
        after = self.ctx.client.await_execution(
            self.execution_id,
            lambda d: not any(a.get("id") in waiting for a in view.pending(d)),
            timeout=SHORT_TIMEOUT_SECONDS + TIMEOUT_GRACE_SECONDS,
        )
        return f"waited; the execution is {view.text_at(after, 'status')}"

    def _cancel(self) -> str:
        status = view.text_at(self._read(), "status")
        if status != ExecutionStatus.RUNNING:
            return f"skipped, the execution is {status}"
        try:
            self.ctx.client.cancel(self.execution_id, "retry-contract sequence")
        except UnexpectedAnswer as error:
            return f"the cancel was refused ({error})"
        after = self.ctx.client.await_execution(
            self.execution_id, lambda d: d.get("status") != ExecutionStatus.RUNNING, RETRY_SETTLE_SECONDS
        )
        return f"the execution is {view.text_at(after, 'status')}"

    def _settled(self, reading: Mapping[str, Any]) -> bool:
        """Whether the execution can only change through a client now: no attempt waits to start (it
        may fail as it starts, a dynamic task whose source never reported, say) and none will time out."""
        return reading.get("status") != ExecutionStatus.RUNNING or not (
            any(a.get("status") == TaskStatus.SCHEDULED for a in view.attempts(reading))
            or self._short_timeouts_pending(reading)
        )

    def _retry(self, number: int) -> str:
        before = self._read()
        if not self._settled(before):
            # Whether a retry is due depends on the state the server finds, and a RUNNING execution that
            # may end by itself could be found either way: it is retried once it has settled.
            before = self.ctx.client.await_execution(
                self.execution_id, self._settled, SHORT_TIMEOUT_SECONDS + TIMEOUT_GRACE_SECONDS
            )
            if not self._settled(before):
                return "skipped, the execution did not settle (attempts waiting to start or to time out)"
        status = view.text_at(before, "status")
        origin = f"{ORIGIN} {self.label}, step {number}: retry of a {status} execution"
        if status in RETRYABLE_EXECUTION_STATUSES:
            # ctx.retry reads the execution just before and after, and judges SEM-* from the readings.
            exchange = self.ctx.retry(self.execution_id, expect=ACCEPTED, origin=origin)
            self.exchanges.append(exchange)
            after = effects_of(exchange)
            if after is not None:
                self.last_retry = exchange
            now = view.text_at(after, "status") if after is not None else status
            return f"answered {exchange.status}; the execution is {now}"
        # Settled, a RUNNING execution changes only through a client: ctx.retry holds the refusal to
        # leaving it unchanged.
        exchange = self.ctx.retry(self.execution_id, expect=REFUSED, origin=origin)
        self.exchanges.append(exchange)
        return f"answered {exchange.status}"


def run_sequence(ctx: ScenarioContext, sequence: OperationSequence, label: str) -> SequenceRun:
    """Run `sequence` with a ledger of its own (ctx's judges feeding it)."""
    ledger = Ledger()
    driver = SequenceDriver(replace(ctx, judge=ctx.judge.with_ledger(ledger)), sequence, label)
    log = driver.run()
    ran = replace(sequence, steps=sequence.steps[: driver.applied])
    return SequenceRun(ran, ledger, log, driver.exchanges)


def sequence_record(run: SequenceRun, seed_value: int, shrunk_from: int | None) -> dict[str, Any]:
    """What a failing exchange carries: the sequence to run again, and its steps to read."""
    return {
        "seed": seed_value,
        "shrunk_from_steps": shrunk_from,
        "sequence": run.sequence.to_json(),
        "steps": list(run.log),
    }


class _Stopped(Exception):
    """The run stopped (budget, interruption) or a set-up request kept failing: not a finding."""


@dataclass
class Explorer:
    ctx: ScenarioContext
    count: int
    seed: int
    stats: ExplorationStats
    should_stop: Callable[[], bool] = lambda: False
    _known: _KnownOutcomes = field(default_factory=_KnownOutcomes)
    _first_failure_steps: int | None = None
    _smallest: SequenceRun | None = None
    # Candidates run on the target while shrinking, at most `count`: each costs a provisioned
    # version and run like a generated sequence, and a broken server must not cost more than twice
    # a faithful one's exploration. Past it, candidates never run count as passing, so Hypothesis
    # settles on the smallest failure found so far.
    _shrink_runs: int = 0
    _interruption: BaseException | None = None

    def run(self) -> None:
        """Explore `count` sequences; the smallest failing one's judgements go to ctx's ledger, the
        passing ones' too. Raises the ClientError or BudgetExhausted that stopped it, if any."""
        self.stats.requested += self.count
        if self.count <= 0:
            return

        @settings(
            max_examples=self.count,
            database=None,
            deadline=None,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
            verbosity=Verbosity.quiet,
        )
        @seed(self.seed)
        @given(operation_sequences())
        def explore(sequence: OperationSequence) -> None:
            if self._check(sequence):
                raise AssertionError("the sequence failed a judgement")

        warnings = EngineWarnings(self.ctx.client.secrets.redact)
        try:
            with isolated(warnings):
                explore()
        except AssertionError:
            pass  # the smallest failure is kept in `_smallest`, with its judgements
        summary = warnings.summary()
        if summary is not None:
            self.ctx.judge.ledger.notes.append(summary)
        if self._smallest is not None:
            self._report(self._smallest)
        if self._interruption is not None:
            raise self._interruption

    def _check(self, sequence: OperationSequence) -> bool:
        """Whether `sequence` fails; run on the target unless known, stopped or past the shrink budget."""
        known = self._known.outcome(sequence)
        if known is not None:
            return known
        shrinking = self._smallest is not None
        if (
            self._interruption is not None
            or self.should_stop()
            or (shrinking and self._shrink_runs >= self.count)
        ):
            return False
        label = f"#{self.stats.sequences + self.stats.shrink_runs + 1}"
        try:
            run = run_sequence(self.ctx, sequence, label)
        except (ClientError, BudgetExhausted) as error:
            self._interruption = error
            return False
        if shrinking:
            self._shrink_runs += 1
            self.stats.shrink_runs += 1
        else:
            self.stats.sequences += 1
            self.stats.task_graphs.add(sequence.graph.digest)
            self.stats.generated.append(hashlib.sha256(_key(sequence).encode()).hexdigest()[:12])
            self.stats.steps += len(sequence.steps)
        self._known.add(run)
        if not run.failed:
            self.ctx.judge.ledger.merge(run.ledger)
            return False
        if self._first_failure_steps is None:
            self._first_failure_steps = len(sequence.steps)
        if self._smallest is None or run.sequence.size < self._smallest.sequence.size:
            self._smallest = run
        return True

    def _report(self, run: SequenceRun) -> None:
        self.stats.failing += 1
        record = sequence_record(run, self.seed, self._first_failure_steps)
        for result in run.ledger.results.values():
            for failure in result.failures:
                if failure.exchange is not None:
                    failure.exchange.sequence = record
        self.ctx.judge.ledger.merge(run.ledger)
        self.ctx.judge.ledger.notes.append(
            f"a generated sequence failed; shrunk from {self._first_failure_steps} to "
            f"{len(run.sequence.steps)} steps on a graph of {run.sequence.size[1]} tasks "
            "(its steps are in the failure's reproduction)"
        )


def explore(
    ctx: ScenarioContext,
    count: int,
    seed_value: int,
    stats: ExplorationStats,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    Explorer(ctx, count, seed_value, stats, should_stop).run()
