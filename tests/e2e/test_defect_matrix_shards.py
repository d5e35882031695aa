"""The sharded kill matrix: `mutants --shard I/N` runs one shard of the matrix's runs, and
`mutants-merge` puts the shards' JSON back together into the matrix an unsharded run writes, or
refuses in one line (exit 2) when the files are not exactly the shards of one matrix."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from retry_contract.cli import main
from retry_contract.defect_matrix import (
    FAITHFUL_PROFILES,
    SHARD_KEY,
    MatrixSettings,
    MergeError,
    MutantOutcome,
    Shard,
    ShardPlan,
    faithful_label,
    matrix_targets,
    matrix_view,
    merge_shards,
    partition,
    shard_of,
    target_name,
)
from retry_contract.reports import kill_matrix
from retry_contract.reports.kill_matrix import JSON, MARKDOWN
from support.project import CLI

SETTINGS = MatrixSettings(seed=7, max_examples=5, fail_fast=False)
FAITHFUL = [faithful_label(profile) for profile in FAITHFUL_PROFILES]


# --- partition -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(0, 23))
@pytest.mark.parametrize("count", range(1, 9))
def test_partition_deals_every_item_once_in_balanced_shards(size: int, count: int) -> None:
    items = [f"run-{position}" for position in range(size)]
    shards = partition(items, count)
    assert len(shards) == count
    assert Counter(item for shard in shards for item in shard) == Counter(items)
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    # Each shard keeps catalogue order, so its report reads in the same order as the whole matrix's.
    for shard in shards:
        assert shard == sorted(shard, key=items.index)
    # Stable: by position only, the same every time and whatever the names are.
    assert partition(items, count) == shards
    assert partition(list(range(size)), count) == [[items.index(i) for i in s] for s in shards]


@pytest.mark.parametrize("count", range(1, 9))
def test_partition_spreads_every_stretch_of_the_catalogue_over_the_shards(count: int) -> None:
    # The catalogue lists defects family by family and one family (SEM) costs several times the
    # others: any contiguous stretch must be spread over the shards within one, or one shard is slow.
    items = list(range(40))
    shards = partition(items, count)
    for start in range(len(items)):
        for end in range(start + 1, len(items) + 1):
            stretch = set(items[start:end])
            per_shard = [len(stretch.intersection(shard)) for shard in shards]
            assert max(per_shard) - min(per_shard) <= 1


@pytest.mark.parametrize("count", range(1, 9))
def test_every_run_of_the_real_matrix_is_in_exactly_one_shard(count: int) -> None:
    from cdf_workflows_mock.defects import CATALOGUE

    matrix = [target_name(target) for target in matrix_targets([d.name for d in CATALOGUE])]
    assert matrix[: len(FAITHFUL)] == FAITHFUL
    held = Counter(name for index in range(1, count + 1) for name in shard_of(matrix, Shard(index, count)))
    assert held == Counter(matrix)
    assert all(held[label] == 1 for label in FAITHFUL)


def test_partition_refuses_no_shards() -> None:
    with pytest.raises(ValueError):
        partition(["a"], 0)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/4", Shard(1, 4)), (" 4 / 4 ", Shard(4, 4)), ("1/1", Shard(1, 1))]
)
def test_shard_parses(text: str, expected: Shard) -> None:
    assert Shard.parse(text) == expected
    assert str(expected) == f"{expected.index}/{expected.count}"


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "1-4", "", "-1/4", "1/4/2"])
def test_a_malformed_shard_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Shard.parse(text)


# --- merge -----------------------------------------------------------------------------------

DEFECTS = ["auth-header-optional", "retry-completed", "limit-reset", "status-stale", "error-envelope-flat"]


def _outcomes(matrix: list[str]) -> list[MutantOutcome]:
    """Outcomes of every kind a matrix can hold: caught by its own check or not, missed, errors."""
    outcomes = []
    for position, name in enumerate(matrix):
        outcome = MutantOutcome(
            defect=name,
            description=f"description of {name}",
            breaks=() if name in FAITHFUL else ("AUTH-401", "ROBUST"),
            requests=100 + position,
            seconds=round(1.25 + position * 0.5, 2),
        )
        if name == "retry-completed":  # caught, but not by the check of what it breaks
            outcome.failed_must.append("STATE-404")
            outcome.failures_by_requirement["STATE-404"] = 3
        elif name == "status-stale":  # missed
            pass
        elif name == "limit-reset":
            outcome.error = "could not start the embedded mock"
        elif name not in FAITHFUL:
            outcome.failed_must.append("AUTH-401")
            outcome.failed_should.append("ERR-CODE")
            outcome.failures_by_requirement.update({"AUTH-401": position, "ERR-CODE": 1})
        outcomes.append(outcome)
    return outcomes


def _write_shards(
    tmp_path: Path, count: int, matrix: list[str] | None = None, settings: MatrixSettings = SETTINGS
) -> list[Path]:
    """The JSON each shard of `count` writes, as `mutants --shard` writes it."""
    matrix = matrix or [target_name(target) for target in matrix_targets(DEFECTS)]
    outcomes = {outcome.defect: outcome for outcome in _outcomes(matrix)}
    paths = []
    for index in range(1, count + 1):
        plan = ShardPlan(Shard(index, count), tuple(matrix))
        directory = tmp_path / f"shard-{index}-of-{count}"
        kill_matrix.write(
            matrix_view([outcomes[name] for name in plan.runs], settings, 10.0 + index, plan), directory
        )
        paths.append(directory / JSON)
    return paths


def _documents(paths: list[Path]) -> list[tuple[str, object]]:
    return [(str(path), json.loads(path.read_text())) for path in paths]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_merged_shards_are_the_matrix_an_unsharded_run_writes(tmp_path: Path, count: int) -> None:
    matrix = [target_name(target) for target in matrix_targets(DEFECTS)]
    paths = _write_shards(tmp_path, count)
    # The longest shard's wall clock is the matrix's when the shards run side by side.
    unsharded = kill_matrix.write(
        matrix_view(_outcomes(matrix), SETTINGS, 10.0 + count), tmp_path / "unsharded"
    )

    merged = merge_shards(_documents(list(reversed(paths))))
    written = kill_matrix.write(
        matrix_view(merged.outcomes, merged.settings, merged.wall), tmp_path / "merged"
    )

    assert [p.name for p in written] == [p.name for p in unsharded] == [MARKDOWN, JSON]
    for mine, theirs in zip(written, unsharded, strict=True):
        assert mine.read_text() == theirs.read_text()
    assert SHARD_KEY not in json.loads((tmp_path / "merged" / JSON).read_text())


def test_a_shard_says_which_shard_it_is_and_which_runs_it_holds(tmp_path: Path) -> None:
    matrix = [target_name(target) for target in matrix_targets(DEFECTS)]
    document = json.loads(_write_shards(tmp_path, 3)[1].read_text())
    assert document[SHARD_KEY] == {
        "index": 2,
        "count": 3,
        "runs": [matrix[1], matrix[4]],
        "matrix": matrix,
    }
    assert [row["defect"] for row in document["outcomes"]] == [matrix[1], matrix[4]]
    markdown = (tmp_path / "shard-2-of-3" / MARKDOWN).read_text()
    assert markdown.startswith("# Kill matrix, shard 2 of 3\n")


def _edit(path: Path, change: Any) -> Path:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def _refusal(documents: list[tuple[str, object]]) -> str:
    with pytest.raises(MergeError) as refused:
        merge_shards(documents)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_missing_shard_is_refused(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, 4)
    assert "shard 2/4, 4/4 missing" in _refusal(_documents([paths[0], paths[2]]))


def test_a_shard_given_twice_is_refused(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, 2)
    assert "shard 1/2 given twice" in _refusal(_documents([paths[0], paths[1], paths[0]]))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (MatrixSettings(seed=8, max_examples=5, fail_fast=False), "'seed': 7"),
        (MatrixSettings(seed=7, max_examples=6, fail_fast=False), "'max_examples': 5"),
        (MatrixSettings(seed=7, max_examples=5, fail_fast=True), "'fail_fast': False"),
    ],
)
def test_shards_of_other_settings_are_refused(
    tmp_path: Path, settings: MatrixSettings, expected: str
) -> None:
    mine = _write_shards(tmp_path / "mine", 2)
    theirs = _write_shards(tmp_path / "theirs", 2, settings=settings)
    message = _refusal(_documents([mine[0], theirs[1]]))
    assert "shards of different matrices" in message
    assert expected in message


def test_shards_of_another_shard_count_are_refused(tmp_path: Path) -> None:
    halves = _write_shards(tmp_path / "halves", 2)
    thirds = _write_shards(tmp_path / "thirds", 3)
    assert "2 shards vs 3" in _refusal(_documents([halves[0], thirds[1], thirds[2]]))


def test_shards_of_other_defects_are_refused(tmp_path: Path) -> None:
    other = [target_name(target) for target in matrix_targets([*DEFECTS[:-1], "unicode-nonce-500"])]
    mine = _write_shards(tmp_path / "mine", 2)
    theirs = _write_shards(tmp_path / "theirs", 2, matrix=other)
    message = _refusal(_documents([mine[0], theirs[1]]))
    assert "run 7 is error-envelope-flat in one and unicode-nonce-500 in the other" in message


def test_an_unsharded_matrix_is_not_a_shard(tmp_path: Path) -> None:
    matrix = [target_name(target) for target in matrix_targets(DEFECTS)]
    _, whole = kill_matrix.write(matrix_view(_outcomes(matrix), SETTINGS, 1.0), tmp_path)
    assert "written without --shard" in _refusal(_documents([whole]))


def test_a_shard_lacking_one_of_its_runs_is_refused(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, 2)
    _edit(paths[1], lambda document: document["outcomes"].pop())
    message = _refusal(_documents(paths))
    assert "its outcomes are not its runs (lacking: status-stale;" in message


def test_a_shard_holding_a_run_twice_is_refused(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, 2)
    _edit(paths[0], lambda document: document["outcomes"].append(document["outcomes"][0]))
    assert "repeated: (faithful mock)" in _refusal(_documents(paths))


def test_runs_not_dealt_to_the_shard_are_refused(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, 2)

    def swap(document: dict[str, Any]) -> None:
        document[SHARD_KEY]["runs"][0] = "retry-completed"

    _edit(paths[0], swap)
    assert "its runs are not those shard 1/2 of its matrix is dealt" in _refusal(_documents(paths))


def test_a_union_that_does_not_cover_the_matrix_is_refused(tmp_path: Path) -> None:
    # Every shard agrees on a matrix one run longer than what they were dealt: a run is in none.
    paths = _write_shards(tmp_path, 1)

    def lengthen(document: dict[str, Any]) -> None:
        document[SHARD_KEY]["matrix"].append("unicode-nonce-500")
        document[SHARD_KEY]["runs"].append("unicode-nonce-500")

    _edit(paths[0], lengthen)
    assert "lacking: unicode-nonce-500" in _refusal(_documents(paths))


def test_a_matrix_without_its_faithful_runs_is_refused(tmp_path: Path) -> None:
    paths = _write_shards(tmp_path, 1, matrix=DEFECTS)
    assert "lacks the faithful run(s) (faithful mock)" in _refusal(_documents(paths))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["summary"].update(seed="7"), "'seed' is missing or not a int"),
        (lambda d: d["summary"].update(fail_fast=0), "'fail_fast' is missing or not a bool"),
        (lambda d: d[SHARD_KEY].update(index=True), "'index' is missing or not a int"),
        (lambda d: d[SHARD_KEY].update(index=3), "shard 3/2: the index must be between 1 and the count"),
        (lambda d: d["outcomes"][0].update(requests=None), "outcome 1: 'requests' is missing"),
        (lambda d: d["outcomes"][1].update(failures_by_requirement={"X": "2"}), "other than counts"),
        (lambda d: d.update(outcomes={}), "'outcomes' is missing or not a list"),
        (lambda d: d.update(shard=[]), "'shard' is not an object"),
    ],
)
def test_a_malformed_shard_is_refused_in_one_line(tmp_path: Path, change: Any, expected: str) -> None:
    paths = _write_shards(tmp_path, 2)
    _edit(paths[0], change)
    assert expected in _refusal(_documents(paths))


def test_nothing_to_merge_is_refused() -> None:
    assert "no shard given" in _refusal([])


# --- the commands ----------------------------------------------------------------------------


def test_merge_command_writes_the_matrix_and_exits_as_mutants_does(tmp_path: Path) -> None:
    # The fabricated matrix misses a defect and one run could not run: exit 1, as `mutants` would.
    paths = _write_shards(tmp_path, 3)
    result = CliRunner().invoke(
        main, ["mutants-merge", *map(str, paths), "--report-dir", str(tmp_path / "merged")]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        "limit-reset: could not run: could not start the embedded mock",
        "status-stale: missed",
    ]
    assert "3/5 defects caught (2 by their own requirement's check) in 3 shards, the longest 13 s" in (
        result.stdout
    )
    assert (tmp_path / "merged" / MARKDOWN).is_file()


def test_merge_command_exits_0_when_every_defect_is_caught(tmp_path: Path) -> None:
    matrix = [target_name(target) for target in matrix_targets(["auth-header-optional"])]
    paths = _write_shards(tmp_path, 2, matrix=matrix)
    result = CliRunner().invoke(
        main, ["mutants-merge", *map(str, paths), "--report-dir", str(tmp_path / "m")]
    )
    assert result.exit_code == 0, result.output
    assert "1/1 defects caught" in result.stdout


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        (lambda paths: paths[:1], "shard 2/2 missing"),
        (lambda paths: [*paths, paths[0].parent / "absent.json"], "absent.json: No such file"),
        (lambda paths: [*paths, paths[0].parent / MARKDOWN], "kill-matrix.md is not JSON"),
    ],
)
def test_merge_command_refuses_in_one_line_with_exit_2(tmp_path: Path, arrange: Any, expected: str) -> None:
    paths = arrange(_write_shards(tmp_path, 2))
    result = CliRunner().invoke(
        main, ["mutants-merge", *map(str, paths), "--report-dir", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("retry-contract: cannot merge the kill matrix: ")
    assert expected in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shard", "5/4"], "the index must be between 1 and the count"),
        (["--shard", "two/4"], "is not a shard: give INDEX/COUNT"),
        (["--defect", "retry-completed", "--shard", "1/4"], "4 shards for 3 runs would leave shards empty"),
    ],
)
def test_mutants_refuses_a_bad_shard(tmp_path: Path, args: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, ["mutants", "--report-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert expected in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_two_shards_run_for_real_merge_into_the_matrix(tmp_path: Path) -> None:
    defects = ["auth-header-optional", "retry-completed"]
    shards = []
    for index in (1, 2):
        directory = tmp_path / f"shard-{index}"
        completed = subprocess.run(
            [
                *CLI,
                "mutants",
                *(arg for defect in defects for arg in ("--defect", defect)),
                "--shard",
                f"{index}/2",
                "--max-examples",
                "3",
                "--explore",
                "1",
                "--workers",
                "2",
                "--report-dir",
                str(directory),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        shards.append(directory / JSON)
    held = [json.loads(path.read_text())[SHARD_KEY]["runs"] for path in shards]
    # Dealt by position: the faithful profiles first, so each shard holds one of them.
    assert held == [[FAITHFUL[0], defects[0]], [FAITHFUL[1], defects[1]]]

    merged = subprocess.run(
        [*CLI, "mutants-merge", *map(str, shards), "--report-dir", str(tmp_path / "merged")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "2/2 defects caught (2 by their own requirement's check) in 2 shards" in merged.stdout
    document = json.loads((tmp_path / "merged" / JSON).read_text())
    assert SHARD_KEY not in document
    assert [row["defect"] for row in document["outcomes"]] == [*FAITHFUL, *defects]
    assert document["summary"]["passes"] is True
    assert document["summary"]["max_examples"] == 3
    by_shard = {row["defect"]: row for path in shards for row in json.loads(path.read_text())["outcomes"]}
    assert document["outcomes"] == [by_shard[row["defect"]] for row in document["outcomes"]]
    assert (
        "| `retry-completed` | STATE-RETRYABLE | yes | yes |" in (tmp_path / "merged" / MARKDOWN).read_text()
    )
