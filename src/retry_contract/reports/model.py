"""The report as plain data: what every format shows, built once from a RunResult.

`build` makes one :class:`ReportView` of a finished run; the console, JUnit, JSON, HTML and Markdown
reports each read that view and nothing else, so a fact (a count, a reason the run stopped, a fault)
has one name and one value in every format. `verdict_text`, `requirement_rows` and `failure_cards`
build its parts.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from retry_contract.baseline import signature_of
from retry_contract.reports import exercised
from retry_contract.reports.curl_script import curl
from retry_contract.reports.replay_record import RunFacts, abbreviated, session_item_shown
from retry_contract.reports.reproduction import reproduce
from retry_contract.requirements import Level
from retry_contract.results import FuzzStats, RunResult
from retry_contract.secrets_registry import SecretRegistry
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
        ordered = shown_order(result, requirement_result.failures)
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


def shown_order(result: RunResult, failures: list[Observation]) -> list[Observation]:
    """A requirement's failures in the report's order: new ones first, then the baseline's known ones
    (those shown, a few of each requirement, are the ones that fail the run)."""
    return sorted(failures, key=result.accepts)


def _signatures(result: RunResult, failures: list[Observation]) -> list[dict[str, Any]]:
    counted: dict[Any, dict[str, Any]] = {}
    for observation in failures:
        found = signature_of(observation)
        entry = counted.setdefault(
            found, {**found.as_json(), "count": 0, "accepted": result.accepts(observation)}
        )
        entry["count"] += 1
    return list(counted.values())


def replay_command(json_report: Path, failure: int, base_url: str | None = None) -> str:
    """The command that sends failure number `failure` of the JSON report at `json_report` again:
    against `base_url` when the run had one (without any user or password it may hold), else
    against what the record says (a fresh embedded mock)."""
    words = ["retry-contract", "replay", str(json_report), "--failure", str(failure)]
    if base_url:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        words += ["--base-url", urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))]
    return shlex.join(words)


@dataclass(frozen=True)
class FaultLine:
    """A request that never got a judgeable answer (an infrastructure fault, not a failure)."""

    method: str
    url: str
    origin: str
    fault: str | None


@dataclass(frozen=True)
class DisagreementLine:
    """Schemathesis and openapi-core judged one body differently."""

    request: str
    status: int | None
    schemathesis: str
    openapi_core: str
    reproduce: str


@dataclass(frozen=True)
class FailureCard:
    """The failures found on one request and its response, shown once with every requirement it
    failed: two judges failing the same exchange are one thing to look at, not two. Failures seen on
    no single request (a scenario's conclusion) are a card each."""

    # The failures (as failure_data gives them), in the report's order; the first one leads.
    failures: tuple[dict[str, Any], ...]
    # The observation behind each failure, same order: what a format shows of the exchange itself.
    observations: tuple[Observation, ...]
    # The command that sends the card's request again, when the JSON report holds its record.
    replay: str | None

    @property
    def number(self) -> int:
        """The card's failure number: its first failure's, the one `replay --failure` takes."""
        return int(self.failures[0]["number"])

    @property
    def lead(self) -> dict[str, Any]:
        return self.failures[0]

    @property
    def requirements(self) -> list[str]:
        """The requirements the exchange failed, each once, in the report's order."""
        return list(dict.fromkeys(str(f["requirement"]) for f in self.failures))


@dataclass(frozen=True)
class ReportView:
    """Everything a report shows of a run, built once (`build`); every format reads only this."""

    secrets: SecretRegistry
    verdict: str
    coverage: str
    exit_code: ExitCode
    strict: bool
    require_all_must: bool
    target: str
    project: str
    seed: int
    fuzz: bool
    max_examples: int
    concurrency: int
    seconds: float
    requests_sent: int
    spec_sha256: str
    tool_versions: Mapping[str, str]
    phases: dict[str, Any]
    # Why the run ended before judging everything (fail-fast, the request budget); "" when it did not.
    stopped_early: str
    # Why the run could not finish; "" when it did.
    incomplete: str
    fuzzing: FuzzStats
    faults: tuple[FaultLine, ...]
    disagreements: tuple[DisagreementLine, ...]
    successful_retries_by_fixture_shape: dict[str, int]
    # What the run exercised (exercised.build), and how deep it went in one line (exercised.depth_text).
    exercised: dict[str, Any]
    depth: str
    # One per requirement, in the catalogue's order, each with its first failures (requirement_rows).
    rows: list[dict[str, Any]]
    # Every failure shown in `rows`, one card per request and response, in the report's order.
    cards: tuple[FailureCard, ...]
    notes: tuple[str, ...]
    cleanup_problems: tuple[str, ...]
    # What the baseline (--baseline) did to the run, "" without one; and its figures for the JSON report.
    baseline_text: str = ""
    baseline: dict[str, Any] | None = None

    @property
    def conformant(self) -> bool:
        return self.exit_code is ExitCode.CONFORMANT

    def card_of(self, number: int) -> FailureCard:
        """The card that shows failure number `number`."""
        return next(card for card in self.cards if any(f["number"] == number for f in card.failures))


def _same_exchange_key(observation: Observation) -> object:
    """What makes two failures one card: the same request and the same response."""
    exchange = observation.exchange
    if exchange is None:
        return observation
    return (
        exchange.method,
        exchange.url,
        exchange.request_body,
        exchange.status,
        exchange.response_body,
        exchange.transport_error,
    )


def failure_cards(
    result: RunResult, rows: list[dict[str, Any]], replay_report: Path | None
) -> tuple[FailureCard, ...]:
    """The failures of `rows`, grouped by request and response, in the order they first appear."""
    grouped: dict[object, list[tuple[dict[str, Any], Observation]]] = {}
    # requirement_rows follows the ledger's order and keeps its first failures in order.
    for row, requirement_result in zip(rows, result.ledger.results.values(), strict=True):
        observations = shown_order(result, requirement_result.failures)[: len(row["failures"])]
        for failure, observation in zip(row["failures"], observations, strict=True):
            grouped.setdefault(_same_exchange_key(observation), []).append((failure, observation))
    base_url = result.options.base_url
    return tuple(
        FailureCard(
            failures=tuple(failure for failure, _ in members),
            observations=tuple(observation for _, observation in members),
            replay=None
            if replay_report is None or "replay" not in members[0][0]
            else result.secrets.redact(replay_command(replay_report, members[0][0]["number"], base_url)),
        )
        for members in grouped.values()
    )


def build(result: RunResult, replay_report: Path | None = None) -> ReportView:
    """The view every report reads. `replay_report`: where the JSON report (which holds the replay
    records) is written, when it is; the cards then carry the command that replays them."""
    options = result.options
    rows = requirement_rows(result)
    return ReportView(
        secrets=result.secrets,
        verdict=verdict_text(result),
        coverage=coverage_text(result),
        exit_code=result.exit_code,
        strict=options.strict,
        require_all_must=options.require_all_must,
        target=result.target,
        project=options.project,
        seed=options.seed,
        fuzz=options.fuzz,
        max_examples=options.max_examples,
        concurrency=options.concurrency,
        seconds=result.seconds,
        requests_sent=result.requests_sent,
        spec_sha256=result.spec_sha256,
        tool_versions=dict(result.tool_versions),
        phases=result.timer.as_json(),
        stopped_early=result.stop_reason,
        incomplete=result.incomplete,
        fuzzing=result.fuzz,
        faults=tuple(FaultLine(e.method, e.url, e.origin, e.fault) for e in result.ledger.faults),
        disagreements=tuple(
            DisagreementLine(
                request=f"{d.exchange.method} {d.exchange.url}",
                status=d.exchange.status,
                schemathesis=d.schemathesis_says,
                openapi_core=d.openapi_core_says,
                reproduce=curl(d.exchange, result.secrets),
            )
            for d in result.ledger.disagreements
        ),
        successful_retries_by_fixture_shape=dict(sorted(result.fixture_shapes_retried.items())),
        exercised=exercised.build(result),
        depth=exercised.depth_text(result),
        rows=rows,
        cards=failure_cards(result, rows, replay_report),
        notes=tuple(result.ledger.notes),
        cleanup_problems=tuple(result.cleanup_problems),
        baseline_text=baseline_text(result),
        baseline=_baseline(result),
    )


def _baseline(result: RunResult) -> dict[str, Any] | None:
    """The known failures given (`--baseline`): how many findings were new and how many known, and
    the entries nothing matched (fixed since: the file may drop them)."""
    baseline = result.options.baseline
    if baseline is None:
        return None
    failures = [failure for row in result.ledger.results.values() for failure in row.failures]
    accepted = accepted_count(result)
    return {
        "source": baseline.source,
        "entries": len(baseline.entries),
        "new_findings": len(failures) - accepted,
        "accepted_findings": accepted,
        "unmatched_entries": [entry.describe() for entry in baseline.unmatched(failures)],
    }
