"""The report as plain data: what every format shows, built once from a RunResult."""

from __future__ import annotations

from typing import Any

from retry_contract.reports.replay_record import RunFacts, abbreviated, session_item_shown
from retry_contract.reports.reproduction import reproduce
from retry_contract.requirements import Level
from retry_contract.runner import RunResult
from retry_contract.verdict import ExitCode, Observation, Outcome, finding_level

MAX_FAILURES_PER_REQUIREMENT = 5
_BODY_PREVIEW = 300


def verdict_text(result: RunResult) -> str:
    code = result.exit_code
    if code is ExitCode.VIOLATIONS:
        return "contract violations found" + (
            f" before the run could finish ({result.incomplete})" if result.incomplete else ""
        )
    if result.incomplete:
        return f"inconclusive: the run could not finish ({result.incomplete}); what was judged is reported"
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


def is_warning(result: RunResult, level: Level | None, outcome: Outcome) -> bool:
    """A failure at SHOULD level is a warning unless the run is strict."""
    return outcome is Outcome.FAILED and level is Level.SHOULD and not result.options.strict


def run_facts(result: RunResult) -> RunFacts:
    """What a reproduction needs to know of the run."""
    options = result.options
    credentials = options.credentials
    session_item = credentials.session_request() if credentials is not None else {"tokenExchange": True}
    return RunFacts(
        project=options.project,
        seed=options.seed,
        embedded_mock=options.base_url is None and options.app is None,
        base_url=options.base_url.rstrip("/") if options.base_url is not None else None,
        app=options.app,
        mock_defects=tuple(sorted(options.mock_defects)),
        mock_profile=options.mock_profile,
        fuzz=options.fuzz,
        max_examples=options.max_examples if options.fuzz else None,
        function_external_id=options.function_external_id,
        # Only the item's shape is kept: its secret values become placeholders at once.
        session_item=session_item_shown(session_item),
        # Sessions of client credentials are created with the client secret (credentials.py).
        client_credentials="clientSecret" in session_item,
    )


def failure_data(
    result: RunResult, observation: Observation, number: int = 0, facts: RunFacts | None = None
) -> dict[str, Any]:
    """One failure as the reports show it; `number` is its place in the report (1-based), the one
    `retry-contract replay --failure` takes."""
    exchange = observation.exchange
    data: dict[str, Any] = {
        "number": number,
        "requirement": observation.requirement,
        "message": observation.message,
        "judge": observation.judge,
        # The level the finding counts at: its requirement's, or SHOULD where the contract relaxes it.
        "level": finding_level(observation).value,
    }
    if exchange is not None:
        reproduction = reproduce(
            exchange,
            observation.requirement,
            number,
            facts or run_facts(result),
            result.secrets,
            observation.judge,
        )
        data.update(
            {
                "origin": exchange.origin,
                "request": f"{exchange.method} {abbreviated(exchange.url, result.secrets)}",
                "status": exchange.status,
                "response_body": result.secrets.excerpt(exchange.response_body, _BODY_PREVIEW),
                "credential": reproduction.record.credential,
                "request_form": exchange.request_form,
                "precondition": reproduction.precondition,
                "reproduce": reproduction.curl,
                "reproduce_steps": list(reproduction.steps),
                "reproduce_script": reproduction.script,
                "replay": reproduction.record.to_json(result.secrets),
            }
        )
        if exchange.transport_error:
            data["transport_error"] = exchange.transport_error
    return data


def requirement_rows(result: RunResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    facts = run_facts(result)
    numbered = 0
    for requirement_result in result.ledger.results.values():
        requirement = requirement_result.requirement
        outcome = requirement_result.outcome
        # Numbered across the whole report, in its order: `retry-contract replay --failure N`.
        failures = [
            failure_data(result, observation, numbered + index, facts)
            for index, observation in enumerate(requirement_result.failures[:MAX_FAILURES_PER_REQUIREMENT], 1)
        ]
        numbered += len(failures)
        rows.append(
            {
                "id": requirement.id,
                "level": requirement.level.value,
                "summary": requirement.summary,
                "outcome": outcome.value,
                "warning": is_warning(result, requirement_result.failing_level, outcome),
                "judged": requirement_result.judged,
                "failed": len(requirement_result.failures),
                "not_covered_reason": requirement_result.uncovered_reason,
                "failures": failures,
            }
        )
    return rows
