"""What a scenario may use: the client, the fixtures, and the ledger through the judges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retry_contract import execution_view
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.exchange import Exchange, Expectation
from retry_contract.provisioning import Provisioner
from retry_contract.request_forms import PLAIN, RequestForm
from retry_contract.verdict import Observation

JUDGE = "scenario"
_DEFAULT: Any = object()


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
        self.judge.observe(exchange)
        return exchange

    def observe(self, requirement: str, problem: str | None, exchange: Exchange | None = None) -> None:
        self.judge.ledger.record([Observation(requirement, problem is None, problem or "", exchange, JUDGE)])

    def check_unchanged(
        self, requirement: str, execution_id: str, before: Mapping[str, Any], exchange: Exchange
    ) -> None:
        """A refused retry must leave the execution exactly as it was: status and attempts."""
        problems = execution_view.changes(before, self.client.detailed(execution_id))
        self.observe(requirement, "; ".join(problems) or None, exchange)
