"""The measured snapshots under docs/ match the defect catalogue they claim to measure: a catalogue change
without `scripts/regenerate_docs.py` fails here instead of leaving figures that contradict each other."""

from __future__ import annotations

import re

from cdf_workflows_mock.defects import CATALOGUE
from support.project import ROOT

DOCS = ROOT / "docs"
DEFECTS = {defect.name for defect in CATALOGUE}
ROW_NAME = re.compile(r"^\| `([a-z0-9-]+)` \|", re.MULTILINE)


def _snapshot(name: str) -> str:
    text = (DOCS / name).read_text(encoding="utf-8")
    assert text.startswith("<!-- Snapshot of `"), f"{name} does not say which command produced it"
    return text


def test_the_kill_matrix_snapshot_covers_the_catalogue() -> None:
    text = _snapshot("kill-matrix.md")
    caught = re.search(r"(\d+) of (\d+) defects caught", text)
    assert caught is not None
    assert int(caught.group(2)) == len(CATALOGUE)
    assert set(ROW_NAME.findall(text)) == DEFECTS


def test_the_comparison_snapshot_covers_the_catalogue() -> None:
    text = _snapshot("comparison-with-schemathesis.md")
    totals = {int(total) for total in re.findall(r"\| \d+/(\d+) \|", text)}
    assert totals == {len(CATALOGUE)}
    assert set(ROW_NAME.findall(text)) - {"(faithful)"} == DEFECTS
