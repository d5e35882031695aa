"""What a scenario may use: the client, the fixtures, and the ledger through the judges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retry_contract import execution_view
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.checks.retry_effects import took_effect
from retry_contract.exchange import RESENT_NOTE, Exchange, Expectation
from retry_contract.polling import RETRY_SETTLE_SECONDS
from retry_contract.provisioning import Provisioner
from retry_contract.request_forms import PLAIN, RequestForm
from retry_contract.verdict import Observation

JUDGE = "scenario"
_DEFAULT: Any = object()
# What a retry meets when an earlier attempt of it took effect: the execution runs (STATE-RETRYABLE:
# 400 or 409), or the same nonce comes again (NONCE-REUSE: 400, 401 or 403).
ALREADY_RETRIED = Expectation(
    "STATE-RETRYABLE",
    frozenset({400, 401, 403, 409}),
    "re-sent after a lost answer that had taken effect: the execution was already retried, or the nonce used",
)


def _expects_success(expected: Expectation | None) -> bool:
    return expected is not None and any(200 <= status < 300 for status in expected.statuses)


def weigh_resent(client: CdfClient, exchange: Exchange, expected: Expectation | None) -> str:
    """Make a retry that was re-sent after a lost answer ready to judge, from a reading of its execution;
    what was concluded, for the report.

    A refusal that was due either way is held to its expectation. A success that was due and met a
    refusal is judged as what it is when the reading shows that a retry took effect: the refusal of an
    execution already retried (`ALREADY_RETRIED`), and the retry's effects from the reading (SEM-*).
    """
    exchange.maybe_replayed = True
    exchange.expectation = expected
    if expected is None:
        return "no status was expected of it"
    if not _expects_success(expected):
        return "a refusal was due either way, and was expected of it"
    if exchange.status is None or 200 <= exchange.status < 300:
        return "its answer was judged as it came"
    before = exchange.before if exchange.before is not None else exchange.reading
    if before is None or exchange.execution_id is None:
        exchange.expectation = ALREADY_RETRIED
        return "no reading of the execution could tell whether it had; a refusal was accepted"
    now = client.detailed(exchange.execution_id)
    if not execution_view.changes(before, now):
        return "a reading showed it had not, and the refusal was judged as one"
    exchange.expectation = ALREADY_RETRIED
    exchange.first_attempt_took_effect = True
    exchange.before = before
    exchange.after = (
        now
        if took_effect(before, now)
        else client.await_execution(
            exchange.execution_id, lambda reading: took_effect(before, reading), RETRY_SETTLE_SECONDS
        )
    )
    return (
        "a reading showed it had: the refusal was judged as that of an execution already retried, "
        "and the retry's effects from the reading"
    )


def resent_note(exchange: Exchange, conclusion: str) -> str:
    return f"{exchange.method} {exchange.path} ({exchange.origin}) was {RESENT_NOTE}: {conclusion}"


@dataclass
class ScenarioContext:
    client: CdfClient
    provisioner: Provisioner
    judge: Judge
    readonly_token: str | None = None
    # Executions the user named for retrying (`--retry-execution`): the only foreign ones it retries.
    named_executions: tuple[str, ...] = ()

    def retry(
        self,
        execution_id: str,
        *,
        expect: Expectation | None,
        origin: str,
        nonce: str | None = None,
        body: Any = _DEFAULT,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = _DEFAULT,
        project: str | None = None,
        method: str = "POST",
        before: Mapping[str, Any] | None = None,
        form: RequestForm = PLAIN,
        extra_fields: Mapping[str, Any] | None = None,
    ) -> Exchange:
        """Send a retry request (by default a well-formed one with a fresh nonce) and judge it.

        `extra_fields` go beside `authentication`; `form` is how the JSON body goes on the wire.
        """
        kwargs: dict[str, Any] = {} if token is _DEFAULT else {"token": token}
        extra = dict(extra_fields or {})
        if body is _DEFAULT and content is None and nonce is None:
            # A fresh nonce for every attempt, should a fault make the client re-send.
            kwargs["json_per_attempt"] = lambda: {
                "authentication": {"nonce": self.client.create_nonce()},
                **extra,
            }
        elif body is _DEFAULT and content is None:
            kwargs["json_body"] = {"authentication": {"nonce": nonce}, **extra}
        elif body is not _DEFAULT:
            kwargs["json_body"] = body
        exchange = self.client.send(
            method,
            self.client.retry_url(execution_id, project),
            content=content,
            headers=headers,
            origin=f"scenario: {origin}",
            expectation=expect,
            execution_id=execution_id,
            form=form,
            **kwargs,
        )
        exchange.before = before
        if exchange.maybe_replayed:
            self.judge.ledger.notes.append(resent_note(exchange, weigh_resent(self.client, exchange, expect)))
        self.judge.observe(exchange)
        return exchange

    @staticmethod
    def retried(exchange: Exchange) -> bool:
        """Whether the retry took effect: answered 200, or re-sent and found to have taken effect."""
        return exchange.status == 200 or exchange.first_attempt_took_effect

    def observe(self, requirement: str, problem: str | None, exchange: Exchange | None = None) -> None:
        self.judge.ledger.record([Observation(requirement, problem is None, problem or "", exchange, JUDGE)])

    def check_unchanged(
        self, requirement: str, execution_id: str, before: Mapping[str, Any], exchange: Exchange
    ) -> None:
        """A refused retry must leave the execution exactly as it was: status and attempts."""
        problems = execution_view.changes(before, self.client.detailed(execution_id))
        self.observe(requirement, "; ".join(problems) or None, exchange)
