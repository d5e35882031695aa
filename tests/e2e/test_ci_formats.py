"""The reports for CI systems: JUnit (read back with junitparser, as CI tools read it), the Markdown
summary (GitHub's step summary appended to, never overwritten), and `--format` choosing the files."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase

from retry_contract import contract
from retry_contract.exchange import Exchange
from retry_contract.reports import FILE_FORMATS, junit, markdown, reporter, write_all
from retry_contract.requirements import CATALOGUE, Level
from retry_contract.runner import MOCK_PROJECT, RunOptions, RunResult
from retry_contract.secrets_registry import REPLACEMENT, SecretRegistry
from retry_contract.verdict import Ledger, Observation
from support.project import CLI

DEFECTS = ("time-as-string", "no-request-id-on-errors")  # a MUST failure, and a SHOULD one
EARLIER_STEP = "## an earlier step's summary\n"
SECRET = "s3cret-t0ken-value-4711"


@dataclass(frozen=True)
class CliRun:
    completed: subprocess.CompletedProcess[str]
    reports: Path
    step_summary: Path


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """One run against the embedded mock with two defects, writing junit, json and markdown only."""
    directory = tmp_path_factory.mktemp("ci-formats")
    reports, step_summary = directory / "reports", directory / "step-summary.md"
    step_summary.write_text(EARLIER_STEP, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CDF_", "GITHUB_"))}
    environment[markdown.STEP_SUMMARY_ENV] = str(step_summary)
    defects = [argument for name in DEFECTS for argument in ("--mock-defect", name)]
    formats = ["--format", "junit", "--format", "json", "--format", "markdown"]
    command = [*CLI, "run", "--no-fuzz", *defects, *formats, "--report-dir", str(reports)]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    return CliRun(completed, reports, step_summary)


def _rows(run: CliRun) -> dict[str, dict[str, Any]]:
    data = json.loads((run.reports / "retry-contract.json").read_text(encoding="utf-8"))
    return {row["id"]: row for row in data["requirements"]}


@pytest.mark.slow
def test_format_writes_only_the_chosen_files(failing_run: CliRun) -> None:
    completed = failing_run.completed
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert sorted(p.name for p in failing_run.reports.iterdir()) == sorted(
        [junit.FILENAME, "retry-contract.json", markdown.FILENAME]
    )
    # Without the console format: no table, only where the reports are and the verdict.
    assert "┃ Requirement" not in completed.stdout
    assert f"report: {failing_run.reports / junit.FILENAME}" in completed.stdout
    assert f"report: {failing_run.step_summary}" in completed.stdout
    assert completed.stdout.rstrip().splitlines()[-1].startswith("verdict: contract violations found")


@pytest.mark.slow
def test_junit_reads_back_with_one_case_per_requirement(failing_run: CliRun) -> None:
    rows = _rows(failing_run)
    document = JUnitXml.fromfile(str(failing_run.reports / junit.FILENAME))
    [suite] = list(document)
    cases = {case.name.split(":")[0]: case for case in suite}
    assert list(cases) == [requirement.id for requirement in CATALOGUE]
    failed = [i for i, row in rows.items() if row["outcome"] == "failed" and not row["warning"]]
    assert "RESP-TIME" in failed
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (len(CATALOGUE), len(failed), 0, 0)
    assert (document.tests, document.failures) == (suite.tests, suite.failures)
    assert sorted(i for i, case in cases.items() if case.is_failure) == sorted(failed)
    [failure] = cases["RESP-TIME"].result
    assert isinstance(failure, Failure)
    assert failure.type == "MUST"
    assert failure.message.startswith(f"{rows['RESP-TIME']['failed']} of {rows['RESP-TIME']['judged']}")
    assert "is not of type 'integer'" in failure.message
    assert "curl -i -X POST" in failure.text
    assert "$CDF_TOKEN" in failure.text
    # The SHOULD failure of a non-strict run passes, with its details marked in system-err.
    warned = cases["HDR-REQUEST-ID"]
    assert warned.is_passed
    assert warned.system_err.startswith("WARNING (SHOULD, not strict): no X-Request-ID header")
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["seed"] == "20230101"
    assert properties["strict"] == "false"
    assert properties["spec_sha256"] == contract.spec_sha256()
    musts = sum(requirement.level is Level.MUST for requirement in CATALOGUE)
    assert properties["must_requirements_judged"] == f"{musts} of {musts} MUST requirements judged"


@pytest.mark.slow
def test_markdown_summary_is_written_and_appended_to_the_step_summary(failing_run: CliRun) -> None:
    summary = (failing_run.reports / markdown.FILENAME).read_text(encoding="utf-8")
    lines = summary.splitlines()
    assert "**Verdict: contract violations found**" in lines[2]
    assert "| RESP-TIME | MUST | FAIL |" in summary
    assert "| HDR-REQUEST-ID | SHOULD | WARN |" in summary
    assert "| AUTH-401 | MUST | PASS |" in summary
    assert "### First failure: #" in summary
    block = summary.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert "curl -i -X POST" in block
    assert "- Seed: 20230101; no fuzzing" in lines
    # GitHub shows every step's summary: the run's is appended after what was there.
    assert failing_run.step_summary.read_text(encoding="utf-8") == EARLIER_STEP + summary


def _result(*, strict: bool = False, require_all_must: bool = False) -> RunResult:
    """A result made by hand: one MUST and one SHOULD failure, one MUST not covered, one fault."""
    secrets = SecretRegistry()
    secrets.add(SECRET)
    options = RunOptions(
        base_url="http://127.0.0.1:9",
        project=MOCK_PROJECT,
        credentials=None,
        strict=strict,
        require_all_must=require_all_must,
    )
    result = RunResult(options=options, target="http://127.0.0.1:9", ledger=Ledger(), secrets=secrets)
    url = f"http://127.0.0.1:9/api/v1/projects/{MOCK_PROJECT}/workflows/executions/x/retry"
    exchange = Exchange(
        method="POST",
        url=url,
        request_headers={"Authorization": f"Bearer {SECRET}"},
        request_body=None,
        status=200,
        origin="made by hand",
    )
    # What XML cannot carry, and what would break a Markdown table, with the secret among it.
    message = f"createdTime was 'a\x00b\ud800' | <b>{SECRET}</b>\nsecond line"
    result.ledger.record(
        [
            Observation("RESP-TIME", False, message, exchange, judge="test"),
            Observation("HDR-REQUEST-ID", False, "no X-Request-ID header", exchange, judge="test"),
            Observation("AUTH-401", True, judge="test"),
        ]
    )
    result.ledger.not_covered_because("AUTH-403", "no read-only token")
    result.ledger.fault(replace(exchange, status=None, fault="ConnectError: refused"))
    return result


def _cases(path: Path) -> dict[str, TestCase]:
    [suite] = list(JUnitXml.fromfile(str(path)))
    return {case.name.split(":")[0]: case for case in suite}


def test_junit_under_strict_fails_the_should_requirement(tmp_path: Path) -> None:
    lenient = _cases(junit.write(_result(), tmp_path))
    assert lenient["HDR-REQUEST-ID"].is_passed
    strict = _cases(junit.write(_result(strict=True), tmp_path))
    [failure] = strict["HDR-REQUEST-ID"].result
    assert isinstance(failure, Failure)
    assert failure.type == "SHOULD"


def test_junit_skips_what_was_not_covered_and_errs_under_require_all_must(tmp_path: Path) -> None:
    [skipped] = _cases(junit.write(_result(), tmp_path))["AUTH-403"].result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "no read-only token"
    [error] = _cases(junit.write(_result(require_all_must=True), tmp_path))["AUTH-403"].result
    assert isinstance(error, Error)
    assert "no read-only token" in error.message


def test_junit_shows_infrastructure_faults_as_an_error(tmp_path: Path) -> None:
    document = JUnitXml.fromfile(str(junit.write(_result(), tmp_path)))
    [suite] = list(document)
    assert (suite.tests, suite.errors) == (len(CATALOGUE) + 1, 1)
    [error] = _cases(tmp_path / junit.FILENAME)["infrastructure"].result
    assert isinstance(error, Error)
    assert error.message.startswith("1 requests met infrastructure faults")
    assert "ConnectError: refused" in error.text


def test_junit_stays_parseable_and_holds_no_secret(tmp_path: Path) -> None:
    path = junit.write(_result(), tmp_path)
    text = path.read_text(encoding="utf-8")
    assert SECRET not in text
    [failure] = _cases(path)["RESP-TIME"].result
    assert f"'a\\u0000b\\ud800' | <b>{REPLACEMENT}</b>" in failure.text


def test_markdown_cells_are_escaped_and_redacted(tmp_path: Path) -> None:
    text = markdown.write(_result(), tmp_path).read_text(encoding="utf-8")
    assert SECRET not in text
    [row] = [line for line in text.splitlines() if line.startswith("| RESP-TIME ")]
    cells = [cell.strip() for cell in row.replace("\\|", "").strip("|").split("|")]
    assert cells[:4] == ["RESP-TIME", "MUST", "FAIL", "1"]
    assert len(cells) == 5
    assert f"\\<b>{REPLACEMENT}\\</b> second line" in cells[4]
    assert "| AUTH-403 | MUST | NOT COVERED | 0 | no read-only token |" in text
    assert "### Infrastructure faults: 1 (not contract failures)" in text


def test_without_a_step_summary_only_the_chosen_files_are_written(tmp_path: Path) -> None:
    written = write_all(_result(), tmp_path, ["junit", "markdown"], environ={})
    assert [p.name for p in written] == [junit.FILENAME, markdown.FILENAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([junit.FILENAME, markdown.FILENAME])
    assert write_all(_result(), tmp_path / "none", ["console"], environ={markdown.STEP_SUMMARY_ENV: ""}) == []


def test_every_registered_format_names_its_file() -> None:
    filenames = {
        "junit": "retry-contract-junit.xml",
        "json": "retry-contract.json",
        "html": "retry-contract.html",
        "markdown": "retry-contract-summary.md",
    }
    assert {name: reporter(name).FILENAME for name in FILE_FORMATS} == filenames
