"""Generated operation sequences (`exploration`): drawn from the run's seed, judged by the run's judges,
a failing one shrunk to the shortest and replayed; the faithful mock passes many of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed

from retry_contract import runner
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.cli import main
from retry_contract.domain import TASK_RETRIES_MAX, OnFailure, TaskType
from retry_contract.exploration import SequenceRun, explore, run_sequence
from retry_contract.provisioning import Provisioner
from retry_contract.reports import json_report, model
from retry_contract.results import ExplorationStats
from retry_contract.runner import MOCK_PROJECT, RunOptions, reach_target
from retry_contract.scenarios import states
from retry_contract.scenarios.context import ScenarioContext
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.sequence_model import (
    MAX_NESTING,
    OperationSequence,
    Step,
    StepKind,
    TaskGraph,
    operation_sequences,
)
from retry_contract.verdict import Ledger
from support.scenario_runs import run_scenarios

DEFECT = "canceled-forgotten-after-retry"
# A seed among whose first twenty sequences one exposes DEFECT (a retry, a cancel, another retry) and
# shrinks to it within its budget: what is tested is how a failing sequence is caught, shrunk and
# replayed, not how likely a draw is to find one (most seeds' do; the default seed's does not).
FINDING_SEED = 14


def _explore(
    count: int, seed: int, defects: frozenset[str] = frozenset(), profile: str = "classic"
) -> tuple[ExplorationStats, Ledger]:
    """`count` sequences against a fresh embedded mock: what was explored, and the ledger judged."""
    options = RunOptions(
        base_url=None, project=MOCK_PROJECT, credentials=None, mock_defects=defects, mock_profile=profile
    )
    with reach_target(options) as (base_url, effective):
        assert effective.credentials is not None
        client = CdfClient(base_url, effective.project, effective.credentials, SecretRegistry())
        ledger = Ledger()
        ctx = ScenarioContext(client, Provisioner(client, seed=seed), Judge(base_url, ledger))
        stats = ExplorationStats()
        try:
            explore(ctx, count, seed, stats)
        finally:
            client.close()
    return stats, ledger


def _run_one(sequence: OperationSequence) -> SequenceRun:
    """`sequence` against a fresh faithful embedded mock."""
    options = RunOptions(base_url=None, project=MOCK_PROJECT, credentials=None)
    with reach_target(options) as (base_url, effective):
        assert effective.credentials is not None
        client = CdfClient(base_url, effective.project, effective.credentials, SecretRegistry())
        ctx = ScenarioContext(client, Provisioner(client, seed=1), Judge(base_url, Ledger()))
        try:
            return run_sequence(ctx, sequence, "#1")
        finally:
            client.close()


def _failures(ledger: Ledger) -> list[str]:
    return [f"{r.requirement.id}: {f.message}" for r in ledger.results.values() for f in r.failures]


def _depth(tasks: Any, depth: int = 0) -> int:
    nested = [
        _depth(task["parameters"]["subworkflow"]["tasks"], depth + 1)
        for task in tasks
        if task["type"] == TaskType.SUBWORKFLOW
    ]
    return max([depth, *nested])


@settings(max_examples=200, database=None, suppress_health_check=list(HealthCheck), deadline=None)
@hypothesis_seed(3)
@given(operation_sequences())
def test_generated_graphs_keep_to_the_task_model_and_survive_json(sequence: OperationSequence) -> None:
    graph = sequence.graph
    names = [str(task["externalId"]) for task in graph.walk()]
    assert len(names) == len(set(names)), "externalIds are unique across the definition"
    for task in graph.walk():
        assert 0 <= task.get("retries", 0) <= TASK_RETRIES_MAX
        assert task.get("onFailure", OnFailure.ABORT_WORKFLOW) in {o.value for o in OnFailure}
        assert task.get("timeout", 1) >= 1
    assert _depth(graph.tasks) <= MAX_NESTING
    definition = graph.definition("fn")
    assert all(
        t["parameters"]["function"] == {"externalId": "fn"} for t in definition if t["type"] == "function"
    )
    assert OperationSequence.from_json(json.loads(json.dumps(sequence.to_json()))) == sequence
    assert TaskGraph.from_json(graph.to_json()).digest == graph.digest


def test_the_same_seed_gives_the_same_sequences_and_another_seed_others() -> None:
    first, _ = _explore(3, seed=11)
    again, _ = _explore(3, seed=11)
    other, _ = _explore(3, seed=12)
    assert first.generated == again.generated and len(first.generated) == 3
    assert first.task_graphs == again.task_graphs and first.steps == again.steps
    assert other.generated != first.generated


def test_a_container_that_first_starts_after_the_retry_is_no_container_retried() -> None:
    """A cancel stops the optional task one subworkflow waits for, and the nested task of another; the
    retry restarts the nested task but not the optional one, so the workflow goes on past it and the
    first subworkflow starts for the first time: the retry resumed the execution, it gave that
    container no new attempt (SEM-NESTED judged it one)."""

    def function(name: str, **options: Any) -> dict[str, Any]:
        return {"externalId": name, "type": "function", "parameters": {"isAsyncComplete": True}, **options}

    def subworkflow(name: str, nested: dict[str, Any], **options: Any) -> dict[str, Any]:
        return {
            "externalId": name,
            "type": "subworkflow",
            "parameters": {"subworkflow": {"tasks": [nested]}},
            **options,
        }

    graph = TaskGraph(
        (
            function("t1", onFailure="skipTask", dependsOn=[]),
            subworkflow("t2", function("t3", dependsOn=[]), dependsOn=[{"externalId": "t1"}]),
            subworkflow("t4", function("t5", dependsOn=[]), dependsOn=[]),
        )
    )
    run = _run_one(OperationSequence(graph, (Step(StepKind.CANCEL), Step(StepKind.RETRY))))
    assert run.sequence.steps == (Step(StepKind.CANCEL), Step(StepKind.RETRY))
    assert run.ledger.results["SEM-NESTED"].judged
    assert _failures(run.ledger) == []


@pytest.mark.parametrize("profile", ["classic", "recorded"])
def test_the_faithful_mock_passes_many_sequences(profile: str) -> None:
    # Twenty per profile here; the kill matrix runs its own fifteen on each faithful profile.
    stats, ledger = _explore(20, seed=runner.DEFAULT_SEED, profile=profile)
    assert _failures(ledger) == []
    assert stats.sequences == 20 and stats.failing == 0
    # The sequences did retry: their retries were judged.
    assert ledger.results["SEM-TARGETED"].judged > 0


@pytest.fixture(scope="module")
def defect_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A run that only explores (the scenarios that could not find the defect are left out)."""
    result = run_scenarios(
        (states.unknown_execution,), explore=20, seed=FINDING_SEED, mock_defects=frozenset({DEFECT})
    )
    path = json_report.write(model.build(result), tmp_path_factory.mktemp("sequences"))
    yield path, json.loads(path.read_text())


def test_a_defect_only_a_sequence_finds_is_caught_and_shrunk(
    defect_report: tuple[Path, dict[str, Any]],
) -> None:
    _, data = defect_report
    failures = [f for row in data["requirements"] for f in row["failures"]]
    found = [f for f in failures if f["replay"].get("sequence")]
    assert found and found[0]["requirement"] == "SEM-TARGETED"
    sequence = found[0]["replay"]["sequence"]
    steps = [step["kind"] for step in sequence["sequence"]["steps"]]
    # Shrunk within its budget (as many candidates as sequences asked for) and cut at the failing
    # step: it ends with a retry, a cancel and another retry, after what makes the execution
    # retryable first.
    assert len(steps) < sequence["shrunk_from_steps"]
    assert len(steps) <= 5 and steps[-3:] == ["retry", "cancel", "retry"]
    assert any("Generated operation sequence" in step for step in found[0]["reproduce_steps"])
    assert any("cancel the execution" in step for step in found[0]["reproduce_steps"])
    exercised = data["exercised"]["sequences"]
    assert exercised["failing"] == 1 and exercised["run"] >= 1 and exercised["distinct_task_graphs"] >= 1
    assert data["exercised"]["fixtures"] > 0


def test_the_failing_sequence_replays_failing_on_the_defect_and_holding_on_the_faithful_mock(
    defect_report: tuple[Path, dict[str, Any]],
) -> None:
    path, data = defect_report
    failures = [f for row in data["requirements"] for f in row["failures"]]
    number = str(next(f["number"] for f in failures if f["replay"].get("sequence")))
    # The report's target: a fresh embedded mock with the run's defect.
    broken = CliRunner().invoke(main, ["replay", str(path), "--failure", number])
    assert broken.exit_code == 1, broken.output
    assert "got no new attempt" in broken.stdout
    faithful = CliRunner().invoke(main, ["replay", str(path), "--failure", number, "--mock"])
    assert faithful.exit_code == 0, faithful.output
