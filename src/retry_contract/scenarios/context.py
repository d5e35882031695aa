"""What a scenario may use: the client, the fixtures, and the ledger through the judges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retry_contract import execution_view
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.checks.retry_effects import retried
from retry_contract.exchange import RESENT_NOTE, Exchange, Expectation
from retry_contract.execution_view import Detailed
from retry_contract.provisioning import Provisioner
from retry_contract.request_forms import PLAIN, RequestForm
from retry_contract.retry_readings import read_after, settled_after_retry
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
    exchange.after = settled_after_retry(client, exchange.execution_id, before)
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
        form: RequestForm = PLAIN,
        extra_fields: Mapping[str, Any] | None = None,
        at_once_after: Detailed | None = None,
    ) -> Exchange:
        """Send a retry request (by default a well-formed one with a fresh nonce) and judge it.

        Every retry of an execution the suite can read is judged with readings of it: one taken here
        just before, and one after (`retry_readings.read_after`: once a success took effect, at once
        after a refusal), which the scenario finds in the answered exchange's `after`. A scenario
        cannot leave them out; the exceptions are decided here and said in the report's notes.
        `at_once_after`: this retry goes out at the same time as others of the same execution, all
        after that reading; a success is judged from it, a refusal cannot be (another may have
        succeeded meanwhile). `extra_fields` go beside `authentication`; `form` is how the JSON body
        goes on the wire.
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
        unreadable = self._unreadable(execution_id, project)
        if unreadable is not None:
            self.judge.ledger.note_once(f"retries {unreadable} were judged without readings of an execution")
        before = None if unreadable is not None else at_once_after or self.client.detailed(execution_id)
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
        if at_once_after is None or retried(exchange):
            read_after(self.client, exchange)
        else:
            self.judge.ledger.note_once(
                "refusals of retries sent at once with others of the same execution were not judged "
                "unchanged: another of them may have succeeded meanwhile"
            )
        self.judge.observe(exchange)
        return exchange

    def _unreadable(self, execution_id: str, project: str | None) -> str | None:
        """Why the execution a retry names cannot be read (what the exception is), or None."""
        if project is not None and project != self.client.project:
            return "in another project (the run's credentials read only its own)"
        if not self.client.knows(execution_id):
            return "of ids that name no execution the suite knows (malformed, made up or unknown)"
        return None

    retried = staticmethod(retried)

    def observe(self, requirement: str, problem: str | None, exchange: Exchange | None = None) -> None:
        self.judge.ledger.record([Observation(requirement, problem is None, problem or "", exchange, JUDGE)])
