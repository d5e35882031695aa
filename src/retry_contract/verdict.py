"""Observations, outcomes and the ledger that turns many observations into one verdict.

Checks emit observations; reporters read the ledger. Neither knows about the other.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from retry_contract.exchange import Exchange
from retry_contract.requirements import BY_ID, CATALOGUE, Level, Requirement


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_COVERED = "not covered"


class ExitCode(IntEnum):
    CONFORMANT = 0
    VIOLATIONS = 1
    COULD_NOT_RUN = 2


@dataclass(frozen=True, slots=True)
class Observation:
    """One judgement of one requirement, usually on one exchange."""

    requirement: str
    passed: bool
    message: str = ""
    exchange: Exchange | None = None
    # Which judge made it: a custom check, openapi-core, a Schemathesis check, a scenario.
    judge: str = ""
    # A finding weaker than its requirement's level (SHOULD for a MUST), where the contract says so:
    # a 413/414/431 that a front-end proxy answered with a page of its own. None: the requirement's.
    level: Level | None = None


# Whether a failed observation is a known failure the run accepts (a baseline's): it is reported,
# but not counted by the exit status.
Accepted = Callable[[Observation], bool]


def finding_level(observation: Observation) -> Level:
    """The level a failed observation counts at: its requirement's, or the weaker one it carries."""
    own = BY_ID[observation.requirement].level
    return Level.SHOULD if Level.SHOULD in (own, observation.level) else Level.MUST


def failing_level_of(failures: Iterable[Observation]) -> Level | None:
    """The level failures count at together: MUST when any of them does, SHOULD when all are weaker;
    None without failures."""
    levels = {finding_level(failure) for failure in failures}
    if not levels:
        return None
    return Level.MUST if Level.MUST in levels else Level.SHOULD


def _none_accepted(observation: Observation) -> bool:
    return False


@dataclass(slots=True)
class RequirementResult:
    requirement: Requirement
    judged: int = 0
    failures: list[Observation] = field(default_factory=list)
    # Why part of the requirement could not be judged (e.g. no read-only token). A requirement
    # judged only in part is not reported as passed, though a failure in the part judged counts.
    uncovered_reason: str = ""
    # Response statuses of the exchanges judged for it (None: no response arrived), each exchange once
    # per batch of judgements: the reader sees which answers the verdict rests on.
    statuses: Counter[int | None] = field(default_factory=Counter)

    @property
    def failing_level(self) -> Level | None:
        """The level the failures count at: MUST when any of them does, SHOULD when all are weaker
        (a MUST requirement broken only where the contract asks for a SHOULD); None without failures."""
        return failing_level_of(self.failures)

    def new_failures(self, accepted: Accepted = _none_accepted) -> list[Observation]:
        """The failures that are not known ones."""
        return [failure for failure in self.failures if not accepted(failure)]

    @property
    def outcome(self) -> Outcome:
        if self.failures:
            return Outcome.FAILED
        return Outcome.PASSED if self.judged and not self.uncovered_reason else Outcome.NOT_COVERED


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Schemathesis and openapi-core judged the same response differently."""

    exchange: Exchange
    schemathesis_says: str
    openapi_core_says: str


class Ledger:
    """Collects observations from every judge; safe to feed from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: dict[str, RequirementResult] = {r.id: RequirementResult(r) for r in CATALOGUE}
        self.disagreements: list[Disagreement] = []
        # Requests that never got a judgeable answer (network or gateway faults, after retries).
        self.faults: list[Exchange] = []
        # Things the run noticed that are neither judgements nor faults, for the reader of the report.
        self.notes: list[str] = []
        # Of the notes, those said once however many scenarios or requests gave cause (`note_once`).
        self._said_once: set[str] = set()
        self.exchanges = 0
        # Of the exchanges counted by `count_judged`: their response statuses (None: no response) and
        # the forms their requests went out in (request_forms), for the report's "what was exercised".
        self.statuses: Counter[int | None] = Counter()
        self.request_forms: Counter[str] = Counter()
        # Executions a retry succeeded on, once per success: what the report says was exercised.
        self.retried_executions: list[str] = []

    def record(self, observations: Iterable[Observation]) -> None:
        with self._lock:
            # Several judges may observe one requirement on one exchange: its status counts once.
            counted: set[tuple[str, int]] = set()
            for observation in observations:
                result = self.results[observation.requirement]
                result.judged += 1
                if not observation.passed:
                    result.failures.append(observation)
                exchange = observation.exchange
                if exchange is not None and (observation.requirement, id(exchange)) not in counted:
                    counted.add((observation.requirement, id(exchange)))
                    result.statuses[exchange.status] += 1

    def note_once(self, note: str) -> None:
        """A note about the run as a whole: kept once in this ledger and in any it is merged into."""
        with self._lock:
            if note not in self._said_once:
                self._said_once.add(note)
                self.notes.append(note)

    def merge(self, other: Ledger) -> None:
        """Add what another ledger collected (a scenario's, run concurrently) after what this one has:
        merging in a fixed order keeps the reports' content the same however the threads interleave."""
        with self._lock, other._lock:
            for requirement_id, result in other.results.items():
                mine = self.results[requirement_id]
                mine.judged += result.judged
                mine.failures += result.failures
                mine.uncovered_reason = mine.uncovered_reason or result.uncovered_reason
                mine.statuses.update(result.statuses)
            self.disagreements += other.disagreements
            self.faults += other.faults
            self.notes += [n for n in other.notes if n not in other._said_once or n not in self._said_once]
            self._said_once |= other._said_once
            self.exchanges += other.exchanges
            self.statuses.update(other.statuses)
            self.request_forms.update(other.request_forms)
            self.retried_executions += other.retried_executions

    def count_success(self, execution_id: str) -> None:
        with self._lock:
            self.retried_executions.append(execution_id)

    def count_judged(self, exchange: Exchange) -> None:
        """Count one judged exchange, with its status and the form its request went out in."""
        with self._lock:
            self.exchanges += 1
            self.statuses[exchange.status] += 1
            self.request_forms[exchange.request_form] += 1

    def fault(self, exchange: Exchange) -> None:
        with self._lock:
            self.faults.append(exchange)

    def disagree(self, disagreement: Disagreement) -> None:
        with self._lock:
            self.disagreements.append(disagreement)

    def not_covered_because(self, requirement: str, reason: str) -> None:
        with self._lock:
            self.results[requirement].uncovered_reason = reason

    def has_must_failure(self, accepted: Accepted = _none_accepted) -> bool:
        with self._lock:
            return any(
                failing_level_of(r.new_failures(accepted)) is Level.MUST for r in self.results.values()
            )

    def failed(self, level: Level, accepted: Accepted = _none_accepted) -> list[RequirementResult]:
        """The requirements whose failures, known ones left out, count at `level` (see
        `RequirementResult.failing_level`)."""
        return [r for r in self.results.values() if failing_level_of(r.new_failures(accepted)) is level]

    def exit_code(self, *, strict: bool, accepted: Accepted = _none_accepted) -> ExitCode:
        """Violations found are real even when faults kept part of the run from judging; known
        failures (`accepted`) are not counted."""
        if self.failed(Level.MUST, accepted) or (strict and self.failed(Level.SHOULD, accepted)):
            return ExitCode.VIOLATIONS
        if self.faults:
            return ExitCode.COULD_NOT_RUN
        return ExitCode.CONFORMANT
