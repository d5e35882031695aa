"""Known failures (`run --baseline FILE`): a run given its own previous report exits 0, a new violation
still makes it 1, and every report lists new and known findings apart. The signature a finding is
matched by keeps what identifies a problem and drops what changes from run to run."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from retry_contract import baseline
from retry_contract.baseline import AcceptedFailure, BaselineError, Signature, signature_of
from retry_contract.contract import API_PREFIX, RETRY_PATH_TEMPLATE
from retry_contract.exchange import Exchange
from retry_contract.reports import junit, markdown
from retry_contract.reports.model import verdict_text
from retry_contract.runner import MOCK_PROJECT, RunOptions, RunResult
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import ExitCode, Ledger, Observation
from support.project import CLI

KNOWN_DEFECTS = ("method-405-without-allow", "response-id-uppercase")  # METHOD; RESP-ID, RESP-UNCHANGED
NEW_DEFECT = "malformed-id-422"  # PATH-UUID
RETRY_TEMPLATE = API_PREFIX + RETRY_PATH_TEMPLATE


def _exchange(execution_id: str, method: str = "POST", status: int | None = 405) -> Exchange:
    return Exchange(
        method=method,
        url=f"http://127.0.0.1:9/api/v1/projects/{MOCK_PROJECT}/workflows/executions/{execution_id}/retry",
        request_headers={},
        request_body=None,
        status=status,
    )


# --- signatures --------------------------------------------------------------------------------


def test_the_same_problem_on_other_executions_and_values_has_one_signature() -> None:
    first = Observation(
        "RESP-ID",
        False,
        "id 'AB12' is not the path id 0b6f6a4e-8a51-4c1e-9d8e-3f1c2a7b9d10 (12 characters)",
        _exchange("0b6f6a4e-8a51-4c1e-9d8e-3f1c2a7b9d10", status=200),
        judge="custom check",
    )
    second = Observation(
        "RESP-ID",
        False,
        "id 'CD34EF' is not the path id 7c9e6679-7425-40de-944b-e07fc1f90ae7 (7 characters)",
        _exchange("7c9e6679-7425-40de-944b-e07fc1f90ae7", status=200),
        judge="custom check",
    )
    assert (
        signature_of(first)
        == signature_of(second)
        == Signature(
            "RESP-ID",
            "POST",
            RETRY_TEMPLATE,
            "200",
            "custom check: id '…' is not the path id {uuid} (N characters)",
        )
    )


def test_requirement_method_status_and_judge_tell_findings_apart() -> None:
    base = Observation(
        "METHOD", False, "405 without `Allow: POST`", _exchange("x", "PUT"), judge="custom check"
    )
    others = [
        Observation("ROBUST", False, base.message, base.exchange, judge=base.judge),
        Observation("METHOD", False, base.message, _exchange("x", "DELETE"), judge=base.judge),
        Observation("METHOD", False, base.message, _exchange("x", "PUT", status=None), judge=base.judge),
        Observation("METHOD", False, base.message, base.exchange, judge="schemathesis"),
        Observation("METHOD", False, "retried the execution", base.exchange, judge=base.judge),
    ]
    signatures = {signature_of(observation) for observation in [base, *others]}
    assert len(signatures) == 1 + len(others)
    assert signature_of(others[2]).status == baseline.NO_ANSWER


def test_a_finding_on_no_request_has_a_signature_of_its_message() -> None:
    found = signature_of(
        Observation("SEM-LIMIT", False, "the execution did not fail again", judge="scenario")
    )
    assert (found.method, found.path, found.status) == (baseline.NO_EXCHANGE,) * 3
    assert found.kind == "scenario: the execution did not fail again"


def test_an_opaque_value_such_as_a_nonce_leaves_no_trace_in_the_signature() -> None:
    nonce = "dGhpcyBpcyBhIG5vbmNlIG9mIHRoZSBydW4gMTIzNDU2Nzg"
    found = signature_of(
        Observation("BODY-NONCE", False, f"nonce {nonce} accepted", _exchange("x"), judge="j")
    )
    assert nonce not in found.kind and "…" in found.kind


# --- baseline files ----------------------------------------------------------------------------


def test_a_file_of_accepted_failures_matches_by_the_parts_it_names(tmp_path: Path) -> None:
    path = tmp_path / "known.yaml"
    path.write_text(
        "accepted_failures:\n"
        "  - requirement: HDR-REQUEST-ID\n"
        "  - {requirement: METHOD, method: TRACE, status: 405}\n",
        encoding="utf-8",
    )
    known = baseline.load(path)
    assert known.entries == (
        AcceptedFailure("HDR-REQUEST-ID"),
        AcceptedFailure("METHOD", method="TRACE", status="405"),
    )
    trace = Observation("METHOD", False, "405 without `Allow: POST`", _exchange("x", "TRACE"), judge="j")
    put = Observation("METHOD", False, trace.message, _exchange("x", "PUT"), judge="j")
    missing_header = Observation("HDR-REQUEST-ID", False, "no X-Request-ID", _exchange("y", "GET", 404))
    assert known.accepts(trace) and known.accepts(missing_header)
    assert not known.accepts(put)
    assert known.unmatched([put, missing_header]) == [AcceptedFailure("METHOD", method="TRACE", status="405")]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("accepted_failures:\n  - requirement: NO-SUCH-ID\n", "'NO-SUCH-ID' is not in the catalogue"),
        ("accepted_failures:\n  - {requirement: METHOD, verb: PUT}\n", "unknown keys verb"),
        ("accepted_failures:\n  - METHOD\n", "is not a mapping"),
        ("just: a mapping\n", "neither a JSON report of retry-contract run nor"),
        ("{not yaml: [\n", "neither JSON nor YAML"),
    ],
)
def test_a_file_that_is_no_baseline_is_refused_saying_why(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "known.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BaselineError) as refused:
        baseline.load(path)
    assert said in str(refused.value)


def test_the_cli_refuses_a_bad_baseline_in_one_line_before_running(tmp_path: Path) -> None:
    path = tmp_path / "known.json"
    path.write_text('{"accepted_failures": [{"requirement": "NOPE"}]}', encoding="utf-8")
    completed = subprocess.run(
        [*CLI, "run", "--baseline", str(path), "--report-dir", str(tmp_path / "reports")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == ExitCode.COULD_NOT_RUN
    assert completed.stderr.strip().splitlines() == [
        f"retry-contract: could not run: --baseline: {path}: accepted_failures[0]: requirement 'NOPE' "
        "is not in the catalogue"
    ]
    assert not (tmp_path / "reports" / "retry-contract.json").exists()


def test_the_settings_file_names_a_baseline_as_the_option_does(tmp_path: Path) -> None:
    settings = tmp_path / "retry-contract.toml"
    settings.write_text('baseline = "no-such-report.json"\n', encoding="utf-8")
    completed = subprocess.run(
        [*CLI, "run", "--config", str(settings), "--report-dir", str(tmp_path / "reports")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == ExitCode.COULD_NOT_RUN
    assert "--baseline: cannot read no-such-report.json" in completed.stderr


def _result(known: baseline.Baseline | None) -> RunResult:
    options = RunOptions(
        base_url="http://127.0.0.1:9", project=MOCK_PROJECT, credentials=None, baseline=known
    )
    result = RunResult(
        options=options, target="http://127.0.0.1:9", ledger=Ledger(), secrets=SecretRegistry()
    )
    result.ledger.record(
        [
            Observation("METHOD", False, "405 without `Allow: POST`", _exchange("a", "PUT"), judge="j"),
            Observation("AUTH-401", True, judge="j"),
        ]
    )
    return result


def test_a_known_must_failure_is_reported_but_not_counted(tmp_path: Path) -> None:
    assert _result(None).exit_code is ExitCode.VIOLATIONS
    known = baseline.Baseline("known.yaml", (AcceptedFailure("METHOD", method="PUT"),))
    result = _result(known)
    assert result.exit_code is ExitCode.CONFORMANT
    assert verdict_text(result).startswith(
        "no new violations found (1 known failures accepted by the baseline)"
    )
    # The CI views agree with the exit status: no failed test case, the known failure said aloud.
    [suite] = list(JUnitXml.fromfile(str(junit.write(result, tmp_path))))
    cases = {case.name.split(":")[0]: case for case in suite}
    assert cases["METHOD"].is_passed
    assert "KNOWN FAILURES (accepted by the baseline)" in (cases["METHOD"].system_err or "")
    summary = markdown.build(result)
    assert "| METHOD | MUST | KNOWN |" in summary
    assert "baseline known.yaml: 0 new findings, 1 known ones accepted" in summary


# --- against the mock, end to end --------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    completed: subprocess.CompletedProcess[str]
    reports: Path

    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(
            (self.reports / "retry-contract.json").read_text(encoding="utf-8")
        )
        return loaded

    def rows(self) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in self.json()["requirements"]}


def _run(directory: Path, defects: tuple[str, ...], *options: str) -> Run:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CDF_", "GITHUB_"))}
    chosen = [argument for name in defects for argument in ("--mock-defect", name)]
    command = [*CLI, "run", "-q", "--max-examples", "15", *chosen, "--report-dir", str(directory), *options]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    return Run(completed, directory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """A run with two known defects; the same again with its report as the baseline; and with a third
    defect as well."""
    directory = tmp_path_factory.mktemp("baseline")
    first = _run(directory / "first", KNOWN_DEFECTS)
    previous = str(first.reports / "retry-contract.json")
    again = _run(directory / "again", KNOWN_DEFECTS, "--baseline", previous)
    worse = _run(directory / "worse", (*KNOWN_DEFECTS, NEW_DEFECT), "--baseline", previous)
    return {"first": first, "again": again, "worse": worse}


@pytest.mark.slow
def test_a_run_given_its_own_previous_report_exits_0(runs: dict[str, Run]) -> None:
    assert runs["first"].completed.returncode == ExitCode.VIOLATIONS, runs["first"].completed.stderr
    again = runs["again"]
    assert again.completed.returncode == ExitCode.CONFORMANT, again.completed.stdout + again.completed.stderr
    report = again.json()
    assert report["exit_code"] == 0
    assert report["baseline"]["new_findings"] == 0 and report["baseline"]["accepted_findings"] > 0
    assert report["baseline"]["unmatched_entries"] == []
    for requirement in ("METHOD", "RESP-ID"):
        row = again.rows()[requirement]
        assert row["failed"] == row["accepted_failures"] > 0
        assert all(failure["accepted"] for failure in row["failures"])
    assert "no new violations" in again.completed.stdout


@pytest.mark.slow
def test_a_new_violation_beside_the_known_ones_exits_1_and_is_listed_apart(runs: dict[str, Run]) -> None:
    worse = runs["worse"]
    assert worse.completed.returncode == ExitCode.VIOLATIONS, worse.completed.stderr
    rows = worse.rows()
    assert rows["PATH-UUID"]["failed"] > 0 and rows["PATH-UUID"]["accepted_failures"] == 0
    assert not any(failure["accepted"] for failure in rows["PATH-UUID"]["failures"])
    assert rows["METHOD"]["failed"] == rows["METHOD"]["accepted_failures"] > 0
    report = worse.json()
    assert report["baseline"]["new_findings"] == rows["PATH-UUID"]["failed"] + sum(
        row["failed"] - row["accepted_failures"] for name, row in rows.items() if name != "PATH-UUID"
    )
    summary = (worse.reports / "retry-contract-summary.md").read_text(encoding="utf-8")
    assert "| METHOD | MUST | KNOWN |" in summary and "| PATH-UUID | MUST | FAIL |" in summary
    page = (worse.reports / "retry-contract.html").read_text(encoding="utf-8")
    assert 'id="requirement-METHOD" data-outcome="accepted"' in page
    assert 'id="requirement-PATH-UUID" data-outcome="failed"' in page
    assert "known failure, accepted by the baseline" in page


def test_the_pytest_plugin_fails_no_test_for_a_known_failure() -> None:
    from retry_contract.pytest_plugin import check_requirement

    with pytest.raises(pytest.fail.Exception, match="METHOD"):
        check_requirement(_result(None), "METHOD")
    check_requirement(_result(baseline.Baseline("known.yaml", (AcceptedFailure("METHOD"),))), "METHOD")
