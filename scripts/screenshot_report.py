#!/usr/bin/env python3
"""Capture docs/report-screenshot.png: the HTML report of a failing run, as headless Chromium shows it.

The run is the suite against the embedded mock with a defect switched on (by default `retry-running`:
RUNNING executions are retried), so the picture shows a verdict, a failed requirement and its
reproduction. Needs Chromium (Debian's `chromium` package) on PATH.

    .venv/bin/python scripts/screenshot_report.py [--defect NAME] [--output PATH]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from retry_contract.reports import html
from retry_contract.reports.model import build as report_view
from retry_contract.runner import MOCK_PROJECT, RunOptions, run

ROOT = Path(__file__).resolve().parents[1]
WINDOW = "1280,1600"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Capture the HTML report of a failing run as a PNG.")
    parser.add_argument("--defect", default="retry-running", help="defect of the embedded mock to switch on")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "report-screenshot.png")
    parser.add_argument("--max-examples", type=int, default=10, help="cases per fuzzing phase")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium or chromium-browser on PATH: apt-get install chromium", file=sys.stderr)
        return 2
    result = run(
        RunOptions(
            base_url=None,
            project=MOCK_PROJECT,
            credentials=None,
            mock_defects=frozenset({args.defect}),
            max_examples=args.max_examples,
        )
    )
    with tempfile.TemporaryDirectory(prefix="retry-contract-screenshot-") as directory:
        page = html.write(report_view(result), Path(directory))
        command = [
            chromium,
            "--headless",
            # Chromium refuses to run as root with its sandbox; the page is our own file.
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={directory}/profile",
            f"--window-size={WINDOW}",
            f"--screenshot={args.output.resolve()}",
            page.as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=180)
    print(f"{args.output}: the report of a run with the {args.defect!r} defect, exit {int(result.exit_code)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
