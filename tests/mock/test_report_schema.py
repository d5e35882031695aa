"""The JSON report carries a schema_version and matches its published JSON Schema, so that whoever
reads it can check it and tell which shape they read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from retry_contract.exchange import Credential
from retry_contract.fixture_values import fixture_shapes
from retry_contract.reports import json_report
from retry_contract.reports.model import build as report_view
from retry_contract.requirements import Level
from retry_contract.runner import MOCK_PROJECT, RunOptions, RunResult, run
from retry_contract.verdict import Outcome

SCHEMA: dict[str, Any] = json.loads(json_report.SCHEMA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def failing_run() -> RunResult:
    return run(
        RunOptions(
            base_url=None,
            project=MOCK_PROJECT,
            credentials=None,
            max_examples=3,
            mock_defects=frozenset({"retry-running", "readonly-can-retry"}),
        )
    )


def _report(result: RunResult) -> dict[str, Any]:
    built: dict[str, Any] = json.loads(json.dumps(json_report.build(report_view(result))))
    return built


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.slow  # shares a whole run with fuzzing
def test_a_failing_run_with_fuzzing_matches_the_schema(failing_run: RunResult) -> None:
    report = _report(failing_run)
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(report), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    assert report["schema_version"] == json_report.SCHEMA_VERSION
    failures = [f for r in report["requirements"] for f in r["failures"]]
    assert failures and all("replay" in f for f in failures)


@pytest.mark.slow  # shares a whole run with fuzzing
def test_the_schema_catches_a_report_that_drifted(failing_run: RunResult) -> None:
    validator = Draft202012Validator(SCHEMA)
    drifted = _report(failing_run)
    drifted["a_field_nobody_documented"] = 1
    assert not validator.is_valid(drifted)
    renamed = _report(failing_run)
    renamed["requirements"][0]["result"] = renamed["requirements"][0].pop("outcome")
    assert not validator.is_valid(renamed)


def test_the_schema_enumerates_what_the_code_defines() -> None:
    """The enums are stated in the published schema for readers; the code stays their one source."""
    definitions = SCHEMA["$defs"]
    assert definitions["failure"]["properties"]["credential"]["enum"] == [c.value for c in Credential]
    assert definitions["requirement"]["properties"]["level"]["enum"] == [level.value for level in Level]
    assert definitions["failure"]["properties"]["level"]["enum"] == [level.value for level in Level]
    assert definitions["requirement"]["properties"]["outcome"]["enum"] == [o.value for o in Outcome]
    assert SCHEMA["properties"]["schema_version"]["const"] == json_report.SCHEMA_VERSION


@pytest.mark.slow  # shares a whole run with fuzzing
def test_the_report_names_every_generated_fixture_value(failing_run: RunResult) -> None:
    recorded = _report(failing_run)["exercised"]["fixture_values"]
    shapes = fixture_shapes(failing_run.options.seed)
    assert [entry["label"] for entry in recorded] == [shape.label for shape in shapes]
    for entry, shape in zip(recorded, shapes, strict=True):
        assert entry["metadata"] == shape.metadata and entry["input"] == shape.workflow_input
        assert (entry["version"], entry["workflow_external_id_tail"]) == (shape.version, shape.workflow_tail)
        assert entry["successful_retries"] == failing_run.fixture_shapes_retried[shape.label]
    missing = _report(failing_run)
    del missing["exercised"]["fixture_values"][0]["version"]
    assert not Draft202012Validator(SCHEMA).is_valid(missing)
