"""Valid retries in every form real clients send, on executions of every fixture shape.

Each successful retry is judged for what it did (SEM-*) and its execution is failed again for the
next one, so every execution here is also retried several times in a row. A form the contract
requires to work (the SDK's gzip, a charset parameter, any JSON layout) that is refused fails
STATE-RETRYABLE: a retryable execution was not retried. Unknown extra fields are open (accept or
400), but the same document must meet the same answer however it is encoded (BODY-SHAPE).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from retry_contract.exchange import Exchange, Expectation
from retry_contract.fixture_values import FixtureShape
from retry_contract.request_forms import ALWAYS_ACCEPTED, PLAIN, RAW_UTF8, REORDERED, RequestForm
from retry_contract.scenarios.context import ScenarioContext

# An unknown field with non-ASCII text, so its raw UTF-8 and escaped encodings differ on the wire.
EXTRA_FIELDS: Mapping[str, Any] = {"retryContractNote": "retry ✓ Tromsø 再試行 😀"}
EXTRA_FIELD_FORMS = (PLAIN, RAW_UTF8, REORDERED)


@dataclass(frozen=True)
class _Probe:
    form: RequestForm
    extra_fields: Mapping[str, Any] | None

    @property
    def expectation(self) -> Expectation:
        if self.extra_fields is None:
            return Expectation("STATE-RETRYABLE", frozenset({200}), f"valid retry, {self.form.description}")
        return Expectation(
            "BODY-SHAPE", frozenset({200, 400}), "an unknown extra field: accept or 400 (open)"
        )

    @property
    def label(self) -> str:
        return f"{self.form.name} form" + (" with an unknown extra field" if self.extra_fields else "")


class _Executions:
    """One retryable execution per fixture shape, failed again after each successful retry. The next
    probes go to the other shapes' executions meanwhile: an execution is waited for only when its turn
    comes again."""

    def __init__(
        self, ctx: ScenarioContext, shapes: tuple[FixtureShape, ...], pool: ThreadPoolExecutor
    ) -> None:
        self._ctx = ctx
        self._shapes = shapes
        self._pool = pool
        # Made at once: provisioning is not judged, and the shapes stay in their fixed order.
        self._ids = list(pool.map(ctx.provisioner.failed_execution, shapes))
        # Per slot, being failed again: the execution that will be there, and a note when it is a fresh one.
        self._ready: dict[int, Future[tuple[str, str | None]]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, index: int) -> str:
        slot = index % len(self._ids)
        ready = self._ready.pop(slot, None)
        if ready is not None:
            self._ids[slot], note = ready.result()
            if note is not None:
                self._ctx.judge.ledger.notes.append(note)
        return self._ids[slot]

    def retried(self, index: int) -> None:
        """Make the execution retryable again, in the background; a fresh one of the same shape when it
        cannot be."""
        slot = index % len(self._ids)
        self._ready[slot] = self._pool.submit(self._failed_again, self._ids[slot], self._shapes[slot])

    def settle(self) -> None:
        """Wait for every execution still being failed again (and so for its note, if any)."""
        for slot in sorted(self._ready):
            self.get(slot)

    def _failed_again(self, execution_id: str, shape: FixtureShape) -> tuple[str, str | None]:
        if self._ctx.provisioner.refail(execution_id, after_retry=True):
            return execution_id, None
        note = f"execution {execution_id} could not be failed again after a successful retry"
        return self._ctx.provisioner.failed_execution(shape), note


def request_forms(ctx: ScenarioContext) -> None:
    shapes = ctx.provisioner.shapes
    with ThreadPoolExecutor(max_workers=len(shapes)) as pool:
        executions = _Executions(ctx, shapes, pool)
        # First the plain form on every shape, so every response check meets every shape with a 200.
        probes = [_Probe(PLAIN, None)] * len(executions)
        probes += [_Probe(form, None) for form in ALWAYS_ACCEPTED]
        probes += [_Probe(form, EXTRA_FIELDS) for form in EXTRA_FIELD_FORMS]
        answered: list[tuple[_Probe, Exchange]] = []
        for index, probe in enumerate(probes):
            exchange = ctx.retry(
                executions.get(index),
                expect=probe.expectation,
                origin=f"retry in the {probe.label}",
                form=probe.form,
                extra_fields=probe.extra_fields,
            )
            answered.append((probe, exchange))
            if ctx.retried(exchange):
                executions.retried(index)
        executions.settle()
    _same_document_same_answer(ctx, [(p, e) for p, e in answered if p.extra_fields is not None])


def _same_document_same_answer(ctx: ScenarioContext, answered: list[tuple[_Probe, Exchange]]) -> None:
    """One JSON document, encoded differently, must be accepted or refused alike."""
    outcomes = {probe.form.name: exchange for probe, exchange in answered if exchange.status is not None}
    accepted = sorted(name for name, e in outcomes.items() if ScenarioContext.retried(e))
    refused = sorted(name for name, e in outcomes.items() if not ScenarioContext.retried(e))
    if not outcomes:
        return
    problem = (
        f"the same body was accepted in the {', '.join(accepted)} form but refused in the "
        f"{', '.join(refused)} form ({', '.join(str(outcomes[n].status) for n in refused)})"
        if accepted and refused
        else None
    )
    ctx.observe("BODY-SHAPE", problem, outcomes[refused[0]] if problem else next(iter(outcomes.values())))


SCENARIOS = (request_forms,)
