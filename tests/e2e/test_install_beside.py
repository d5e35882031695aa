"""retry-contract installed into a user's own test environment, beside their versions of its dependencies.

Users pip-install the package into environments that already hold their tools. The ranges declared in
pyproject.toml must let pip keep the versions found there, and the pytest plugin must work with them.
The environment is a fresh virtual environment (no system site-packages) filled from the package index:
the test needs the index, and is skipped, saying so, only when a probe shows the index is unreachable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from retry_contract.requirements import CATALOGUE
from support.project import ROOT

DEFAULT_INDEX = "https://pypi.org/simple/"
# What the user's environment holds before retry-contract arrives: other versions than the lock's, inside
# the declared ranges (pytest 8 where the lock has 9; rich a major older).
USER_VERSIONS = {
    "click": "8.1.8",
    "rich": "14.0.0",
    "pyyaml": "6.0.2",
    "requests": "2.32.5",
    "pytest": "8.4.2",
}
USER_TEST = """
from retry_contract.pytest_plugin import check_requirement

def test_retry_contract(retry_contract_result, retry_contract_requirement):
    check_requirement(retry_contract_result, retry_contract_requirement)
"""
# Enough examples to judge every requirement against the embedded mock; the run stays short.
MAX_EXAMPLES = 5
# The whole install-and-run, shared by its steps: a stalled index or a hung run fails this test, and
# the self-tests stay within CI's budget. It takes 30-45 s on two busy cores.
BUDGET_SECONDS = 300
# Variables of this process that must not leak into the user's: our interpreter and checkout, our
# pytest options, a live target's credentials. PIP_* (index, cache, certificates) is kept.
FOREIGN_VARIABLES = ("PYTHON", "PYTEST_", "CDF_", "MOCK_", "VIRTUAL_ENV", "RETRY_CONTRACT")


def _requirements(section: Iterable[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, section)}


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        **_requirements(project["optional-dependencies"]["test"]),
        **_requirements(project["dependencies"]),
    }


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        name, separator, version = line.partition("==")
        if separator and not line.startswith("#"):
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_VARIABLES)}


def _index_url(environment: dict[str, str]) -> str:
    """The index pip will use here: PIP_INDEX_URL, else pip's configuration, else PyPI."""
    if environment.get("PIP_INDEX_URL"):
        return environment["PIP_INDEX_URL"].split()[0]
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    ).stdout
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".index-url") and value:
            return value.strip().strip("'\"")
    return DEFAULT_INDEX


def _unreachable(index: str) -> str | None:
    """Why the index cannot be reached, or None; only this skips the test, never a failed install."""
    url = index.rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20):
            return None
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {error}"


@dataclass(frozen=True)
class UserEnvironment:
    """Runs the steps of a user's setup with their environment variables, before a common deadline."""

    variables: dict[str, str]
    deadline: float

    def run(self, command: list[str], cwd: Path) -> str:
        """The step's output; the test fails with all of it when the step fails or the deadline passes."""
        return _run(
            command, timeout=max(1.0, self.deadline - time.monotonic()), environment=self.variables, cwd=cwd
        )


def _run(command: list[str], *, timeout: float, environment: dict[str, str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as expired:
        output = [
            part.decode() if isinstance(part, bytes) else part for part in (expired.stdout, expired.stderr)
        ]
        pytest.fail(
            f"{' '.join(command)} outlasted the {BUDGET_SECONDS} s budget:\n"
            + "\n".join(filter(None, output))
        )
    if done.returncode:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _dev() -> ModuleType:
    """dev.py, the stdlib-only script at the root, imported from its file."""
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lock_pins_every_package_exactly_within_the_declared_ranges() -> None:
    """`pip install --constraint requirements.lock` would fail on a pin outside a range."""
    lines = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    loose = [
        line for line in lines if line and not line.startswith("#") and not re.fullmatch(r"\S+==\S+", line)
    ]
    assert not loose, f"not exact pins: {loose}"
    locked = _locked()
    for name, requirement in _declared().items():
        assert name in locked, f"{name} is declared but not locked: run `python3 dev.py lock`"
        assert requirement.specifier.contains(locked[name]), (
            f"the lock's {name}=={locked[name]} is outside {requirement}"
        )


def test_the_lock_is_written_from_exact_pins_only_in_name_order() -> None:
    dev = _dev()
    written = dev.lock_text("PyYAML==6.0.3\nclick==8.5.1\nhttpx2==2.16.2\nhttpx==0.28.1\n")
    assert [line for line in written.splitlines() if not line.startswith("#")] == [
        "click==8.5.1",
        "httpx==0.28.1",
        "httpx2==2.16.2",
        "PyYAML==6.0.3",
    ]
    # A direct reference would tie the lock to one machine's files.
    with pytest.raises(ValueError, match="not an exact pin"):
        dev.lock_text("click==8.5.1\nmytool @ file:///tmp/mytool-1.0-py3-none-any.whl\n")


def test_a_change_to_the_lock_or_pyproject_means_reinstalling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = _dev()
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "requirements.lock"
    pyproject.write_text('[project]\nname = "x"\n')
    lock.write_text("click==8.5.1\n")
    monkeypatch.setattr(dev, "PYPROJECT", pyproject)
    monkeypatch.setattr(dev, "LOCK", lock)
    stamps = [dev.installed_from()]
    lock.write_text("click==8.1.8\n")
    stamps.append(dev.installed_from())
    pyproject.write_text('[project]\nname = "y"\n')
    stamps.append(dev.installed_from())
    assert len(set(stamps)) == 3


def test_the_users_versions_are_other_than_the_locked_ones_and_allowed() -> None:
    """Guards the premise of the install test: it would prove nothing with the lock's own versions."""
    declared, locked = _declared(), _locked()
    for name, version in USER_VERSIONS.items():
        assert name in declared, f"{name} is not declared in pyproject.toml"
        assert declared[name].specifier.contains(version), f"{name}=={version} is outside {declared[name]}"
        assert locked.get(name) not in (None, version), f"{name}: the lock holds {locked.get(name)}"


@pytest.mark.slow
def test_installed_beside_other_versions_the_plugin_runs_with_them(tmp_path: Path) -> None:
    variables = _environment()
    reason = _unreachable(_index_url(variables))
    if reason is not None:
        pytest.skip(f"the package index is unreachable, so nothing can be installed: {reason}")
    user = UserEnvironment(variables, time.monotonic() + BUDGET_SECONDS)

    venv = tmp_path / "venv"
    # Without --system-site-packages (venv's default): nothing of .venv or the system is visible in it.
    user.run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    user.run([*pip, *(f"{name}=={version}" for name, version in USER_VERSIONS.items())], cwd=tmp_path)
    # Not editable and without requirements.lock: as a user installs it, within the declared ranges.
    user.run([*pip, str(ROOT)], cwd=tmp_path)

    report = user.run(
        [
            python,
            "-c",
            "import importlib.metadata as m, json, sys, retry_contract;"
            "json.dump({'versions': {n: m.version(n) for n in sys.argv[1:]},"
            " 'module': retry_contract.__file__}, sys.stdout)",
            *USER_VERSIONS,
        ],
        cwd=tmp_path,
    )
    installed = json.loads(report)
    assert installed["versions"] == USER_VERSIONS, "pip replaced versions the user's environment held"
    assert Path(installed["module"]).is_relative_to(venv), f"imported from {installed['module']}"
    # Every installed distribution's requirements are met, not only those pip was asked about.
    user.run([python, "-m", "pip", "check"], cwd=tmp_path)

    project = tmp_path / "project"
    project.mkdir()
    (project / "test_retry_contract.py").write_text(USER_TEST, encoding="utf-8")
    junit = project / "results.xml"
    # The plugin comes from the pytest11 entry point; with no URL it tests the embedded mock.
    output = user.run(
        [python, "-m", "pytest", f"--retry-contract-max-examples={MAX_EXAMPLES}", f"--junitxml={junit}"],
        cwd=project,
    )
    cases = {str(case.get("name")): case for case in ElementTree.parse(junit).iter("testcase")}
    expected = {f"test_retry_contract[{requirement.id}]" for requirement in CATALOGUE}
    assert set(cases) == expected, output
    not_passed = {
        name for name, case in cases.items() if any(c.tag in {"failure", "error", "skipped"} for c in case)
    }
    assert not not_passed, f"{sorted(not_passed)} did not pass:\n{output}"
