"""A whole run of a few scenarios only, against a fresh embedded mock: seconds, not a minute."""

from __future__ import annotations

from typing import Any

import pytest

from retry_contract import runner
from retry_contract.results import RunOptions, RunResult
from retry_contract.run_settings import MOCK_PROJECT
from retry_contract.scenarios import Scenario


def run_scenarios(scenarios: tuple[Scenario, ...], **options: Any) -> RunResult:
    """`runner.run` with `scenarios` as the only ones (none started early, none late), without fuzzing
    unless `options` say otherwise; `options` are RunOptions fields (`mock_defects`, `seed`, ...)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "ALL_SCENARIOS", scenarios)
        patch.setattr(runner, "LONGEST_FIRST", ())
        patch.setattr(runner, "LATE_SCENARIOS", ())
        return runner.run(
            RunOptions(base_url=None, project=MOCK_PROJECT, credentials=None, **{"fuzz": False, **options})
        )
