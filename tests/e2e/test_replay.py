"""`retry-contract replay` end to end over HTTP: a run against a defective embedded mock writes a
report whose failures replay, by default on the report's own target (a fresh mock with the same
defects, or the server the run reached), as "still fails"; on another target the verdict is about that
target only ("does not reproduce here", "reproduced elsewhere"), never a fix; a report or failure that
cannot be replayed, an unreachable target or missing credentials is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cdf_workflows_mock import EmbeddedMock, MockConfig
from retry_contract import replay_target
from retry_contract.cli import main
from retry_contract.replay_target import ReplayTarget
from retry_contract.reports import json_report
from retry_contract.reports.model import build as report_view
from retry_contract.runner import MOCK_PROJECT
from retry_contract.scenarios import auth, malformed, states
from retry_contract.secrets_registry import SecretRegistry
from support.project import CLI
from support.scenario_runs import run_scenarios

DEFECTS = ("retry-running", "readonly-can-retry", "id-truncated-to-36")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], SecretRegistry]]:
    """A run of three scenarios against a mock with the defects: its JSON report, and the registry of
    the secrets the run handled (tokens and every nonce), none of which the report may hold."""
    # Only the scenarios the defects break: the run takes seconds, not a minute.
    scenarios = (auth.readonly_token, malformed.malformed_ids, states.non_retryable_states)
    result = run_scenarios(scenarios, concurrency=2, mock_defects=frozenset(DEFECTS))
    path = json_report.write(report_view(result), tmp_path_factory.mktemp("replay"))
    yield path, json.loads(path.read_text()), result.secrets


def failures(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [failure for row in data["requirements"] for failure in row["failures"]]


def number_of(data: dict[str, Any], requirement: str, origin: str) -> int:
    return next(
        int(f["number"]) for f in failures(data) if f["requirement"] == requirement and origin in f["origin"]
    )


def replay(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args])


def test_the_report_numbers_its_failures_and_records_how_to_replay_them(
    report: tuple[Path, dict[str, Any], SecretRegistry],
) -> None:
    path, data, secrets = report
    found = failures(data)
    assert [f["number"] for f in found] == list(range(1, len(found) + 1))
    readonly = found[number_of(data, "AUTH-403", "read-only token") - 1]
    assert readonly["credential"] == "readonly"
    assert "Bearer $CDF_READONLY_TOKEN" in readonly["reproduce"]
    assert readonly["precondition"].startswith("an execution of workflow retry-contract-")
    assert "in status FAILED" in readonly["precondition"]
    assert readonly["replay"]["body"] == {"authentication": {"nonce": "$NONCE"}}
    assert readonly["replay"]["nonce"] == "fresh"
    running = found[number_of(data, "STATE-RETRYABLE", "RUNNING") - 1]
    assert running["replay"]["precondition"]["status"] == "RUNNING"
    assert running["replay"]["expectation"] == {
        "requirement": "STATE-RETRYABLE",
        "statuses": [400, 409],
        "note": "execution not in a retryable state",
    }
    text = path.read_text()
    assert secrets.redact(text) == text, "a token or a nonce of the run is in the report"


@pytest.mark.parametrize(
    ("requirement", "origin"), [("AUTH-403", "read-only"), ("STATE-RETRYABLE", "RUNNING")]
)
def test_by_default_a_failure_replays_on_the_report_s_target_and_elsewhere_never_says_fixed(
    report: tuple[Path, dict[str, Any], SecretRegistry], requirement: str, origin: str
) -> None:
    path, data, _ = report
    number = str(number_of(data, requirement, origin))
    # The report's target: a fresh embedded mock with the run's defects.
    same = replay(str(path), "--failure", number)
    assert same.exit_code == 1, same.output
    assert f"replayed on a fresh embedded mock (with {', '.join(sorted(DEFECTS))})" in same.stdout
    assert same.stdout.splitlines()[-1].startswith(f"{requirement} still fails: answered 200")
    assert "not the report's target" not in same.stdout
    # The faithful mock is another target: the failure does not reproduce there, which fixes nothing.
    faithful = CliRunner().invoke(main, ["reproduce", str(path), "--failure", number, "--mock"])
    assert faithful.exit_code == 0, faithful.output
    first, *_, last = faithful.stdout.splitlines()
    assert first.startswith("not the report's target: replayed on a fresh embedded mock (faithful);")
    assert last.startswith(f"{requirement} does not reproduce here; this says nothing about a fresh embedded")
    assert "holds now" not in faithful.stdout and "fixed" not in faithful.stdout
    # Some of the run's defects only: another mock too, where it reproduces, but not "still".
    some = ("--mock-defect", "readonly-can-retry", "--mock-defect", "retry-running")
    other = replay(str(path), "--failure", number, *some)
    assert other.exit_code == 1, other.output
    assert other.stdout.splitlines()[-1].startswith(f"{requirement} reproduced elsewhere: answered 200")
    assert "still fails" not in other.stdout


def test_a_failure_out_of_range_is_one_line_listing_them(
    report: tuple[Path, dict[str, Any], SecretRegistry],
) -> None:
    path, data, _ = report
    count = len(failures(data))
    result = replay(str(path), "--failure", str(count + 1))
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"retry-contract: could not replay: failure {count + 1} is out of range:")
    assert f"has {count} failures (1 " in line and "AUTH-403" in line and "STATE-RETRYABLE" in line


def test_a_report_that_cannot_be_read_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    missing = subprocess.run(
        [*CLI, "replay", str(tmp_path / "absent.json"), "--failure", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"retry-contract: could not replay: cannot read {tmp_path / 'absent.json'}: No such file or directory"
    ]
    not_a_report = tmp_path / "other.json"
    not_a_report.write_text('{"verdict": "conformant"}')
    result = replay(str(not_a_report), "--failure", "1")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"retry-contract: could not replay: {not_a_report} is not a retry-contract JSON report "
        "(no list of requirements)"
    ]


def test_a_response_check_on_an_answer_that_is_no_longer_a_success_holds(
    report: tuple[Path, dict[str, Any], SecretRegistry],
) -> None:
    path, data, _ = report
    number = str(number_of(data, "RESP-ID", "37 characters"))
    broken = replay(str(path), "--failure", number)
    assert broken.exit_code == 1, broken.output
    assert "RESP-ID still fails: id '" in broken.stdout
    faithful = replay(str(path), "--failure", number, "--mock")
    assert faithful.exit_code == 0, faithful.output
    # The faithful mock refuses the malformed id (400 or 404): a success's id is not at stake.
    assert faithful.stdout.splitlines()[-1].split(";")[0] in {
        f"RESP-ID does not reproduce here (not at stake on an answer {status})" for status in (400, 404)
    }


def as_run_against(data: dict[str, Any], base_url: str, directory: Path) -> Path:
    """The report as a run against the server at `base_url` would have written it."""
    server = json.loads(json.dumps(data))
    server["target"] = base_url
    for failure in failures(server):
        run = failure["replay"]["run"]
        run.update(embedded_mock=False, base_url=base_url, mock_defects=[], mock_profile="classic")
    path = directory / "server-report.json"
    path.write_text(json.dumps(server))
    return path


def test_a_report_of_a_server_replays_on_that_server_with_credentials_from_the_environment(
    report: tuple[Path, dict[str, Any], SecretRegistry], tmp_path: Path
) -> None:
    _, data, _ = report
    number = str(number_of(data, "STATE-RETRYABLE", "RUNNING"))
    write, readonly = "server-write-token-4f1e", "server-readonly-token-9a3b"
    config = MockConfig.with_tokens(MOCK_PROJECT, write, readonly, defects=frozenset({"retry-running"}))
    environment: dict[str, str | None] = {"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly}
    with EmbeddedMock(config) as server:
        server_url = server.base_url
        path = as_run_against(data, server_url, tmp_path)
        same = CliRunner().invoke(main, ["replay", str(path), "--failure", number], env=environment)
        assert same.exit_code == 1, same.output
        assert f"replayed on {server_url} (project {MOCK_PROJECT})" in same.stdout
        assert same.stdout.splitlines()[-1].startswith("STATE-RETRYABLE still fails: answered 200")
        assert "not the report's target" not in same.stdout
        assert write not in same.output and readonly not in same.output
        # Without credentials: one line, before anything is sent.
        unset: dict[str, str | None] = {"CDF_TOKEN": None, "CDF_READONLY_TOKEN": None, "CDF_CLIENT_ID": None}
        bare = CliRunner().invoke(main, ["replay", str(path), "--failure", number], env=unset)
        assert bare.exit_code == 2 and bare.stdout == ""
        assert bare.stderr.splitlines() == [
            f"retry-contract: could not replay: no credentials for {server_url} (project "
            f"{MOCK_PROJECT}): set CDF_TOKEN, or CDF_CLIENT_ID, CDF_CLIENT_SECRET and CDF_TOKEN_URL, "
            "as for run"
        ]
        # Another server: its verdict is its own.
        with EmbeddedMock(MockConfig.with_tokens(MOCK_PROJECT, write, readonly)) as other:
            other_url = other.base_url
            elsewhere = CliRunner().invoke(
                main,
                ["replay", str(path), "--failure", number, "--base-url", other_url],
                env=environment,
            )
        assert elsewhere.exit_code == 0, elsewhere.output
        assert elsewhere.stdout.splitlines()[0] == (
            f"not the report's target: replayed on {other_url} (project {MOCK_PROJECT}); the report "
            f"saw the failure on {server_url} (project {MOCK_PROJECT})"
        )
        assert elsewhere.stdout.splitlines()[-1].startswith("STATE-RETRYABLE does not reproduce here")
        assert "holds now" not in elsewhere.stdout
    # The server is gone: one line, no traceback.
    gone = CliRunner().invoke(main, ["replay", str(path), "--failure", number], env=environment)
    assert gone.exit_code == 2 and gone.stdout == ""
    [line] = gone.stderr.splitlines()
    assert line.startswith(f"retry-contract: could not replay: cannot reach {server_url}")


def run_script(
    script: str, directory: Path, base_url: str, write: str, readonly: str
) -> subprocess.CompletedProcess[str]:
    """The failure's reproduction script run by bash against `base_url`, the tokens in its environment."""
    path = directory / "reproduce.sh"
    path.write_text(script)
    environment = {
        "PATH": os.environ["PATH"],
        "CDF_BASE_URL": base_url,
        "CDF_TOKEN": write,
        "CDF_READONLY_TOKEN": readonly,
    }
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=120, env=environment)


def status_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("HTTP/"))


@pytest.mark.parametrize(
    ("requirement", "origin", "expected"),
    [("AUTH-403", "read-only", {"403"}), ("STATE-RETRYABLE", "RUNNING", {"400", "409"})],
)
def test_the_reproduction_script_recreates_the_state_and_reproduces_the_failing_answer(
    report: tuple[Path, dict[str, Any], SecretRegistry],
    tmp_path: Path,
    requirement: str,
    origin: str,
    expected: set[str],
) -> None:
    _, data, secrets = report
    failure = failures(data)[number_of(data, requirement, origin) - 1]
    script = failure["reproduce_script"]
    assert secrets.redact(script) == script and "[REDACTED]" not in script
    write, readonly = "script-write-token-1c2d", "script-readonly-token-3e4f"
    config = MockConfig.with_tokens(MOCK_PROJECT, write, readonly, defects=frozenset(DEFECTS))
    with EmbeddedMock(config) as broken:
        seen = run_script(script, tmp_path, broken.base_url, write, readonly)
    assert seen.returncode == 0, seen.stderr
    assert status_line(seen.stdout).split()[1] == "200"
    # The same script on a faithful server is answered as the contract says: the state was recreated.
    with EmbeddedMock(MockConfig.with_tokens(MOCK_PROJECT, write, readonly)) as faithful:
        refused = run_script(script, tmp_path, faithful.base_url, write, readonly)
    assert refused.returncode == 0, refused.stderr
    assert status_line(refused.stdout).split()[1] in expected
    assert write not in script and readonly not in script


def test_the_report_s_target_is_read_from_its_run_facts_and_compared_as_a_client_reaches_it() -> None:
    server = replay_target.recorded({"project": "p", "base_url": "https://API.example.com:443/"}, None, "x")
    assert server == ReplayTarget("p", base_url="https://API.example.com:443")
    assert server.same_as(ReplayTarget("p", base_url="https://api.example.com"))
    assert not server.same_as(ReplayTarget("q", base_url="https://api.example.com"))
    assert not server.same_as(ReplayTarget("p", base_url="https://api.example.com:8443"))
    assert not server.same_as(ReplayTarget("p"))
    # A report written before its records held base_url: the report's own `target`.
    older = replay_target.recorded({"project": "p", "embedded_mock": False}, "http://h:1", "x")
    assert older == ReplayTarget("p", base_url="http://h:1")
    assert replay_target.recorded({"embedded_mock": False}, None, "x") is None
    app = replay_target.recorded({"project": "p", "app": "pkg.mod:app"}, "http://127.0.0.1:5", "x")
    assert (
        app == ReplayTarget("p", app="pkg.mod:app")
        and app.describe() == "pkg.mod:app served in-process (project p)"
    )
    mock = replay_target.recorded(
        {"project": "p", "embedded_mock": True, "mock_defects": ["b", "a"], "mock_profile": "recorded"},
        None,
        "x",
    )
    assert mock is not None and mock.describe() == "a fresh embedded mock (with a, b, profile recorded)"
    assert not mock.same_as(ReplayTarget("p", mock_defects=frozenset({"a", "b"})))
    # Naming any target is choosing another one; naming none needs the report to say where it ran.
    assert replay_target.chosen(mock) == mock
    assert replay_target.chosen(mock, mock=True) == ReplayTarget("p")
    with pytest.raises(ValueError, match="give --base-url"):
        replay_target.chosen(None)
