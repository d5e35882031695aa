"""Turns the verdicts of Schemathesis's built-in checks into observations of requirements."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from retry_contract.checks.openapi import SpecIndex, status_requirement
from retry_contract.exchange import Exchange
from retry_contract.requirements import OPEN_METHODS
from retry_contract.verdict import Observation

JUDGE = "schemathesis"

_FIXED: dict[str, str] = {
    "not_a_server_error": "ROBUST",
    "response_headers_conformance": "HDR-REQUEST-ID",
    "missing_required_header": "AUTH-401",
    "ignored_auth": "AUTH-401",
    "unsupported_method": "METHOD",
    "allow_header_conformance": "METHOD",
}
SCHEMA_CHECK = "response_schema_conformance"


def _by_status(exchange: Exchange, failure: Any) -> str:
    return status_requirement(exchange)


def _content_type(exchange: Exchange, failure: Any) -> str:
    return "RESP-200" if (exchange.status or 0) < 400 else "ERR-ENVELOPE"


def _expected(exchange: Exchange, failure: Any) -> str:
    return exchange.expectation.requirement if exchange.expectation else status_requirement(exchange)


def requirement_for(check: str, exchange: Exchange, failure: Any, index: SpecIndex) -> str:
    if check in _FIXED:
        return _FIXED[check]
    if check == SCHEMA_CHECK:
        path = list(getattr(failure, "instance_path", []) or [])
        return index.requirement_at(exchange.status or 0, path)
    resolver: Callable[[Exchange, Any], str] = {
        "content_type_conformance": _content_type,
        "negative_data_rejection": _expected,
        "positive_data_acceptance": _expected,
    }.get(check, _by_status)
    return resolver(exchange, failure)


def observations(
    exchange: Exchange, failed_checks: Iterable[tuple[str, Any]], index: SpecIndex
) -> list[Observation]:
    """One failed observation per failed built-in check, under the requirement it breaks."""
    found = []
    for check, failure in failed_checks:
        requirement = requirement_for(check, exchange, failure, index)
        if requirement == "METHOD" and exchange.method.upper() in OPEN_METHODS:
            # Schemathesis expects 405 for every undeclared method; the contract leaves these open.
            continue
        message = f"{check}: {getattr(failure, 'title', '')}: {getattr(failure, 'message', failure)}".strip()
        found.append(Observation(requirement, False, message, exchange, JUDGE))
    return found
