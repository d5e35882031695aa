"""`retry-contract mutants`: the kill matrix, the suite against the faithful mock and each defect."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from retry_contract.cli.options import setting_option
from retry_contract.run_settings import MATRIX_EXPLORE
from retry_contract.verdict import ExitCode


@click.command("mutants")
@setting_option("report-dir")
@click.option(
    "--defect", "selected", multiple=True, metavar="NAME", help="Only these defects (default: all)."
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None, help="Parallel runs (default: one per core)."
)
@setting_option("fail-fast")
@setting_option("seed")
@setting_option("max-examples")
@setting_option(
    "explore",
    default=MATRIX_EXPLORE,
    help="Generated operation sequences per run (deeper than a run's default: some defects show only "
    "in a sequence).",
)
@click.option(
    "--shard",
    "shard_text",
    metavar="I/N",
    default=None,
    help="Run only shard I of N (1-based) of the matrix's runs, dealt by position in catalogue order; "
    "its kill-matrix.json says which runs it holds. `retry-contract mutants-merge` puts the shards together.",
)
def defect_matrix(
    report_dir: Path,
    selected: tuple[str, ...],
    workers: int | None,
    fail_fast: bool,
    seed: int,
    max_examples: int,
    explore: int,
    shard_text: str | None,
) -> None:
    """Run the suite against the faithful mock and each defect; write the kill matrix.

    Exit 0 only when the faithful mock passes and every defect is caught (with --shard: every run
    of the shard is as it should be).
    """
    from rich.progress import Progress

    from cdf_workflows_mock.defects import BY_NAME, CATALOGUE
    from retry_contract.defect_matrix import (
        MatrixSettings,
        Shard,
        ShardPlan,
        matrix_passes,
        matrix_problems,
        matrix_tally,
        matrix_targets,
        matrix_view,
        run_matrix,
        shard_of,
        target_name,
    )
    from retry_contract.reports import kill_matrix

    unknown = sorted(set(selected) - set(BY_NAME))
    if unknown:
        raise click.BadParameter(f"unknown defect(s) {', '.join(unknown)}; see `retry-contract defects`")
    # A defect named twice is one run: a matrix names each run once, so its shards can be told apart.
    names = list(dict.fromkeys(selected)) or [d.name for d in CATALOGUE]
    matrix = [target_name(target) for target in matrix_targets(names)]
    plan = None
    if shard_text is not None:
        try:
            plan = ShardPlan(Shard.parse(shard_text), tuple(matrix))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--shard") from None
        if plan.shard.count > len(matrix):
            raise click.BadParameter(
                f"{plan.shard.count} shards for {len(matrix)} runs would leave shards empty",
                param_hint="--shard",
            )
    settings = MatrixSettings(
        seed=seed,
        max_examples=max_examples,
        fail_fast=fail_fast,
        explore=explore,
    )
    runs = matrix if plan is None else shard_of(matrix, plan.shard)
    started = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("kill matrix" if plan is None else f"kill matrix, shard {plan.shard}")
        progress.update(task, total=len(runs))
        outcomes = run_matrix(
            names,
            settings,
            workers or os.cpu_count() or 1,
            on_outcome=lambda _: progress.advance(task),
            shard=None if plan is None else plan.shard,
        )
    wall = time.perf_counter() - started
    written = kill_matrix.write(matrix_view(outcomes, settings, wall, plan), report_dir)
    conclude_matrix(
        matrix_problems(outcomes),
        f"{matrix_tally(outcomes)} in {wall:.0f} s",
        matrix_passes(outcomes),
        written,
    )


def conclude_matrix(problems: list[str], tally: str, passes: bool, written: list[Path]) -> NoReturn:
    """Say what went wrong run by run, then the tally, and exit as `mutants` does."""
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{tally}; reports: {', '.join(str(p) for p in written)}")
    sys.exit(ExitCode.CONFORMANT if passes else ExitCode.VIOLATIONS)
