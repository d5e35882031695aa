#!/usr/bin/env python3
"""Regenerate the measured snapshots under docs/ from the commands that measure them, never by hand.

    .venv/bin/python scripts/regenerate_docs.py                      # all of them (~20 min on 2 cores)
    .venv/bin/python scripts/regenerate_docs.py --only kill-matrix   # one (repeatable)

Each snapshot starts with a comment naming the command, the machine's core count and the commit, so a
reader can tell how old its figures are; tests/unit/test_docs_snapshots.py fails when a snapshot no longer
matches the defect catalogue it was measured on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent


def _commit() -> str:
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return described.stdout.strip() or "unknown"


def _header(command: str) -> str:
    return f"<!-- Snapshot of `{command}`, {os.cpu_count()} cores, commit {_commit()}. -->\n"


def _run(command: list[str]) -> None:
    print(f"regenerate_docs: {' '.join(command)}", file=sys.stderr, flush=True)
    # Exit 1 of a measured command is a result (a missed defect), not a failure of this script.
    completed = subprocess.run(command, cwd=ROOT, check=False)
    if completed.returncode not in (0, 1):
        sys.exit(f"regenerate_docs: {command[0]} failed with exit {completed.returncode}")


def kill_matrix(scratch: Path) -> None:
    _run([str(BIN / "retry-contract"), "mutants", "--report-dir", str(scratch)])
    text = (scratch / "kill-matrix.md").read_text(encoding="utf-8")
    (DOCS / "kill-matrix.md").write_text(_header(".venv/bin/retry-contract mutants") + text, encoding="utf-8")


def comparison(scratch: Path) -> None:
    out = scratch / "comparison-with-schemathesis.md"
    _run([sys.executable, "benchmarks/compare_with_schemathesis.py", "--out", str(out)])
    (DOCS / "comparison-with-schemathesis.md").write_text(
        _header(".venv/bin/python benchmarks/compare_with_schemathesis.py") + out.read_text(encoding="utf-8"),
        encoding="utf-8",
    )


def report_screenshot(scratch: Path) -> None:
    _run([sys.executable, "scripts/screenshot_report.py"])


SNAPSHOTS: dict[str, Callable[[Path], None]] = {
    "kill-matrix": kill_matrix,
    "comparison": comparison,
    "report-screenshot": report_screenshot,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(SNAPSHOTS), help="only this snapshot")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="retry-contract-docs-") as scratch:
        for name in args.only or list(SNAPSHOTS):
            SNAPSHOTS[name](Path(scratch))
    print(
        "regenerate_docs: done; docs/time-to-verdict.md is measured separately, since it compares "
        "commits: benchmarks/time_to_verdict.py --all --markdown docs/time-to-verdict.md",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
