"""`retry-contract mutants-merge`: the shards of `mutants --shard I/N` as one kill matrix."""

from __future__ import annotations

from pathlib import Path

import click

from retry_contract.cli.defect_matrix import conclude_matrix
from retry_contract.cli.errors import fail, failing
from retry_contract.cli.options import setting_option

CANNOT_MERGE = "cannot merge the kill matrix"


@click.command("mutants-merge")
@click.argument(
    "shard_files",
    nargs=-1,
    required=True,
    metavar="SHARD_JSON...",
    type=click.Path(dir_okay=False, path_type=Path),
)
@setting_option("report-dir")
def defect_matrix_merge(shard_files: tuple[Path, ...], report_dir: Path) -> None:
    """Put the kill-matrix.json of every shard of `mutants --shard I/N` together into one kill matrix.

    Writes kill-matrix.json and kill-matrix.md as an unsharded `mutants` does, and exits as it does:
    0 only when the faithful mock passes and every defect is caught, 1 otherwise. Exit 2, with one
    line saying why, when the files are not exactly the N shards of one matrix: a shard missing or
    given twice, shards of different seeds or settings, runs that do not cover the matrix.
    """
    import json

    from retry_contract.defect_matrix import (
        matrix_passes,
        matrix_problems,
        matrix_tally,
        matrix_view,
        merge_shards,
    )
    from retry_contract.reports import kill_matrix

    documents: list[tuple[str, object]] = []
    for path in shard_files:
        try:
            documents.append((str(path), json.loads(path.read_text(encoding="utf-8"))))
        except OSError as error:
            fail(CANNOT_MERGE, f"{path}: {error.strerror or error}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            fail(CANNOT_MERGE, f"{path} is not JSON ({error})")
    with failing(CANNOT_MERGE):
        merged = merge_shards(documents)
    try:
        written = kill_matrix.write(matrix_view(merged.outcomes, merged.settings, merged.wall), report_dir)
    except OSError as error:
        fail(CANNOT_MERGE, f"cannot write to {report_dir}: {error.strerror or error}")
    conclude_matrix(
        matrix_problems(merged.outcomes),
        f"{matrix_tally(merged.outcomes)} in {len(documents)} shards, the longest {merged.wall:.0f} s",
        matrix_passes(merged.outcomes),
        written,
    )
