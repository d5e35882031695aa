"""Judges: each turns an exchange into observations of requirements.

- `http`: what every response must satisfy (ROBUST, ERR-*, HDR-REQUEST-ID, the expected status);
- `success`: what a successful retry must satisfy beyond its schema (RESP-ID, RESP-UNCHANGED, ...);
- `openapi`: openapi-core validation against the spec, traced through `x-requirement`;
- `schemathesis_results`: Schemathesis's own checks, mapped to requirements;
- `retry_effects`: what a successful retry did to the tasks (SEM-*), from readings before and after.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from retry_contract.checks import schemathesis_results
from retry_contract.checks.http import HTTP_CHECKS
from retry_contract.checks.openapi import SCHEMA_JUDGE, OpenApiJudge
from retry_contract.checks.retry_effects import retry_effects
from retry_contract.checks.success import SUCCESS_CHECKS
from retry_contract.exchange import Exchange
from retry_contract.verdict import Disagreement, Ledger, Observation


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
        if exchange.fault is not None:
            # A fault of the network says nothing about the contract: reported, never judged.
            self.ledger.fault(exchange)
            return []
        observations: list[Observation] = []
        for check in (*HTTP_CHECKS, *SUCCESS_CHECKS):
            observations += check(exchange)
        took_effect = exchange.status == 200 or exchange.first_attempt_took_effect
        if took_effect and exchange.before is not None and exchange.after is not None:
            observations += retry_effects(exchange.before, exchange.after, exchange)
        validated = self.openapi.judge(exchange)
        observations += validated
        if schemathesis_failures is not None:
            failures = list(schemathesis_failures)
            observations += schemathesis_results.observations(exchange, failures, self.openapi.index)
            self._compare_validators(exchange, failures, validated)
        self.ledger.count_judged(exchange)
        if exchange.method == "POST" and exchange.status == 200 and exchange.execution_id is not None:
            self.ledger.count_success(exchange.execution_id)
        self.ledger.record(observations)
        return observations

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
