"""The kill matrix: the suite against the faithful mock and against each defect of the mock.

A defect is *caught* when the run fails at least one requirement, and caught *by its own check*
when one of the requirements it breaks is among them. Runs go to a pool of processes, each with its
own embedded mock, so the matrix scales with the cores.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retry_contract.requirements import Level
from retry_contract.runner import MOCK_PROJECT, CouldNotRun, RunOptions, run

FAITHFUL = "(faithful mock)"
# Faithful shapes of server the matrix also runs, expecting no failure: a failure there is a false alarm.
FAITHFUL_PROFILES = ("classic", "recorded")
MARKDOWN = "kill-matrix.md"
JSON = "kill-matrix.json"


@dataclass(frozen=True)
class MatrixSettings:
    seed: int
    max_examples: int
    fail_fast: bool


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


def run_one(
    defect: str | None, settings: MatrixSettings, profile: str = FAITHFUL_PROFILES[0]
) -> MutantOutcome:
    """One run of the suite against the embedded mock with at most one defect switched on."""
    from retry_contract.mock.defects import BY_NAME

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
                level = requirement_result.requirement.level
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
) -> list[MutantOutcome]:
    targets: list[Target] = [(None, profile) for profile in FAITHFUL_PROFILES]
    targets += [(defect, FAITHFUL_PROFILES[0]) for defect in defects]
    outcomes: list[MutantOutcome] = []
    # spawn, not fork: a forked child would inherit the parent's threads' locks mid-use.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, defect, settings, profile) for defect, profile in targets]
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            on_outcome(outcome)
    order = {defect or faithful_label(profile): index for index, (defect, profile) in enumerate(targets)}
    return sorted(outcomes, key=lambda o: order[o.defect])


def matrix_passes(outcomes: Sequence[MutantOutcome]) -> bool:
    """The faithful mock passes cleanly and every defect is caught."""
    faithful = [o for o in outcomes if o.is_faithful]
    defects = [o for o in outcomes if not o.is_faithful]
    return all(not o.caught and o.error is None for o in faithful) and all(
        o.caught and o.error is None for o in defects
    )


def write_reports(
    outcomes: Sequence[MutantOutcome], directory: Path, settings: MatrixSettings, wall: float
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
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
    rows = [
        {
            **asdict(o),
            "caught": o.caught,
            "caught_by_own_check": o.caught_by_own_check,
            "seconds": round(o.seconds, 2),
        }
        for o in outcomes
    ]
    json_path = directory / JSON
    json_path.write_text(json.dumps({"summary": summary, "outcomes": rows}, indent=2) + "\n")
    md_path = directory / MARKDOWN
    md_path.write_text(_markdown(outcomes, summary))
    return [md_path, json_path]


def _markdown(outcomes: Sequence[MutantOutcome], summary: dict[str, object]) -> str:
    lines = [
        "# Kill matrix",
        "",
        f"{summary['caught']} of {summary['defects']} defects caught, "
        f"{summary['caught_by_own_check']} by the check of the requirement they break; "
        "false alarms on the faithful mock: "
        f"{summary['false_alarms_on_faithful'] or 'none'}. Seed {summary['seed']}, "
        f"{summary['max_examples']} examples per phase, fail-fast {summary['fail_fast']}; "
        f"{summary['wall_seconds']} s wall clock, {summary['requests_total']} requests.",
        "",
        "| defect | breaks | caught | by own check | failed requirements (failed judgements) | requests "
        "| seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        caught = "error" if o.error else ("—" if o.is_faithful else ("yes" if o.caught else "**MISSED**"))
        own = "—" if o.is_faithful else ("yes" if o.caught_by_own_check else "no")
        failed = ", ".join(f"{r} ({o.failures_by_requirement.get(r, 1)})" for r in o.failed) or (
            "none" if o.error is None else o.error
        )
        lines.append(
            f"| `{o.defect}` | {', '.join(o.breaks) or '—'} | {caught} | {own} | {failed} | {o.requests} "
            f"| {o.seconds:.1f} |"
        )
    lines += ["", "Descriptions:", ""]
    lines += [f"- `{o.defect}`: {o.description}" for o in outcomes if not o.is_faithful]
    return "\n".join(lines) + "\n"
