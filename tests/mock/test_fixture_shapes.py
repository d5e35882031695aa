"""Every fixture shape meets a successful retry in every run, so every response check sees it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retry_contract.provisioning import fixture_shapes
from retry_contract.reports import json_report
from retry_contract.runner import DEFAULT_SEED, MOCK_PROJECT, RunOptions, run


@pytest.mark.slow
def test_each_fixture_shape_is_retried_with_success_and_reported(tmp_path: Path) -> None:
    result = run(RunOptions(base_url=None, project=MOCK_PROJECT, credentials=None, fuzz=False))
    assert {shape.label for shape in fixture_shapes(DEFAULT_SEED)} <= {
        label for label, count in result.fixture_shapes_retried.items() if count
    }
    report = json.loads(json_report.write(result, tmp_path).read_text())
    assert report["successful_retries_by_fixture_shape"] == dict(
        sorted(result.fixture_shapes_retried.items())
    )
