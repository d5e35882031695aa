"""Judges: each turns an exchange into observations of requirements.

- `http`: what every response must satisfy (ROBUST, ERR-*, HDR-REQUEST-ID, the expected status);
- `success`: what a successful retry must satisfy beyond its schema (RESP-ID, RESP-UNCHANGED, ...);
- `openapi`: openapi-core validation against the spec, traced through `x-requirement`;
- `schemathesis_results`: Schemathesis's own checks, mapped to requirements;
- `retry_effects`: what a retry did to its execution, from readings before and after: the tasks a
  successful one restarted (SEM-*), nothing for a refused one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from retry_contract.checks import schemathesis_results
from retry_contract.checks.http import HTTP_CHECKS
from retry_contract.checks.openapi import SCHEMA_JUDGE, OpenApiJudge
from retry_contract.checks.retry_effects import (
    must_leave_unchanged,
    retried,
    retry_effects,
    unchanged_after_refusal,
)
from retry_contract.checks.success import SUCCESS_CHECKS
from retry_contract.exchange import KEPT_BODY_BYTES, Exchange
from retry_contract.verdict import Disagreement, Ledger, Observation

# What an observation's message keeps: a validator quoting the instance it refuses quotes all of it,
# a body of megabytes included, and the ledger keeps every failure till the end of the run.
KEPT_MESSAGE_CHARACTERS = 4096


def _kept(observation: Observation) -> Observation:
    message = observation.message
    if len(message) <= KEPT_MESSAGE_CHARACTERS:
        return observation
    cut = f"{message[:KEPT_MESSAGE_CHARACTERS]}...({len(message)} characters in all)"
    return replace(observation, message=cut)


class Judge:
    """Runs every per-exchange judge and feeds the ledger."""

    def __init__(self, base_url: str, ledger: Ledger, openapi: OpenApiJudge | None = None) -> None:
        # The openapi-core judge is stateless once built, and building it parses the spec: share it.
        self.openapi = openapi or OpenApiJudge(base_url)
        self.ledger = ledger

    def with_ledger(self, ledger: Ledger) -> Judge:
        """The same judges, feeding another ledger (one per concurrent scenario)."""
        return Judge("", ledger, self.openapi)

    def observe(
        self, exchange: Exchange, schemathesis_failures: Iterable[tuple[str, Any]] | None = None
    ) -> list[Observation]:
        try:
            return self._observe(exchange, schemathesis_failures)
        finally:
            # Judged: the ledger may keep the exchange till the end of the run, its body need not.
            if len(exchange.response_body) > KEPT_BODY_BYTES:
                exchange.response_body = exchange.response_body[:KEPT_BODY_BYTES]

    def _observe(
        self, exchange: Exchange, schemathesis_failures: Iterable[tuple[str, Any]] | None
    ) -> list[Observation]:
        if exchange.fault is not None:
            # A fault of the network says nothing about the contract: reported, never judged.
            self.ledger.fault(exchange)
            return []
        observations: list[Observation] = []
        for check in (*HTTP_CHECKS, *SUCCESS_CHECKS):
            observations += check(exchange)
        if exchange.before is not None and exchange.after is not None:
            if retried(exchange):
                observations += retry_effects(exchange.before, exchange.after, exchange)
            elif must_leave_unchanged(exchange):
                observations += unchanged_after_refusal(exchange.before, exchange.after, exchange)
        validated = [_kept(o) for o in self.openapi.judge(exchange)]
        observations += validated
        if schemathesis_failures is not None:
            failures = list(schemathesis_failures)
            observations += schemathesis_results.observations(exchange, failures, self.openapi.index)
            self._compare_validators(exchange, failures, validated)
        observations = self._at_declared_level(exchange, observations)
        observations = [_kept(o) for o in observations]
        self.ledger.count_judged(exchange)
        if exchange.method == "POST" and exchange.status == 200 and exchange.execution_id is not None:
            self.ledger.count_success(exchange.execution_id)
        self.ledger.record(observations)
        return observations

    def _at_declared_level(self, exchange: Exchange, observations: list[Observation]) -> list[Observation]:
        """Findings about an answer the spec judges at a weaker level (a 413/414/431, which a front-end
        proxy may answer with a page of its own) count at that level, whichever judge made them."""
        level = self.openapi.index.declared_level(exchange.status) if exchange.status is not None else None
        if level is None or exchange.status is None:
            return observations
        about_answer = self.openapi.index.answer_requirements(exchange.status)
        return [
            replace(o, level=level) if not o.passed and o.requirement in about_answer else o
            for o in observations
        ]

    def _compare_validators(
        self, exchange: Exchange, failures: list[tuple[str, Any]], validated: list[Observation]
    ) -> None:
        """Both validators read the same schema; when only one objects to a body, say so."""
        if exchange.method != "POST" or exchange.status is None:
            return
        st_errors = [
            str(getattr(f, "message", f)) for name, f in failures if name == schemathesis_results.SCHEMA_CHECK
        ]
        oc_errors = [o.message for o in validated if not o.passed and o.judge == SCHEMA_JUDGE]
        if bool(st_errors) != bool(oc_errors):
            self.ledger.disagree(
                Disagreement(
                    exchange,
                    schemathesis_says="; ".join(st_errors) or "body conforms",
                    openapi_core_says="; ".join(oc_errors) or "body conforms",
                )
            )
