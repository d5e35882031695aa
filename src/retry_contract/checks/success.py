"""Requirements of a successful retry that no schema can state: they relate the response to the
request and to the execution as it was before."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from retry_contract.domain import RETRYABLE_EXECUTION_STATUSES, ExecutionStatus
from retry_contract.exchange import Exchange, brief
from retry_contract.execution_view import text_at
from retry_contract.secrets_registry import head
from retry_contract.verdict import Observation

JUDGE = "custom check"
UNCHANGED_FIELDS = ("id", "workflowExternalId", "version", "createdTime", "metadata")


def _observe(requirement: str, problem: str | None, exchange: Exchange) -> Observation:
    return Observation(requirement, problem is None, problem or "", exchange, JUDGE)


def _is_successful_retry(exchange: Exchange) -> bool:
    return exchange.method == "POST" and exchange.status is not None and 200 <= exchange.status < 300


def success_response(exchange: Exchange) -> list[Observation]:
    if not _is_successful_retry(exchange):
        return []
    if exchange.status != 200:
        return [_observe("RESP-200", f"a successful retry answered {exchange.status}, not 200", exchange)]
    body = exchange.json()
    if exchange.content_type != "application/json" or not isinstance(body, dict):
        content_type = exchange.header("content-type")
        why = f" (not JSON: {exchange.json_problem()})" if exchange.json_problem() else ""
        problem = f"200 with Content-Type {content_type!r} and body {head(exchange.response_body, 80)!r}{why}"
        return [_observe("RESP-200", problem, exchange)]
    observations = [_observe("RESP-200", None, exchange)]
    observations += _same_id(exchange, body)
    observations += _running(exchange, body)
    if exchange.before is not None:
        observations += _unchanged(exchange, body, exchange.before)
        observations += _was_retryable(exchange, exchange.before)
    return observations


def _same_id(exchange: Exchange, body: Mapping[str, Any]) -> list[Observation]:
    if exchange.execution_id is None:
        return []
    got = body.get("id")
    problem = (
        None
        if got == exchange.execution_id
        else f"id {brief(got)} is not the path id {brief(exchange.execution_id)}"
    )
    return [_observe("RESP-ID", problem, exchange)]


def _running(exchange: Exchange, body: Mapping[str, Any]) -> list[Observation]:
    status = body.get("status")
    problem = (
        None if status == ExecutionStatus.RUNNING else f"status after a successful retry is {brief(status)}"
    )
    return [_observe("RESP-STATUS", problem, exchange)]


def _unchanged(exchange: Exchange, body: Mapping[str, Any], before: Mapping[str, Any]) -> list[Observation]:
    changed = [
        f"{name}: {brief(before.get(name))} -> {brief(body.get(name))}"
        for name in UNCHANGED_FIELDS
        if before.get(name) != body.get(name)
    ]
    return [_observe("RESP-UNCHANGED", "; ".join(changed) or None, exchange)]


def _was_retryable(exchange: Exchange, before: Mapping[str, Any]) -> list[Observation]:
    status = text_at(before, "status")
    problem = (
        None
        if status in RETRYABLE_EXECUTION_STATUSES
        else f"retried an execution that was {brief(before.get('status'))}"
    )
    return [_observe("STATE-RETRYABLE", problem, exchange)]


SUCCESS_CHECKS = (success_response,)
