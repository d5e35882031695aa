"""JUnit XML, built with junitparser: one test case per requirement, so CI shows the contract
requirement by requirement.

- a failed MUST requirement (and a failed SHOULD one with --strict) is a `failure`;
- a failed SHOULD requirement without --strict passes, its details in `system-err` marked WARNING;
- a requirement not covered is `skipped`, with the reason; with --require-all-must a MUST requirement
  not covered is an `error` instead, since that run is inconclusive without it;
- infrastructure faults add an `infrastructure` test case with an `error`: an inconclusive run must not
  look green in CI.

The suite's properties say what the verdict rests on (target, seed, spec SHA-256, strictness, how many
MUST requirements were judged). The root is `testsuites`, which every junitparser version (and every
CI) reads back as a whole document.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from retry_contract.reports.model import (
    ACCEPTED,
    coverage_text,
    requirement_rows,
    shown_outcome,
    verdict_text,
)
from retry_contract.reports.replay_record import abbreviated
from retry_contract.runner import RunResult

FILENAME = "retry-contract-junit.xml"
SUITE_NAME = "retry-contract"
INFRASTRUCTURE_CASE = "infrastructure: requests that never got a judgeable answer"
# CI pages show the `message` attribute in one line; the details are in the element's text.
_MESSAGE_LIMIT = 300
_FAULTS_LISTED = 20
# What XML 1.0 cannot carry: control characters and lone surrogates, which fuzzed answers and the
# odd-value probes bring into failure messages. Written escaped, so the document stays parseable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(result: RunResult, value: str) -> str:
    # Redacted before the XML is escaped: an escaped secret (`&` → `&amp;`) would no longer match.
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", result.secrets.redact(value))


def build(result: RunResult) -> JUnitXml:
    suite = TestSuite(SUITE_NAME)
    options = result.options
    for name, value in (
        ("target", result.target),
        ("project", options.project),
        ("seed", str(options.seed)),
        ("spec_sha256", result.spec_sha256),
        ("strict", str(options.strict).lower()),
        ("verdict", verdict_text(result)),
        ("must_requirements_judged", coverage_text(result)),
        ("requests_sent", str(result.requests_sent)),
        ("stopped_early", result.stop_reason),
    ):
        if value:
            suite.add_property(name, _text(result, value))
    cases = [_requirement_case(result, row) for row in requirement_rows(result)]
    if result.ledger.faults:
        cases.append(_infrastructure_case(result))
    suite.add_testcases(cases)
    suite.time = round(result.seconds, 2)
    document = JUnitXml(SUITE_NAME)
    document.add_testsuite(suite)
    # The root's totals too: some CI readers take them from `testsuites` alone.
    document.tests, document.failures = suite.tests, suite.failures
    document.errors, document.skipped, document.time = suite.errors, suite.skipped, suite.time
    return document


def _requirement_case(result: RunResult, row: dict[str, Any]) -> TestCase:
    case = TestCase(_text(result, f"{row['id']}: {row['summary']}"), f"retry_contract.{row['level']}")
    details = "\n\n".join(_failure_details(f) for f in row["failures"])
    first = row["failures"][0]["message"] if row["failures"] else ""
    if shown_outcome(row) == ACCEPTED:
        # Every failure a known one of the baseline: reported, not failed, as the exit status has it.
        case.system_err = _text(result, f"KNOWN FAILURES (accepted by the baseline): {details}")
    elif row["outcome"] == "failed" and not row["warning"]:
        failure = Failure(
            _text(
                result,
                abbreviated(
                    f"{row['failed']} of {row['judged']} judgements failed: {first}",
                    result.secrets,
                    _MESSAGE_LIMIT,
                ),
            ),
            row["level"],
        )
        failure.text = _text(result, details)
        case.result = [failure]
    elif row["outcome"] == "failed":
        case.system_err = _text(result, f"WARNING (SHOULD, not strict): {details}")
    elif row["outcome"] == "not covered":
        reason = _text(result, row["not_covered_reason"] or "no response judged it")
        if row["level"] == "MUST" and result.options.require_all_must:
            case.result = [Error(f"not covered, and --require-all-must: {reason}", "not covered")]
        else:
            case.result = [Skipped(reason)]
    case.system_out = f"judged {row['judged']} times"
    return case


def _failure_details(failure: dict[str, Any]) -> str:
    steps = failure.get("reproduce_steps") or [f"reproduce: {failure.get('reproduce', 'n/a')}"]
    return "\n  ".join([failure["message"], f"via {failure.get('origin', failure['judge'])}", *steps])


def _infrastructure_case(result: RunResult) -> TestCase:
    faults = result.ledger.faults
    case = TestCase(INFRASTRUCTURE_CASE, "retry_contract.infrastructure")
    error = Error(
        f"{len(faults)} requests met infrastructure faults that never cleared (not contract failures): "
        "part of the run could not be judged",
        "infrastructure",
    )
    listed = [
        f"{e.origin}: {e.method} {abbreviated(e.url, result.secrets, 200)}: {e.fault}"
        for e in faults[:_FAULTS_LISTED]
    ]
    if len(faults) > _FAULTS_LISTED:
        listed.append(f"... and {len(faults) - _FAULTS_LISTED} more (see retry-contract.json)")
    error.text = _text(result, "\n".join(listed))
    case.result = [error]
    return case


def write(result: RunResult, directory: Path) -> Path:
    path = directory / FILENAME
    buffer = io.BytesIO()
    build(result).write(buffer)
    # Redacted once more as a whole, as every report is, for any string a future change forgets.
    path.write_text(result.secrets.redact(buffer.getvalue().decode("utf-8")) + "\n", encoding="utf-8")
    return path
