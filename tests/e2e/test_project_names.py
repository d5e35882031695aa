"""A project name is checked against the spec's rule before anything is sent, and every project URL,
the client's and the fuzzer's, is built by one function."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from retry_contract import contract
from retry_contract.runner import CouldNotRun, RunOptions
from support.project import CLI

NOT_PROJECTS = ["a/b", "a b", "-a", "a-", "..", "a%2Fb", "a?b", "a\nb", "", "ä"]


@pytest.mark.parametrize("name", ["contract-test", "p", "publicdata", "A1-b2", "x" * 64])
def test_url_names_of_cdf_projects_pass(name: str) -> None:
    assert contract.check_project_name(name) == name


@pytest.mark.parametrize("name", NOT_PROJECTS)
def test_other_names_are_refused_saying_what_a_project_name_is(name: str) -> None:
    with pytest.raises(contract.InvalidProjectName, match="letters, digits and hyphens"):
        contract.check_project_name(name)


def test_the_rule_is_read_from_the_spec() -> None:
    assert contract.PROJECT_URL_NAME.pattern == contract.schema("ProjectUrlName")["pattern"]


def test_a_refused_name_is_shown_cut_short() -> None:
    with pytest.raises(contract.InvalidProjectName) as refused:
        contract.check_project_name("/" * 10_000)
    assert len(str(refused.value)) < 200


def test_the_project_is_one_percent_encoded_path_segment() -> None:
    assert contract.project_base_url("http://h:1/", "a/b") == "http://h:1/api/v1/projects/a%2Fb"
    assert contract.project_base_url("http://h:1", "p") == "http://h:1/api/v1/projects/p"


@pytest.mark.parametrize("name", ["a/b", "a b", ""])
def test_run_options_refuse_a_name_that_is_no_project(name: str) -> None:
    with pytest.raises(CouldNotRun, match="not a CDF project URL name"):
        RunOptions(base_url="http://127.0.0.1:1", project=name, credentials=None)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that takes connections without answering: anything sent to it is seen afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CDF_", "GITHUB_"))}
    environment["CDF_TOKEN"] = "project-name-test-token"
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=environment, timeout=60)


def _nothing_was_sent_to(listener: socket.socket) -> bool:
    listener.setblocking(False)
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        return True
    connection.close()
    return False


@pytest.mark.parametrize("command", ["run", "replay"])
@pytest.mark.parametrize("name", ["a/b", "a b", "..", "-x"])
def test_an_invalid_project_exits_2_with_one_line_and_sends_nothing(
    command: str, name: str, listener: socket.socket, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    target = ["--base-url", url, "--project", name]
    args = (
        ["run", *target, "--report-dir", str(tmp_path)]
        if command == "run"
        else [
            "replay",
            str(tmp_path / "retry-contract.json"),
            "--failure",
            "1",
            *target,
        ]
    )
    result = run_cli(args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"retry-contract: --project: {name!r} is not a CDF project URL name: letters, digits and hyphens "
        "only, and no hyphen first or last"
    ]
    assert _nothing_was_sent_to(listener)


def test_the_pytest_plugin_refuses_an_invalid_project_before_running(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDF_TOKEN", "plugin-test-token-2")
    pytester.makepyfile(
        test_contract="""
def test_contract(retry_contract_result):
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "--retry-contract-url=http://127.0.0.1:9", "--retry-contract-project=a/b", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'a/b' is not a CDF project URL name*"])
    assert "cannot reach" not in result.stdout.str()
