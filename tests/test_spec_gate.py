"""The spec gate (scripts/spec_gate.py, run on pull requests that touch spec/): a breaking change to
the committed spec fails it, an unchanged or compatible spec passes, and a breaking change the pull
request says is intended passes with a notice. The gate's tool, optic, is installed from npm on first
use into a cache outside the repository; without npm these tests are skipped, saying so."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "spec_gate.py"
SPEC = "spec/retry-workflow-execution.yaml"
OPERATION = ("paths", "/workflows/executions/{executionId}/retry", "post")
# npm's words for a registry it cannot reach: then the tool cannot be had here, which is no failure
# of the gate. Any other failure to install is one (a broken lock, say).
OFFLINE = re.compile(r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|network", re.IGNORECASE)


def _gate(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "GITHUB_ACTIONS"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**env, **environment},
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def committed_spec() -> str:
    """The spec as committed (the base a pull request is compared with), not the working tree's."""
    shown = subprocess.run(["git", "show", f"HEAD:{SPEC}"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        pytest.skip(f"no git history to read the committed spec from: {shown.stderr.strip()}")
    return shown.stdout


@pytest.fixture(scope="module")
def tool() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the spec gate's tool, optic, is an npm package")
    installed = _gate("--install-only")
    if installed.returncode == 3 and OFFLINE.search(installed.stdout + installed.stderr):
        pytest.skip(f"optic cannot be installed from npm here: {installed.stdout.strip()[-300:]}")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert Path(installed.stdout.strip().splitlines()[-1]).exists()


def _changed(committed: str, change: Callable[[dict[str, Any]], None], directory: Path) -> Path:
    """The committed spec with one change, written out anew (so its formatting changes too)."""
    document = copy.deepcopy(yaml.safe_load(committed))
    change(document)
    path = directory / "head.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _operation(document: dict[str, Any]) -> dict[str, Any]:
    node = document
    for key in OPERATION:
        node = node[key]
    return node


def _require_reason(document: dict[str, Any]) -> None:
    request = document["components"]["schemas"]["RetryRequest"]
    request["properties"]["reason"] = {"type": "string"}
    request["required"].append("reason")


def _allow_reason(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["RetryRequest"]["properties"]["reason"] = {"type": "string"}


def _drop_terminated(document: dict[str, Any]) -> None:
    status = document["components"]["schemas"]["WorkflowExecution"]["properties"]["status"]
    status["enum"].remove("TERMINATED")


def test_the_committed_spec_is_the_shape_these_changes_expect(committed_spec: str) -> None:
    # The changes below edit named schemas: if the spec is reshaped, they must be rewritten, not skipped.
    document = yaml.safe_load(committed_spec)
    assert "requestBody" in _operation(document)
    assert "authentication" in document["components"]["schemas"]["RetryRequest"]["required"]
    assert (
        "TERMINATED" in document["components"]["schemas"]["WorkflowExecution"]["properties"]["status"]["enum"]
    )


def test_an_unchanged_spec_passes(tool: None, committed_spec: str, tmp_path: Path) -> None:
    head = tmp_path / "head.yaml"
    head.write_text(committed_spec, encoding="utf-8")
    gate = _gate("--base-ref", "HEAD", "--head", str(head))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "spec gate: no breaking change to the contract" in gate.stdout
    assert f"base HEAD:{SPEC}" in gate.stdout


def test_a_compatible_change_passes(tool: None, committed_spec: str, tmp_path: Path) -> None:
    # Rewritten by PyYAML too: what the breaking cases below fail on is their change, not the layout.
    base = tmp_path / "base.yaml"
    base.write_text(committed_spec, encoding="utf-8")
    head = _changed(committed_spec, _allow_reason, tmp_path)
    gate = _gate("--base", str(base), "--head", str(head))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "property /schema/properties/reason: added" in gate.stdout


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # Breaks clients: a request the base spec allowed is now refused.
        (_require_reason, "cannot add a required request property 'reason'"),
        # Breaks conforming servers: a status the base spec allowed in the answer no longer is.
        (_drop_terminated, "cannot add enum option 'TERMINATED'"),
    ],
    ids=["required-request-field-added", "response-enum-value-removed"],
)
def test_a_breaking_change_fails(
    tool: None, committed_spec: str, tmp_path: Path, change: Callable[[dict[str, Any]], None], said: str
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(committed_spec, encoding="utf-8")
    gate = _gate("--base", str(base), "--head", str(_changed(committed_spec, change, tmp_path)))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert said in gate.stdout
    assert "error: Breaking change to the contract:" in gate.stdout
    assert "label the pull request breaking-change-intended" in gate.stdout


def test_an_intended_breaking_change_passes_with_a_notice(
    tool: None, committed_spec: str, tmp_path: Path
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(committed_spec, encoding="utf-8")
    head = _changed(committed_spec, _require_reason, tmp_path)
    gate = _gate("--base", str(base), "--head", str(head), "--intended", GITHUB_ACTIONS="true")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "cannot add a required request property 'reason'" in gate.stdout
    assert "::notice title=Breaking change intended::" in gate.stdout


def test_an_invalid_spec_cannot_be_compared(tool: None, committed_spec: str, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(committed_spec, encoding="utf-8")
    # A parameter without `in`: OpenAPI requires it (unlike an operation's `responses`, optional in 3.1).
    head = _changed(
        committed_spec, lambda document: _operation(document)["parameters"][0].pop("in"), tmp_path
    )
    gate = _gate("--base", str(base), "--head", str(head))
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert "is not valid OpenAPI" in gate.stdout
