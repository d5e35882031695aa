"""Defects in how a server keeps the values an execution was run with are seen by the response
judges on the suite's generated fixtures: one retry of each fixture is enough."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from cdf_workflows_mock import DEFAULT_PROJECT, MockConfig, create_app
from cdf_workflows_mock.defects import BY_NAME, values
from cdf_workflows_mock.loopback import InProcessServer
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.cli import main
from retry_contract.credentials import StaticToken
from retry_contract.exchange import Expectation
from retry_contract.provisioning import Provisioner
from retry_contract.reports import json_report
from retry_contract.reports.model import build as report_view
from retry_contract.runner import DEFAULT_SEED
from retry_contract.scenarios import forms
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import Ledger
from support.scenario_runs import run_scenarios

WRITE, READONLY = "fixture-values-write-token", "fixture-values-readonly-token"
ACCEPTED = Expectation("STATE-RETRYABLE", frozenset({200}), "execution in a retryable state")


def _failed_requirements(defect: str | None) -> dict[str, list[str]]:
    """Retry one execution of every fixture of the default seed; the failed requirements, each with
    the labels of the fixtures it failed on."""
    config = MockConfig.with_tokens(DEFAULT_PROJECT, WRITE, READONLY)
    if defect is not None:
        config = replace(config, defects=frozenset({defect}))
    with (
        InProcessServer(create_app(config)) as server,
        CdfClient(server.base_url, DEFAULT_PROJECT, StaticToken(WRITE), SecretRegistry()) as client,
    ):
        provisioner = Provisioner(client, seed=DEFAULT_SEED)
        judge = Judge(server.base_url, Ledger())
        failed: dict[str, list[str]] = {}
        try:
            for shape in provisioner.shapes:
                execution_id = provisioner.failed_execution(shape)
                before = client.detailed(execution_id)
                exchange = client.send(
                    "POST",
                    client.retry_url(execution_id),
                    json_body={"authentication": {"nonce": client.create_nonce()}},
                    expectation=ACCEPTED,
                    execution_id=execution_id,
                )
                exchange.before = before
                for observation in judge.observe(exchange):
                    if not observation.passed:
                        failed.setdefault(observation.requirement, []).append(shape.label)
        finally:
            assert provisioner.cleanup() == []
    return failed


@pytest.fixture(scope="module")
def faithful() -> Iterator[dict[str, list[str]]]:
    yield _failed_requirements(None)


def test_the_faithful_mock_keeps_every_generated_value(faithful: dict[str, list[str]]) -> None:
    assert faithful == {}


@pytest.mark.parametrize("defect", sorted(defect.name for defect in values.DEFECTS))
def test_each_defect_of_the_values_family_is_caught_by_its_own_check(defect: str) -> None:
    failed = _failed_requirements(defect)
    assert BY_NAME[defect].breaks[0] in failed, failed


@pytest.mark.slow
def test_a_failure_on_a_generated_version_replays_with_that_version(tmp_path: Path) -> None:
    defect = "version-percent-encoded-in-answer"
    # Only the scenario that retries every fixture: the run takes seconds.
    result = run_scenarios((forms.request_forms,), mock_defects=frozenset({defect}))
    path = json_report.write(report_view(result), tmp_path)
    data = json.loads(path.read_text())
    failure = next(
        f for row in data["requirements"] for f in row["failures"] if row["id"] == "RESP-UNCHANGED"
    )
    version = failure["replay"]["precondition"]["version"]
    assert quote(version, safe="") != version
    assert version in {entry["version"] for entry in data["exercised"]["fixture_values"]}
    number = str(failure["number"])
    broken = CliRunner().invoke(main, ["replay", str(path), "--failure", number, "--mock-defect", defect])
    assert broken.exit_code == 1, broken.output
    faithful = CliRunner().invoke(main, ["replay", str(path), "--failure", number, "--mock"])
    assert faithful.exit_code == 0, faithful.output
