"""The kill matrix: the suite against the faithful mock and against each defect of the mock.

A defect is *caught* when the run fails at least one requirement, and caught *by its own check*
when one of the requirements it breaks is among them. Runs go to a pool of processes, each with its
own embedded mock, so the matrix scales with the cores.

Past one machine's cores the matrix is sharded: `partition` deals its runs, in catalogue order, to N
shards; each shard's JSON says which shard it is and which runs of which matrix it holds, and
`merge_shards` puts the shards back together into the matrix an unsharded run writes, refusing any
set of shards that is not exactly one whole matrix.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from retry_contract.errors import RetryContractError
from retry_contract.requirements import Level
from retry_contract.results import SHARD_KEY, MatrixRow, MatrixShard, MatrixView
from retry_contract.run_settings import MATRIX_EXPLORE
from retry_contract.runner import MOCK_PROJECT, CouldNotRun, RunOptions, run

FAITHFUL = "(faithful mock)"
# Faithful shapes of server the matrix also runs, expecting no failure: a failure there is a false alarm.
FAITHFUL_PROFILES = ("classic", "recorded")

_T = TypeVar("_T")


@dataclass(frozen=True)
class MatrixSettings:
    seed: int
    max_examples: int
    fail_fast: bool
    explore: int = MATRIX_EXPLORE


@dataclass
class MutantOutcome:
    defect: str
    description: str
    breaks: tuple[str, ...]
    failed_must: list[str] = field(default_factory=list)
    failed_should: list[str] = field(default_factory=list)
    # How many failed judgements each failed requirement had: which check caught the defect, how often.
    failures_by_requirement: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def failed(self) -> list[str]:
        return self.failed_must + self.failed_should

    @property
    def caught(self) -> bool:
        return bool(self.failed)

    @property
    def caught_by_own_check(self) -> bool:
        return bool(set(self.failed) & set(self.breaks))

    @property
    def is_faithful(self) -> bool:
        return self.defect.startswith(FAITHFUL)


def faithful_label(profile: str) -> str:
    return FAITHFUL if profile == FAITHFUL_PROFILES[0] else f"{FAITHFUL} {profile}"


# One run of the matrix: a defect on the classic mock, or (None, profile) a faithful profile.
Target = tuple[str | None, str]


def matrix_targets(defects: Sequence[str]) -> list[Target]:
    """Every run of the matrix, in catalogue order: the faithful profiles first, then the defects."""
    targets: list[Target] = [(None, profile) for profile in FAITHFUL_PROFILES]
    return targets + [(defect, FAITHFUL_PROFILES[0]) for defect in defects]


def target_name(target: Target) -> str:
    """The name a run has in the reports (and in a shard's list of runs)."""
    defect, profile = target
    return defect or faithful_label(profile)


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: the index must be between 1 and the count")

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if match is None:
            raise ValueError(f"{text!r} is not a shard: give INDEX/COUNT, e.g. 2/4")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def partition(items: Sequence[_T], count: int) -> list[list[_T]]:
    """Deal `items` to `count` shards by position: item i goes to shard i mod count.

    Dealt rather than cut in blocks: the catalogue lists the defects family by family, and the costly
    runs sit together (the SEM family waits on executions; its two defects that start nothing wait
    a minute or more each), so dealing spreads any stretch of the catalogue over the shards, where
    blocks would give one shard all of them; the faithful runs, first in the catalogue, go to
    different shards (given two or more). Shard sizes differ by at most one.
    """
    if count < 1:
        raise ValueError(f"cannot partition into {count} shards")
    return [list(items[start::count]) for start in range(count)]


def shard_of(items: Sequence[_T], shard: Shard) -> list[_T]:
    return partition(items, shard.count)[shard.index - 1]


@dataclass(frozen=True)
class ShardPlan:
    """What a shard's JSON records: which shard it is, of which matrix (every run, in order)."""

    shard: Shard
    matrix: tuple[str, ...]

    @property
    def runs(self) -> list[str]:
        return shard_of(self.matrix, self.shard)

    def as_json(self) -> dict[str, object]:
        return {
            "index": self.shard.index,
            "count": self.shard.count,
            "runs": self.runs,
            "matrix": list(self.matrix),
        }


def run_one(
    defect: str | None, settings: MatrixSettings, profile: str = FAITHFUL_PROFILES[0]
) -> MutantOutcome:
    """One run of the suite against the embedded mock with at most one defect switched on."""
    from cdf_workflows_mock.defects import BY_NAME

    known = BY_NAME.get(defect or "")
    outcome = MutantOutcome(
        defect=defect or faithful_label(profile),
        description=known.description if known else f"no defect, {profile} profile",
        breaks=known.breaks if known else (),
    )
    options = RunOptions(
        base_url=None,
        project=MOCK_PROJECT,
        credentials=None,
        seed=settings.seed,
        max_examples=settings.max_examples,
        fail_fast=settings.fail_fast,
        explore=settings.explore,
        mock_defects=frozenset({defect}) if defect else frozenset(),
        mock_profile=profile,
    )
    started = time.perf_counter()
    try:
        result = run(options)
    except CouldNotRun as error:
        outcome.error = str(error)
    else:
        for requirement_result in result.ledger.results.values():
            if requirement_result.failures:
                level = requirement_result.failing_level
                target = outcome.failed_must if level is Level.MUST else outcome.failed_should
                target.append(requirement_result.requirement.id)
                outcome.failures_by_requirement[requirement_result.requirement.id] = len(
                    requirement_result.failures
                )
        outcome.requests = result.requests_sent
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_matrix(
    defects: Sequence[str],
    settings: MatrixSettings,
    workers: int,
    on_outcome: Callable[[MutantOutcome], None] = lambda _: None,
    shard: Shard | None = None,
) -> list[MutantOutcome]:
    """Run the matrix of `defects` (the faithful profiles too), or only `shard` of its runs."""
    targets = matrix_targets(defects)
    if shard is not None:
        targets = shard_of(targets, shard)
    outcomes: list[MutantOutcome] = []
    # spawn, not fork: a forked child would inherit the parent's threads' locks mid-use.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, defect, settings, profile) for defect, profile in targets]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            on_outcome(outcome)
    order = {target_name(target): index for index, target in enumerate(targets)}
    return sorted(outcomes, key=lambda o: order[o.defect])


def matrix_passes(outcomes: Sequence[MutantOutcome]) -> bool:
    """The faithful mock passes cleanly and every defect is caught."""
    faithful = [o for o in outcomes if o.is_faithful]
    defects = [o for o in outcomes if not o.is_faithful]
    return all(not o.caught and o.error is None for o in faithful) and all(
        o.caught and o.error is None for o in defects
    )


def matrix_problems(outcomes: Sequence[MutantOutcome]) -> list[str]:
    """One line per run that is not as it should be: a run that could not run, a false alarm, a miss."""
    problems = []
    for outcome in outcomes:
        if outcome.error:
            problems.append(f"{outcome.defect}: could not run: {outcome.error}")
        elif outcome.is_faithful and outcome.caught:
            problems.append(f"{outcome.defect}: false alarm on {', '.join(outcome.failed)}")
        elif not outcome.is_faithful and not outcome.caught:
            problems.append(f"{outcome.defect}: missed")
    return problems


def matrix_tally(outcomes: Sequence[MutantOutcome]) -> str:
    defects = [o for o in outcomes if not o.is_faithful]
    return (
        f"{sum(o.caught for o in defects)}/{len(defects)} defects caught "
        f"({sum(o.caught_by_own_check for o in defects)} by their own requirement's check)"
    )


def matrix_view(
    outcomes: Sequence[MutantOutcome],
    settings: MatrixSettings,
    wall: float,
    plan: ShardPlan | None = None,
) -> MatrixView:
    """The matrix as its reports show it (reports/kill_matrix.py writes them); a shard's (`plan`)
    also says which shard it is."""
    defects = [o for o in outcomes if not o.is_faithful]
    summary = {
        "passes": matrix_passes(outcomes),
        "defects": len(defects),
        "caught": sum(o.caught for o in defects),
        "caught_by_own_check": sum(o.caught_by_own_check for o in defects),
        "false_alarms_on_faithful": [f"{o.defect}: {f}" for o in outcomes if o.is_faithful for f in o.failed],
        "faithful_profiles": list(FAITHFUL_PROFILES),
        "wall_seconds": round(wall, 1),
        "run_seconds_total": round(sum(o.seconds for o in outcomes), 1),
        "requests_total": sum(o.requests for o in outcomes),
        **asdict(settings),
    }
    rows = tuple(
        MatrixRow(
            record={
                **asdict(o),
                "caught": o.caught,
                "caught_by_own_check": o.caught_by_own_check,
                "seconds": round(o.seconds, 2),
            },
            faithful=o.is_faithful,
        )
        for o in outcomes
    )
    shard = None
    if plan is not None:
        shard = MatrixShard(
            plan.shard.index, plan.shard.count, len(plan.runs), len(plan.matrix), plan.as_json()
        )
    return MatrixView(summary=summary, rows=rows, shard=shard)


class MergeError(RetryContractError, ValueError):
    """The shards given are not exactly one whole matrix; the message is one line saying why."""


@dataclass(frozen=True)
class MergedMatrix:
    outcomes: list[MutantOutcome]
    settings: MatrixSettings
    # The longest shard's wall clock: the matrix's own when the shards run side by side.
    wall: float


@dataclass(frozen=True)
class _ParsedShard:
    source: str
    plan: ShardPlan
    runs: list[str]
    settings: MatrixSettings
    wall: float
    outcomes: list[MutantOutcome]


def _field(mapping: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    value = mapping.get(key)
    # bool is an int to isinstance; a flag where a count belongs (or the reverse) is a malformed file.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise MergeError(f"{where}: {key!r} is missing or not a {kind.__name__}")
    return value


def _strings(mapping: Mapping[str, Any], key: str, where: str) -> list[str]:
    values = _field(mapping, key, list, where)
    if not all(isinstance(value, str) for value in values):
        raise MergeError(f"{where}: {key!r} holds something other than names")
    return [str(value) for value in values]


def outcome_from_row(row: Mapping[str, Any], where: str) -> MutantOutcome:
    """A row of kill-matrix.json's `outcomes` back into the outcome it was written from."""
    failures = _field(row, "failures_by_requirement", dict, where)
    if not all(isinstance(count, int) and not isinstance(count, bool) for count in failures.values()):
        raise MergeError(f"{where}: 'failures_by_requirement' holds something other than counts")
    error = row.get("error")
    if error is not None and not isinstance(error, str):
        raise MergeError(f"{where}: 'error' is not a string")
    seconds = row.get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise MergeError(f"{where}: 'seconds' is missing or not a number")
    return MutantOutcome(
        defect=_field(row, "defect", str, where),
        description=_field(row, "description", str, where),
        breaks=tuple(_strings(row, "breaks", where)),
        failed_must=_strings(row, "failed_must", where),
        failed_should=_strings(row, "failed_should", where),
        failures_by_requirement={str(name): count for name, count in failures.items()},
        requests=_field(row, "requests", int, where),
        seconds=float(seconds),
        error=error,
    )


def _parse_shard(source: str, document: object) -> _ParsedShard:
    if not isinstance(document, Mapping):
        raise MergeError(f"{source} is not a kill matrix (not a JSON object)")
    recorded = document.get(SHARD_KEY)
    if recorded is None:
        raise MergeError(
            f"{source} is not a shard's kill matrix (no {SHARD_KEY!r} entry: written without --shard?)"
        )
    if not isinstance(recorded, Mapping):
        raise MergeError(f"{source}: {SHARD_KEY!r} is not an object")
    summary = _field(document, "summary", dict, source)
    try:
        shard = Shard(
            _field(recorded, "index", int, source),
            _field(recorded, "count", int, source),
        )
    except ValueError as error:
        raise MergeError(f"{source}: {error}") from None
    settings = MatrixSettings(
        seed=_field(summary, "seed", int, source),
        max_examples=_field(summary, "max_examples", int, source),
        fail_fast=_field(summary, "fail_fast", bool, source),
        # Shards written before sequences were explored ran none.
        explore=_field(summary, "explore", int, source) if "explore" in summary else 0,
    )
    wall = summary.get("wall_seconds")
    if not isinstance(wall, int | float) or isinstance(wall, bool):
        raise MergeError(f"{source}: 'wall_seconds' is missing or not a number")
    rows = _field(document, "outcomes", list, source)
    if not all(isinstance(row, Mapping) for row in rows):
        raise MergeError(f"{source}: 'outcomes' holds something other than objects")
    return _ParsedShard(
        source=source,
        plan=ShardPlan(shard, tuple(_strings(recorded, "matrix", source))),
        runs=_strings(recorded, "runs", source),
        settings=settings,
        wall=float(wall),
        outcomes=[outcome_from_row(row, f"{source}, outcome {i + 1}") for i, row in enumerate(rows)],
    )


def _listed(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _first_difference(mine: Sequence[str], theirs: Sequence[str]) -> str:
    for position, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if a != b:
            return f"run {position + 1} is {a} in one and {b} in the other"
    return f"{len(mine)} runs in one, {len(theirs)} in the other"


def merge_shards(documents: Sequence[tuple[str, object]]) -> MergedMatrix:
    """The whole matrix from the JSON documents of its shards, each with the name of its source.

    Refuses (MergeError) shards of different matrices (settings, shard count, runs), a shard given
    twice, a missing shard, a shard whose runs are not those `partition` deals it or whose outcomes
    are not its runs, and a union of runs that is not the matrix, faithful runs included.
    """
    if not documents:
        raise MergeError("no shard given")
    shards = [_parse_shard(source, document) for source, document in documents]
    first = shards[0]
    for other in shards[1:]:
        disagreement = None
        if other.settings != first.settings:
            disagreement = f"settings {asdict(first.settings)} vs {asdict(other.settings)}"
        elif other.plan.shard.count != first.plan.shard.count:
            disagreement = f"{first.plan.shard.count} shards vs {other.plan.shard.count}"
        elif other.plan.matrix != first.plan.matrix:
            disagreement = f"other runs: {_first_difference(first.plan.matrix, other.plan.matrix)}"
        if disagreement:
            raise MergeError(
                f"{first.source} and {other.source} are shards of different matrices ({disagreement})"
            )
    by_index: dict[int, _ParsedShard] = {}
    for shard in shards:
        seen = by_index.setdefault(shard.plan.shard.index, shard)
        if seen is not shard:
            raise MergeError(f"shard {shard.plan.shard} given twice: {seen.source} and {shard.source}")
    count = first.plan.shard.count
    missing = [f"{index}/{count}" for index in range(1, count + 1) if index not in by_index]
    if missing:
        raise MergeError(f"shard {', '.join(missing)} missing: the matrix needs every one of its shards")
    matrix = first.plan.matrix
    repeated = sorted({name for name in matrix if matrix.count(name) > 1})
    if repeated:
        raise MergeError(f"the shards' matrix names {_listed(repeated)} more than once")
    faithful = [faithful_label(profile) for profile in FAITHFUL_PROFILES]
    if absent := [label for label in faithful if label not in matrix]:
        raise MergeError(f"the shards' matrix lacks the faithful run(s) {_listed(absent)}")
    for shard in shards:
        if shard.runs != shard.plan.runs:
            raise MergeError(
                f"{shard.source}: its runs are not those shard {shard.plan.shard} of its matrix is dealt"
            )
        held = [outcome.defect for outcome in shard.outcomes]
        if sorted(held) != sorted(shard.runs):
            lacking = [name for name in shard.runs if name not in held]
            unexpected = [name for name in held if name not in shard.runs or held.count(name) > 1]
            raise MergeError(
                f"{shard.source}: its outcomes are not its runs (lacking: {_listed(lacking) or 'none'}; "
                f"not its own or repeated: {_listed(unexpected) or 'none'})"
            )
    outcomes = {outcome.defect: outcome for shard in shards for outcome in shard.outcomes}
    if uncovered := [name for name in matrix if name not in outcomes]:
        raise MergeError(f"the shards do not cover the matrix: no outcome for {_listed(uncovered)}")
    if beyond := sorted(set(outcomes) - set(matrix)):
        raise MergeError(f"the shards hold runs outside their matrix: {_listed(beyond)}")
    return MergedMatrix(
        outcomes=[outcomes[name] for name in matrix],
        settings=first.settings,
        wall=max(shard.wall for shard in shards),
    )
