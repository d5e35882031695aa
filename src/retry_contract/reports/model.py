"""The report as plain data: what every format shows, built once from a RunResult."""

from __future__ import annotations

from typing import Any

from retry_contract.reports.reproduction import abbreviated, curl
from retry_contract.requirements import Level
from retry_contract.runner import RunResult
from retry_contract.verdict import ExitCode, Observation, Outcome

MAX_FAILURES_PER_REQUIREMENT = 5
_BODY_PREVIEW = 300


def verdict_text(result: RunResult) -> str:
    code = result.exit_code
    if code is ExitCode.VIOLATIONS:
        return "contract violations found"
    if code is ExitCode.COULD_NOT_RUN and result.ledger.faults:
        return "inconclusive: infrastructure faults kept part of the run from judging"
    unjudged = result.unjudged_must
    listed = ", ".join(unjudged)
    if code is ExitCode.COULD_NOT_RUN:
        return f"inconclusive (--require-all-must): {len(unjudged)} MUST requirements not covered ({listed})"
    if unjudged:
        return f"no violations found, but {len(unjudged)} MUST requirements not covered ({listed})"
    return "conformant"


def coverage_text(result: RunResult) -> str:
    """How much of the contract the verdict rests on."""
    must = [r for r in result.ledger.results.values() if r.requirement.level is Level.MUST]
    return f"{len(must) - len(result.unjudged_must)} of {len(must)} MUST requirements judged"


def is_warning(result: RunResult, level: Level, outcome: Outcome) -> bool:
    """A SHOULD failure is a warning unless the run is strict."""
    return outcome is Outcome.FAILED and level is Level.SHOULD and not result.options.strict


def failure_data(result: RunResult, observation: Observation) -> dict[str, Any]:
    exchange = observation.exchange
    data: dict[str, Any] = {"message": observation.message, "judge": observation.judge}
    if exchange is not None:
        data.update(
            {
                "origin": exchange.origin,
                "request": f"{exchange.method} {abbreviated(exchange.url)}",
                "status": exchange.status,
                "response_body": exchange.response_body[:_BODY_PREVIEW].decode("utf-8", "replace"),
                "reproduce": curl(exchange, result.secrets),
            }
        )
        if exchange.transport_error:
            data["transport_error"] = exchange.transport_error
    return data


def requirement_rows(result: RunResult) -> list[dict[str, Any]]:
    rows = []
    for requirement_result in result.ledger.results.values():
        requirement = requirement_result.requirement
        outcome = requirement_result.outcome
        rows.append(
            {
                "id": requirement.id,
                "level": requirement.level.value,
                "summary": requirement.summary,
                "outcome": outcome.value,
                "warning": is_warning(result, requirement.level, outcome),
                "judged": requirement_result.judged,
                "failed": len(requirement_result.failures),
                "not_covered_reason": requirement_result.uncovered_reason,
                "failures": [
                    failure_data(result, o)
                    for o in requirement_result.failures[:MAX_FAILURES_PER_REQUIREMENT]
                ],
            }
        )
    return rows
