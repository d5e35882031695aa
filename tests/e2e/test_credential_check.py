"""A misconfigured credential stops the run (exit 2, one line naming its variable) instead of
being reported as a server's contract violation."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from cdf_workflows_mock.cdf import SESSIONS_CREATE, WORKFLOW_READ, WORKFLOW_WRITE
from cdf_workflows_mock.config import TokenGrant
from retry_contract.verdict import ExitCode
from support.project import CLI

PROJECT = "credential-check"
WRITE, READONLY = "check-write-token", "check-readonly-token"


def _run(base_url: str, env: dict[str, str], report_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CDF_", "GITHUB_"))}
    environment.update(env)
    return subprocess.run(
        [
            *CLI,
            "run",
            "--base-url",
            base_url,
            "--project",
            PROJECT,
            "--no-fuzz",
            "--report-dir",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


@pytest.fixture(scope="module")
def mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, WRITE, READONLY)) as server:
        yield server


def _one_line_error(completed: subprocess.CompletedProcess[str], names: str) -> None:
    assert completed.returncode == ExitCode.COULD_NOT_RUN, completed.stdout + completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert names in lines[0]
    assert "Traceback" not in completed.stderr


def test_a_wrong_readonly_token_is_a_configuration_error_not_an_auth_403_failure(
    mock: EmbeddedMock, tmp_path: Path
) -> None:
    completed = _run(mock.base_url, {"CDF_TOKEN": WRITE, "CDF_READONLY_TOKEN": "wrong"}, tmp_path)
    _one_line_error(completed, "CDF_READONLY_TOKEN")
    assert "401" in completed.stderr
    assert "wrong" not in completed.stderr.replace("CDF_READONLY_TOKEN", "")
    # The target was reached: the reports exist, judge nothing and say why (a CI job keeps them).
    report = json.loads((tmp_path / "retry-contract.json").read_text())
    assert "CDF_READONLY_TOKEN" in report["incomplete"] and report["exit_code"] == ExitCode.COULD_NOT_RUN
    assert not any(row["judged"] for row in report["requirements"])


def test_a_readonly_token_that_may_write_is_refused(tmp_path: Path) -> None:
    config = MockConfig.with_tokens(PROJECT, WRITE, READONLY)
    grants = dict(config.tokens)
    grants[READONLY] = TokenGrant(
        frozenset({WORKFLOW_READ, WORKFLOW_WRITE, SESSIONS_CREATE}), frozenset({PROJECT})
    )
    with EmbeddedMock(replace(config, tokens=grants)) as server:
        completed = _run(server.base_url, {"CDF_TOKEN": WRITE, "CDF_READONLY_TOKEN": READONLY}, tmp_path)
    _one_line_error(completed, "CDF_READONLY_TOKEN")
    assert "WRITE" in completed.stderr


def test_a_main_token_without_write_is_refused_by_name(tmp_path: Path) -> None:
    config = MockConfig.with_tokens(PROJECT, WRITE, READONLY)
    grants = dict(config.tokens)
    grants[WRITE] = TokenGrant(frozenset({WORKFLOW_READ, SESSIONS_CREATE}), frozenset({PROJECT}))
    with EmbeddedMock(replace(config, tokens=grants)) as server:
        completed = _run(server.base_url, {"CDF_TOKEN": WRITE}, tmp_path)
    _one_line_error(completed, "CDF_TOKEN")


def test_valid_credentials_pass_the_check(mock: EmbeddedMock, tmp_path: Path) -> None:
    completed = _run(mock.base_url, {"CDF_TOKEN": WRITE, "CDF_READONLY_TOKEN": READONLY}, tmp_path)
    assert completed.returncode == ExitCode.CONFORMANT, completed.stdout + completed.stderr
