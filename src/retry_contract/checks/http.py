"""Requirements every response of the retry endpoint is judged on, whatever the request was."""

from __future__ import annotations

from typing import Any

from retry_contract.exchange import Exchange, brief
from retry_contract.secrets_registry import head
from retry_contract.verdict import Observation

JUDGE = "custom check"
_MIB = 1024 * 1024


def _observe(requirement: str, problem: str | None, exchange: Exchange) -> Observation:
    return Observation(requirement, problem is None, problem or "", exchange, JUDGE)


def _has_body(exchange: Exchange) -> bool:
    """Whether the answer's body is there to judge: an answer to HEAD never carries one (RFC 9110
    9.3.2), and one over the cap was not read (`body_within_cap` judges that)."""
    return exchange.method.upper() != "HEAD" and exchange.body_over_cap is None


def robust(exchange: Exchange) -> list[Observation]:
    """ROBUST: no 5xx, no dropped connection, no non-JSON error body."""
    if exchange.status is None:
        problem: str | None = f"no response: {exchange.transport_error or 'connection dropped'}"
    elif exchange.status >= 500:
        problem = f"server error {exchange.status}"
    elif exchange.status >= 400 and _has_body(exchange) and exchange.json_problem() is not None:
        problem = (
            f"{exchange.status} error body is not JSON ({exchange.json_problem()}): "
            f"{head(exchange.response_body, 80)!r}"
        )
    else:
        problem = None
    return [_observe("ROBUST", problem, exchange)]


def _envelope_problem(exchange: Exchange, body: Any) -> str | None:
    if exchange.content_type != "application/json":
        content_type = exchange.header("content-type")
        return f"{exchange.status} error has Content-Type {content_type!r}, not application/json"
    if exchange.json_problem() is not None:
        return f"{exchange.status} error body is not JSON: {exchange.json_problem()}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return (
            f'{exchange.status} error body is not {{"error": {{...}}}}: {head(exchange.response_body, 120)!r}'
        )
    error = body["error"]
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        return f"error.code is {brief(code)}, not an integer"
    if not isinstance(message, str):
        return f"error.message is {brief(message)}, not a string"
    for optional in ("missing", "duplicated"):
        if optional in error and not isinstance(error[optional], list):
            return f"error.{optional} is {brief(error[optional])}, not an array"
    return None


def error_envelope(exchange: Exchange) -> list[Observation]:
    """ERR-ENVELOPE and ERR-CODE, for 4xx and 5xx responses."""
    if exchange.status is None or exchange.status < 400 or not _has_body(exchange):
        return []
    body = exchange.json()
    problem = _envelope_problem(exchange, body)
    observations = [_observe("ERR-ENVELOPE", problem, exchange)]
    if problem is None:
        code = body["error"]["code"]
        mismatch = (
            None
            if code == exchange.status
            else f"error.code {brief(code)} differs from HTTP status {exchange.status}"
        )
        observations.append(_observe("ERR-CODE", mismatch, exchange))
    return observations


def request_id(exchange: Exchange) -> list[Observation]:
    """HDR-REQUEST-ID on every response."""
    if exchange.status is None:
        return []
    missing = None if (exchange.header("x-request-id") or "").strip() else "no X-Request-ID header"
    return [_observe("HDR-REQUEST-ID", missing, exchange)]


def _mentions_missing_id(exchange: Exchange) -> bool:
    body = exchange.json()
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    missing = body["error"].get("missing")
    return (
        isinstance(missing, list)
        and exchange.execution_id is not None
        and exchange.execution_id in str(missing)
    )


def expected_status(exchange: Exchange) -> list[Observation]:
    """The requirement a request was built for decides which statuses are right."""
    expectation = exchange.expectation
    if expectation is None or exchange.status is None:
        return []
    status = exchange.status
    allowed = status in expectation.statuses or (
        # STATE-404 tolerates the Cognite bulk-API style: 400 naming the id in error.missing.
        expectation.requirement == "STATE-404" and status == 400 and _mentions_missing_id(exchange)
    )
    expected = ", ".join(str(s) for s in sorted(expectation.statuses))
    problem = (
        None
        if allowed
        else f"answered {status}, expected {expected}"
        + (f" ({expectation.note})" if expectation.note else "")
    )
    observations = [_observe(expectation.requirement, problem, exchange)]
    if expectation.requirement == "METHOD" and status == 405:
        allow = {m.strip().upper() for m in (exchange.header("allow") or "").split(",")}
        observations.append(
            _observe("METHOD", None if "POST" in allow else "405 without `Allow: POST`", exchange)
        )
    return observations


def body_within_cap(exchange: Exchange) -> list[Observation]:
    """An answer larger than the client reads is a finding of what the request was built for (its
    body, cut at the cap, is judged by nothing here that needs it whole)."""
    if exchange.body_over_cap is None:
        return []
    requirement = exchange.expectation.requirement if exchange.expectation is not None else "ROBUST"
    limit = f"{exchange.body_over_cap / _MIB:g} MiB"
    return [_observe(requirement, f"answer larger than {limit}, not read", exchange)]


HTTP_CHECKS = (robust, error_envelope, request_id, expected_status, body_within_cap)
