"""The report as plain data: what every format shows, built once from a RunResult."""

from __future__ import annotations

from typing import Any

from retry_contract.baseline import signature_of
from retry_contract.reports.replay_record import RunFacts, abbreviated, session_item_shown
from retry_contract.reports.reproduction import reproduce
from retry_contract.requirements import Level
from retry_contract.runner import RunResult
from retry_contract.verdict import ExitCode, Observation, Outcome, failing_level_of, finding_level

MAX_FAILURES_PER_REQUIREMENT = 5
_BODY_PREVIEW = 300


def accepted_count(result: RunResult) -> int:
    """How many failures of the run its baseline accepts as known."""
    return sum(
        1 for row in result.ledger.results.values() for failure in row.failures if result.accepts(failure)
    )


def baseline_text(result: RunResult) -> str:
    """What the baseline did to the run, or "" without one."""
    baseline = result.options.baseline
    if baseline is None:
        return ""
    total = sum(len(row.failures) for row in result.ledger.results.values())
    accepted = accepted_count(result)
    return f"baseline {baseline.source}: {total - accepted} new findings, {accepted} known ones accepted"


def verdict_text(result: RunResult) -> str:
    code = result.exit_code
    if code is ExitCode.VIOLATIONS:
        found = "new contract violations found" if result.options.baseline else "contract violations found"
        return found + (f" before the run could finish ({result.incomplete})" if result.incomplete else "")
    if result.incomplete:
        return f"inconclusive: the run could not finish ({result.incomplete}); what was judged is reported"
    if code is ExitCode.COULD_NOT_RUN and result.ledger.faults:
        return "inconclusive: infrastructure faults kept part of the run from judging"
    unjudged = result.unjudged_must
    listed = ", ".join(unjudged)
    if code is ExitCode.COULD_NOT_RUN:
        return f"inconclusive (--require-all-must): {len(unjudged)} MUST requirements not covered ({listed})"
    accepted = accepted_count(result)
    known = f" ({accepted} known failures accepted by the baseline)" if accepted else ""
    if unjudged:
        found = "no new violations found" if known else "no violations found"
        return f"{found}{known}, but {len(unjudged)} MUST requirements not covered ({listed})"
    return f"no new violations{known}" if known else "conformant"


def coverage_text(result: RunResult) -> str:
    """How much of the contract the verdict rests on."""
    must = [r for r in result.ledger.results.values() if r.requirement.level is Level.MUST]
    return f"{len(must) - len(result.unjudged_must)} of {len(must)} MUST requirements judged"


def is_warning(result: RunResult, level: Level | None, outcome: Outcome) -> bool:
    """A failure at SHOULD level is a warning unless the run is strict."""
    return outcome is Outcome.FAILED and level is Level.SHOULD and not result.options.strict


# The outcome a row shows: its outcome, or "warning" (a SHOULD failure, not strict), or "accepted"
# (every failure a known one of the baseline).
ACCEPTED = "accepted"
WARNING = "warning"


def shown_outcome(row: dict[str, Any]) -> str:
    if row["failed"] and row["accepted_failures"] == row["failed"]:
        return ACCEPTED
    return WARNING if row["warning"] else str(row["outcome"])


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
        # What identifies the finding across runs, and whether the run's baseline knows it.
        "signature": signature_of(observation).as_json(),
        "accepted": result.accepts(observation),
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
        # New failures first: those shown (a few of each requirement) are the ones that fail the run.
        ordered = sorted(requirement_result.failures, key=result.accepts)
        accepted = sum(1 for observation in ordered if result.accepts(observation))
        # Numbered across the whole report, in its order: `retry-contract replay --failure N`.
        failures = [
            failure_data(result, observation, numbered + index, facts)
            for index, observation in enumerate(ordered[:MAX_FAILURES_PER_REQUIREMENT], 1)
        ]
        numbered += len(failures)
        rows.append(
            {
                "id": requirement.id,
                "level": requirement.level.value,
                "summary": requirement.summary,
                "outcome": outcome.value,
                "warning": is_warning(
                    result, failing_level_of(requirement_result.new_failures(result.accepts)), outcome
                ),
                "judged": requirement_result.judged,
                "failed": len(requirement_result.failures),
                "accepted_failures": accepted,
                "not_covered_reason": requirement_result.uncovered_reason,
                "failures": failures,
                # Every distinct signature of its failures, shown or not: what a later run given this
                # report as its --baseline accepts.
                "failure_signatures": _signatures(result, ordered),
            }
        )
    return rows


def _signatures(result: RunResult, failures: list[Observation]) -> list[dict[str, Any]]:
    counted: dict[Any, dict[str, Any]] = {}
    for observation in failures:
        found = signature_of(observation)
        entry = counted.setdefault(
            found, {**found.as_json(), "count": 0, "accepted": result.accepts(observation)}
        )
        entry["count"] += 1
    return list(counted.values())
