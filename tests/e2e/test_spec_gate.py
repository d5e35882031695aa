"""The spec gate. On GitHub (spec-gate.yml) it is oasdiff's action, with the levels of
.github/spec-gate/; here it is scripts/spec_gate.py, with optic (oasdiff cannot be installed from the
registries these machines reach). Both must classify the same seven breaking and three compatible
changes to the committed spec: the script is run on each, and oasdiff's settings are checked against
the rule each change trips in oasdiff (its id and default level, from oasdiff's rule list). An
unchanged spec passes, a breaking change the pull request says is intended passes with a notice.
optic is installed from npm on first use into a cache outside the repository; without npm those
tests are skipped, saying so."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.project import ROOT

SCRIPT = ROOT / "scripts" / "spec_gate.py"
SPEC = "spec/retry-workflow-execution.yaml"
WORKFLOW = ROOT / ".github" / "workflows" / "spec-gate.yml"
OASDIFF_SETTINGS = ROOT / ".github" / "spec-gate" / "oasdiff.yaml"
LABEL = "breaking-change-intended"
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


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _require_reason(document: dict[str, Any]) -> None:
    request = _schema(document, "RetryRequest")
    request["properties"]["reason"] = {"type": "string"}
    request["required"].append("reason")


def _allow_reason(document: dict[str, Any]) -> None:
    _schema(document, "RetryRequest")["properties"]["reason"] = {"type": "string"}


def _status_enum(document: dict[str, Any]) -> list[str]:
    enum: list[str] = _schema(document, "WorkflowExecution")["properties"]["status"]["enum"]
    return enum


def _drop_terminated(document: dict[str, Any]) -> None:
    _status_enum(document).remove("TERMINATED")


def _add_paused(document: dict[str, Any]) -> None:
    _status_enum(document).append("PAUSED")


def _drop_engine_execution_id(document: dict[str, Any]) -> None:
    execution = _schema(document, "WorkflowExecution")
    del execution["properties"]["engineExecutionId"]
    execution["required"].remove("engineExecutionId")


def _nonce_becomes_integer(document: dict[str, Any]) -> None:
    authentication = _schema(document, "RetryRequest")["properties"]["authentication"]
    authentication["properties"]["nonce"] = {"type": "integer"}


def _require_query_mode(document: dict[str, Any]) -> None:
    parameter = {"name": "mode", "in": "query", "required": True, "schema": {"type": "string"}}
    _operation(document).setdefault("parameters", []).append(parameter)


def _require_version(document: dict[str, Any]) -> None:
    _schema(document, "WorkflowExecution")["required"].append("version")


def _allow_query_dry_run(document: dict[str, Any]) -> None:
    parameter = {"name": "dryRun", "in": "query", "required": False, "schema": {"type": "boolean"}}
    _operation(document).setdefault("parameters", []).append(parameter)


def _reword_description(document: dict[str, Any]) -> None:
    _operation(document)["description"] = "The same operation, described in other words."


@dataclass(frozen=True)
class Change:
    """One change to the committed spec, and how each gate must see it."""

    name: str
    edit: Callable[[dict[str, Any]], None]
    breaking: bool
    # What optic prints for it (the local gate).
    optic_says: str
    # The oasdiff rule it trips and that rule's default level (oasdiff's checker/rules.go), or None
    # for a change no rule reports: oasdiff fails on the level after .github/spec-gate's overrides.
    oasdiff_rule: str | None
    oasdiff_default: str | None


CHANGES = [
    # Break a client written against the base spec: a request it sends is now refused, or an
    # answer it reads no longer has the shape it expects.
    Change(
        "required-request-property-added",
        _require_reason,
        True,
        "cannot add a required request property 'reason'",
        "new-required-request-property",
        "ERR",
    ),
    Change(
        "request-property-type-changed",
        _nonce_becomes_integer,
        True,
        "expected request body property 'nonce' not to be narrowed",
        "request-property-type-changed",
        "ERR",
    ),
    Change(
        "required-query-parameter-added",
        _require_query_mode,
        True,
        "cannot add required query parameter mode",
        "new-required-request-parameter",
        "ERR",
    ),
    Change(
        "required-response-property-removed",
        _drop_engine_execution_id,
        True,
        "cannot remove response property 'engineExecutionId'",
        "response-required-property-removed",
        "ERR",
    ),
    Change(
        "response-enum-value-added",
        _add_paused,
        True,
        "cannot add enum option 'PAUSED'",
        "response-property-enum-value-added",
        "WARN",
    ),
    # Break a server that conformed to the base spec: an answer it gives is no longer allowed.
    # oasdiff reports these at INFO (no client breaks), hence the overrides.
    Change(
        "response-enum-value-removed",
        _drop_terminated,
        True,
        "cannot add enum option 'TERMINATED'",
        "response-property-enum-value-removed",
        "INFO",
    ),
    Change(
        "optional-response-property-made-required",
        _require_version,
        True,
        "cannot make required response property 'version' optional",
        "response-property-became-required",
        "INFO",
    ),
    # Break neither side.
    Change(
        "optional-request-property-added",
        _allow_reason,
        False,
        "property /schema/properties/reason: added",
        "new-optional-request-property",
        "INFO",
    ),
    Change(
        "optional-query-parameter-added",
        _allow_query_dry_run,
        False,
        "query parameter dryRun: added",
        "new-optional-request-parameter",
        "INFO",
    ),
    Change("description-reworded", _reword_description, False, "/description changed", None, None),
]
BREAKING = [change for change in CHANGES if change.breaking]
COMPATIBLE = [change for change in CHANGES if not change.breaking]
# Each optic run takes 20-60 s, so the local gate is run on a sample: a request-side break, the
# response-side break that makes the gate compare both ways (an enum value removed), and one
# compatible change. Every change is classified against oasdiff's levels above, without a run.
OPTIC_SAMPLE = {
    "required-request-property-added",
    "response-enum-value-removed",
    "optional-request-property-added",
}
BREAKING_SAMPLE = [change for change in BREAKING if change.name in OPTIC_SAMPLE]
COMPATIBLE_SAMPLE = [change for change in COMPATIBLE if change.name in OPTIC_SAMPLE]


def _by_name(changes: list[Change]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("change", changes, ids=[change.name for change in changes])


def test_seven_breaking_and_three_compatible_changes() -> None:
    assert (len(BREAKING), len(COMPATIBLE)) == (7, 3)


def test_the_committed_spec_is_the_shape_these_changes_expect(committed_spec: str) -> None:
    # The changes edit named schemas: if the spec is reshaped, they must be rewritten, not skipped.
    document = yaml.safe_load(committed_spec)
    for change in CHANGES:
        edited = copy.deepcopy(document)
        change.edit(edited)
        assert edited != document, change.name


# --- the GitHub gate: oasdiff's action and its settings ---------------------------------------


def _workflow_step(uses_prefix: str) -> dict[str, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = workflow["jobs"]["spec-gate"]["steps"]
    found = [step for step in steps if str(step.get("uses", "")).startswith(uses_prefix)]
    assert len(found) == 1, f"spec-gate.yml runs {uses_prefix} {len(found)} times"
    step: dict[str, Any] = found[0]
    return step


def _oasdiff_levels() -> dict[str, str]:
    settings = yaml.safe_load(OASDIFF_SETTINGS.read_text(encoding="utf-8"))
    levels_file = OASDIFF_SETTINGS.parent / settings["severity-levels"]
    levels = {}
    # oasdiff refuses the whole file unless every line is exactly "rule-id level".
    for number, line in enumerate(levels_file.read_text(encoding="utf-8").split("\n")[:-1], start=1):
        fields = line.split()
        assert len(fields) == 2 and line == " ".join(fields), f"{levels_file.name}:{number}: {line!r}"
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+", fields[0]), f"{levels_file.name}:{number}: {line!r}"
        assert fields[1] in {"err", "warn", "info", "none"}, f"{levels_file.name}:{number}: {line!r}"
        levels[fields[0]] = fields[1].upper()
    return levels


def test_github_runs_oasdiff_on_the_pull_requests_spec_without_uploading_it() -> None:
    step = _workflow_step("oasdiff/oasdiff-action/breaking@")
    settings = step["with"]
    assert settings["base"] == "${{ github.event.pull_request.base.sha }}:" + SPEC
    assert settings["revision"] == f"HEAD:{SPEC}"
    # The action uploads both specs for a review page and comments on the pull request unless told not to.
    assert settings["review"] == "false"
    assert settings["github-token"] == ""
    assert settings["allow-external-refs"] == "false"
    assert (ROOT / step["env"]["OASDIFF_CONFIG"]).resolve() == OASDIFF_SETTINGS


def test_github_fails_on_warn_unless_the_label_says_intended() -> None:
    fail_on = _workflow_step("oasdiff/oasdiff-action/breaking@")["with"]["fail-on"]
    assert fail_on == (
        "${{ !contains(github.event.pull_request.labels.*.name, '" + LABEL + "') && 'WARN' || '' }}"
    )
    # A fail-on in the settings file would apply when the input is empty, and fail an intended change.
    assert "fail-on" not in yaml.safe_load(OASDIFF_SETTINGS.read_text(encoding="utf-8"))


@_by_name(CHANGES)
def test_oasdiff_as_configured_fails_exactly_the_breaking_changes(change: Change) -> None:
    levels = _oasdiff_levels()
    level = levels.get(change.oasdiff_rule or "", change.oasdiff_default)
    assert (level in {"ERR", "WARN"}) is change.breaking, f"{change.oasdiff_rule}: {level}"


def test_oasdiff_overrides_only_raise_server_side_narrowings() -> None:
    # Each override makes a rule about answers stricter; none relaxes a rule.
    levels = _oasdiff_levels()
    assert levels, "no overrides: oasdiff would pass a response enum value removed"
    for rule, level in levels.items():
        assert rule.startswith("response-") and level == "ERR", f"{rule} {level}"


# --- the local gate: scripts/spec_gate.py with optic ------------------------------------------


def test_an_unchanged_spec_passes(tool: None, committed_spec: str, tmp_path: Path) -> None:
    head = tmp_path / "head.yaml"
    head.write_text(committed_spec, encoding="utf-8")
    gate = _gate("--base-ref", "HEAD", "--head", str(head))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "spec gate: no breaking change to the contract" in gate.stdout
    assert f"base HEAD:{SPEC}" in gate.stdout


@_by_name(COMPATIBLE_SAMPLE)
def test_a_compatible_change_passes(tool: None, committed_spec: str, tmp_path: Path, change: Change) -> None:
    # Rewritten by PyYAML too: what the breaking cases below fail on is their change, not the layout.
    base = tmp_path / "base.yaml"
    base.write_text(committed_spec, encoding="utf-8")
    gate = _gate("--base", str(base), "--head", str(_changed(committed_spec, change.edit, tmp_path)))
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert change.optic_says in gate.stdout
    assert "spec gate: no breaking change to the contract" in gate.stdout


@_by_name(BREAKING_SAMPLE)
def test_a_breaking_change_fails(tool: None, committed_spec: str, tmp_path: Path, change: Change) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(committed_spec, encoding="utf-8")
    gate = _gate("--base", str(base), "--head", str(_changed(committed_spec, change.edit, tmp_path)))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert change.optic_says in gate.stdout
    assert "error: Breaking change to the contract:" in gate.stdout
    assert f"label the pull request {LABEL}" in gate.stdout


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
