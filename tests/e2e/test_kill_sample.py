"""A fixed sample of defects, one or more per requirement family, must be caught by the check of the
requirement each breaks: a change that blinds a check fails the build. The full matrix is
`retry-contract mutants`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdf_workflows_mock.defects import BY_NAME
from retry_contract.defect_matrix import (
    FAITHFUL_PROFILES,
    MatrixSettings,
    faithful_label,
    matrix_passes,
    matrix_view,
    run_matrix,
)
from retry_contract.reports import kill_matrix

SAMPLE = (
    "auth-header-optional",  # AUTH
    "readonly-can-retry",  # AUTH
    "id-truncated-to-36",  # PATH
    "nonce-empty-accepted",  # BODY
    "nonce-not-verified",  # BODY-NONCE
    "nonce-reusable",  # NONCE
    "method-405-without-allow",  # METHOD
    "unknown-execution-400",  # STATE
    "retry-completed",  # STATE
    "unicode-nonce-500",  # ROBUST, reachable only by fuzzing
    "time-as-string",  # RESP
    "metadata-stamped",  # RESP
    "status-stale",  # RESP
    "error-envelope-flat",  # ERR
    "no-request-id-on-errors",  # HDR
    "optional-retried",  # SEM
    "limit-reset",  # SEM
    "concurrent-double-retry",  # SEM
    "retry-ignores-timed-out",  # SEM, seen only on the TIMED_OUT execution's retry
    # Its effects never come: the run-wide wait budget keeps it about as fast as a faithful run.
    "second-retry-starts-nothing",  # SEM
    "gzip-body-refused",  # the official SDK's request form
    "raw-utf8-misread",  # the same document, encoded differently
    "long-nonce-500",  # values far longer than generated ones
    "metadata-stamped-when-room",  # visible only on fixtures below the metadata limits
)
# Two generated sequences: the sample gates the checks; the exploration has its own tests (test_sequences).
SETTINGS = MatrixSettings(seed=20230101, max_examples=15, fail_fast=False, explore=2)


def test_the_sample_names_real_defects() -> None:
    assert set(SAMPLE) <= set(BY_NAME)
    families = {BY_NAME[name].breaks[0].split("-")[0] for name in SAMPLE}
    assert {
        "AUTH",
        "PATH",
        "BODY",
        "NONCE",
        "METHOD",
        "STATE",
        "ROBUST",
        "RESP",
        "ERR",
        "HDR",
        "SEM",
    } <= families


@pytest.mark.slow
def test_each_sampled_defect_is_caught_by_its_own_check(tmp_path: Path) -> None:
    outcomes = run_matrix(list(SAMPLE), SETTINGS, workers=2)
    faithful = [o for o in outcomes if o.is_faithful]
    assert [o.defect for o in faithful] == [faithful_label(p) for p in FAITHFUL_PROFILES]
    alarms = {o.defect: o.failed or o.error for o in faithful if o.caught or o.error}
    assert not alarms, f"false alarms on faithful mocks: {alarms}"
    missed = {
        o.defect: o.error or o.failed for o in outcomes if not o.is_faithful and not o.caught_by_own_check
    }
    assert not missed, f"not caught by the check of the requirement they break: {missed}"
    assert matrix_passes(outcomes)
    markdown, data = kill_matrix.write(matrix_view(outcomes, SETTINGS, wall=0.0), tmp_path)
    assert "| `limit-reset` |" in markdown.read_text()
    assert data.is_file()
