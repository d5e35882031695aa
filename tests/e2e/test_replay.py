"""`retry-contract replay` end to end over HTTP: a run against a defective embedded mock writes a
report whose failures replay as "still fails" against the same defect and "holds now" against the
faithful mock; a report or failure that cannot be replayed is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from retry_contract import runner
from retry_contract.cli import main
from retry_contract.reports import json_report
from retry_contract.runner import MOCK_PROJECT, RunOptions
from retry_contract.scenarios import auth, malformed, states
from retry_contract.secrets_registry import SecretRegistry
from support.project import CLI

DEFECTS = ("retry-running", "readonly-can-retry", "id-truncated-to-36")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], SecretRegistry]]:
    """A run of three scenarios against a mock with the defects: its JSON report, and the registry of
    the secrets the run handled (tokens and every nonce), none of which the report may hold."""
    with pytest.MonkeyPatch.context() as patch:
        # Only the scenarios the defects break: the run takes seconds, not a minute.
        scenarios = (auth.readonly_token, malformed.malformed_ids, states.non_retryable_states)
        patch.setattr(runner, "ALL_SCENARIOS", scenarios)
        patch.setattr(runner, "LONGEST_FIRST", ())
        patch.setattr(runner, "LATE_SCENARIOS", ())
        result = runner.run(
            RunOptions(
                base_url=None,
                project=MOCK_PROJECT,
                credentials=None,
                fuzz=False,
                concurrency=2,
                mock_defects=frozenset(DEFECTS),
            )
        )
    path = json_report.write(result, tmp_path_factory.mktemp("replay"))
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
def test_a_failure_still_fails_on_the_same_defect_and_holds_on_the_faithful_mock(
    report: tuple[Path, dict[str, Any], SecretRegistry], requirement: str, origin: str
) -> None:
    path, data, _ = report
    number = str(number_of(data, requirement, origin))
    defect = [option for name in DEFECTS for option in ("--mock-defect", name)]
    broken = replay(str(path), "--failure", number, *defect)
    assert broken.exit_code == 1, broken.output
    assert f"{requirement} still fails: answered 200" in broken.stdout
    faithful = CliRunner().invoke(main, ["reproduce", str(path), "--failure", number])
    assert faithful.exit_code == 0, faithful.output
    assert faithful.stdout.splitlines()[-1] == f"{requirement} holds now"
    assert "embedded mock (faithful)" in faithful.stdout


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
    broken = replay(str(path), "--failure", number, "--mock-defect", "id-truncated-to-36")
    assert broken.exit_code == 1, broken.output
    assert "RESP-ID still fails: id '" in broken.stdout
    faithful = replay(str(path), "--failure", number)
    assert faithful.exit_code == 0, faithful.output
    # The faithful mock refuses the malformed id (400 or 404): a success's id is not at stake.
    assert faithful.stdout.splitlines()[-1] in {
        f"RESP-ID holds now (not at stake on an answer {status})" for status in (400, 404)
    }
