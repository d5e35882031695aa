"""Reporters: each reads a finished RunResult and writes one format. None of them judges anything.

Every string they emit passes through the run's secret registry first.
"""

from __future__ import annotations

from pathlib import Path

from retry_contract.reports import json_report, junit
from retry_contract.runner import RunResult


def write_all(result: RunResult, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [junit.write(result, directory), json_report.write(result, directory)]
