"""The release story: one version (pyproject.toml) with its CHANGELOG.md section, a release workflow
that refuses a tag that disagrees with them and moves the major tag, and a complete consumer workflow
in examples/ that uses the action as the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.project import README, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import release_check

EXAMPLE = ROOT / "examples" / "github" / "retry-contract.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
# The README and the example name the action so; a user puts the owner where they host it.
README_USES = "<owner>/retry-contract@v1"
EXAMPLE_USES = "your-org/retry-contract@v1"


def _actionlint(workflow: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).parent / "actionlint"
    actionlint = str(beside) if beside.is_file() else shutil.which("actionlint")
    if actionlint is None:
        pytest.fail("actionlint is not installed; the test extra brings it (pip install -e '.[test]')")
    shellcheck = Path(sys.executable).parent / "shellcheck"
    return subprocess.run(
        [
            actionlint,
            "-no-color",
            "-oneline",
            f"-shellcheck={shellcheck if shellcheck.is_file() else ''}",
            "-pyflakes=",
            str(workflow),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- one version -------------------------------------------------------------------------------


def test_the_version_has_its_changelog_section() -> None:
    version = release_check.project_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    sections = release_check.changelog_sections()
    assert version in sections
    # The newest section is the version being worked towards.
    assert next(iter(sections)) == version


def test_the_readme_names_the_major_tag_of_the_version() -> None:
    major = release_check.major_tag(f"v{release_check.project_version()}")
    assert f"uses: <owner>/retry-contract@{major}" in README.read_text(encoding="utf-8")
    assert f"retry-contract@{major}" in EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("tag", "heading", "expected"),
    [
        ("v2.3.4", "## [2.3.4] - 2027-01-02", []),
        (
            "v2.3.5",
            "## [2.3.4] - 2027-01-02",
            ["tag v2.3.5 is not pyproject.toml's version 2.3.4", "no section '## [2.3.5] - YYYY-MM-DD'"],
        ),
        ("v2.3.4", "## [2.3.4] - unreleased", ["still dated 'unreleased'"]),
        ("v2.3.4", "## [2.3.3] - 2027-01-02", ["no section '## [2.3.4] - YYYY-MM-DD'"]),
        ("2.3.4", "## [2.3.4] - 2027-01-02", ["is not vX.Y.Z"]),
        ("v2", "## [2.3.4] - 2027-01-02", ["is not vX.Y.Z"]),
    ],
)
def test_a_tag_is_released_only_when_version_and_changelog_agree(
    tmp_path: Path, tag: str, heading: str, expected: list[str]
) -> None:
    pyproject = _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\nversion = "2.3.4"\n')
    changelog = _write(tmp_path / "CHANGELOG.md", f"# Changelog\n\n{heading}\n\n- something\n")
    found = release_check.problems(tag, pyproject, changelog)
    assert len(found) == len(expected)
    for problem, said in zip(found, expected, strict=True):
        assert said in problem


# Each starts git, actionlint or the script in a subprocess: out of the fast tier.
@pytest.mark.slow
def test_the_script_exits_1_on_the_checkouts_unreleased_version() -> None:
    version = release_check.project_version()
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "release_check.py"), f"v{version}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    dated = release_check.changelog_sections()[version] != "unreleased"
    assert completed.returncode == (0 if dated else 1), completed.stderr


# --- the release workflow ----------------------------------------------------------------------


def _release() -> dict[str, Any]:
    loaded = yaml.safe_load(RELEASE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_release_workflow_checks_then_builds_then_moves_the_major_tag() -> None:
    workflow = _release()
    # `on:` is YAML 1.1's true to PyYAML.
    assert workflow[True] == {"release": {"types": ["published"]}}
    steps = workflow["jobs"]["release"]["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    check = next(i for i, run in enumerate(runs) if "scripts/release_check.py" in run)
    build = next(i for i, run in enumerate(runs) if "pip wheel --no-deps --wheel-dir dist ." in run)
    move = next(i for i, run in enumerate(runs) if "git push --force origin" in run)
    assert check < build < move
    assert steps[move]["if"] == "${{ !github.event.release.prerelease }}"


# Each starts git, actionlint or the script in a subprocess: out of the fast tier.
@pytest.mark.slow
def test_the_major_tag_is_cut_from_the_release_tag_as_the_script_says(tmp_path: Path) -> None:
    # The workflow's shell expansion and the script's major_tag give the same tag.
    script = next(
        step["run"] for step in _release()["jobs"]["release"]["steps"] if "git tag" in step.get("run", "")
    )
    line = next(line for line in script.splitlines() if line.startswith("major="))
    for tag in ("v1.0.0", "v12.3.4"):
        completed = subprocess.run(
            ["bash", "-c", f'{line}; printf %s "$major"'],
            env={"TAG": tag, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert completed.stdout == release_check.major_tag(tag)


# --- the consumer's workflow -------------------------------------------------------------------


# Each starts git, actionlint or the script in a subprocess: out of the fast tier.
@pytest.mark.slow
def test_the_example_workflow_passes_actionlint_as_it_is() -> None:
    linted = _actionlint(EXAMPLE, ROOT)
    assert linted.returncode == 0, linted.stdout + linted.stderr


# Each starts git, actionlint or the script in a subprocess: out of the fast tier.
@pytest.mark.slow
def test_the_example_workflow_is_a_valid_use_of_this_action(tmp_path: Path) -> None:
    # With the action taken from a checkout of this repository, actionlint checks the inputs the
    # example passes and the outputs it reads against action.yml.
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count(f"uses: {EXAMPLE_USES}") == 1
    (tmp_path / ".git").mkdir()
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    workflow = _write(tmp_path / ".github" / "workflows" / "example.yml", text.replace(EXAMPLE_USES, "./"))
    linted = _actionlint(workflow, tmp_path)
    assert linted.returncode == 0, linted.stdout + linted.stderr


# Each starts git, actionlint or the script in a subprocess: out of the fast tier.
@pytest.mark.slow
def test_actionlint_finds_an_output_the_action_does_not_have(tmp_path: Path) -> None:
    # The check above can fail.
    text = (
        EXAMPLE.read_text(encoding="utf-8")
        .replace(EXAMPLE_USES, "./")
        .replace("outputs.verdict", "outputs.nope")
    )
    (tmp_path / ".git").mkdir()
    shutil.copy(ROOT / "action.yml", tmp_path / "action.yml")
    workflow = _write(tmp_path / ".github" / "workflows" / "example.yml", text)
    linted = _actionlint(workflow, tmp_path)
    assert linted.returncode == 1
    assert "nope" in linted.stdout
