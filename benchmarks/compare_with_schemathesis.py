#!/usr/bin/env python3
"""Plain Schemathesis and retry-contract side by side, on the faithful mock and every defect.

Both get the same spec, the same seed, the same number of examples and the same token, and each run
gets a fresh mock on a free loopback port. A defect counts as caught when the tool exits 1; on the
faithful mock an exit 1 is a false alarm.

    .venv/bin/python benchmarks/compare_with_schemathesis.py            # everything (~10 min on 2 cores)
    .venv/bin/python benchmarks/compare_with_schemathesis.py --defect retry-running --defect status-lowercase
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cdf_workflows_mock import EmbeddedMock, MockConfig
from cdf_workflows_mock.defects import CATALOGUE
from retry_contract import contract
from retry_contract.runner import DEFAULT_MAX_EXAMPLES, DEFAULT_SEED, MOCK_PROJECT

BIN = Path(sys.executable).parent
FAITHFUL = "(faithful)"
LABELS = {"schemathesis": "plain `st run`", "retry-contract": "retry-contract run"}


@dataclass
class Measurement:
    tool: str
    target: str
    exit_code: int
    seconds: float
    # The suite exits 0 on SHOULD violations (warnings) unless --strict; they still count as caught.
    warned: bool = False

    @property
    def caught(self) -> bool:
        return self.exit_code == 1 or self.warned


def _plain_schemathesis(base_url: str, token: str, seed: int, max_examples: int) -> list[str]:
    return [
        str(BIN / "st"),
        "run",
        str(contract.spec_path()),
        "--url",
        f"{base_url}/api/v1/projects/{MOCK_PROJECT}",
        "-H",
        f"Authorization: Bearer {token}",
        "--seed",
        str(seed),
        "--max-examples",
        str(max_examples),
        "--no-color",
    ]


def _suite(base_url: str, seed: int, max_examples: int, report_dir: str) -> list[str]:
    return [
        str(BIN / "retry-contract"),
        "run",
        "--base-url",
        base_url,
        "--project",
        MOCK_PROJECT,
        "--seed",
        str(seed),
        "--max-examples",
        str(max_examples),
        "--report-dir",
        report_dir,
    ]


def measure(tool: str, defect: str | None, seed: int, max_examples: int) -> Measurement:
    write, readonly = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    config = MockConfig.with_tokens(
        MOCK_PROJECT, write, readonly, defects=frozenset({defect} if defect else ())
    )
    env = {**os.environ, "CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly}
    with EmbeddedMock(config) as mock, tempfile.TemporaryDirectory() as reports:
        command = (
            _plain_schemathesis(mock.base_url, write, seed, max_examples)
            if tool == "schemathesis"
            else _suite(mock.base_url, seed, max_examples, reports)
        )
        started = time.perf_counter()
        completed = subprocess.run(command, env=env, capture_output=True, timeout=900)
        seconds = time.perf_counter() - started
        report = Path(reports) / "retry-contract.json"
        warned = report.is_file() and any(
            r["failures"] for r in json.loads(report.read_text())["requirements"]
        )
    return Measurement(tool, defect or FAITHFUL, completed.returncode, seconds, warned)


def table(measurements: list[Measurement], defects: list[str]) -> str:
    lines = [
        "| tool | defects caught | false alarm on faithful | median s | total s |",
        "|---|---|---|---|---|",
    ]
    for tool in ("schemathesis", "retry-contract"):
        mine = [m for m in measurements if m.tool == tool]
        caught = sum(1 for m in mine if m.target != FAITHFUL and m.caught)
        faithful = next(m for m in mine if m.target == FAITHFUL)
        seconds = [m.seconds for m in mine]
        lines.append(
            f"| {LABELS[tool]} | {caught}/{len(defects)} "
            f"| {'yes' if faithful.caught else 'no'} (exit {faithful.exit_code}) "
            f"| {statistics.median(seconds):.1f} | {sum(seconds):.0f} |"
        )
    lines += ["", "| target | st caught | st s | suite caught | suite s |", "|---|---|---|---|---|"]
    for target in [FAITHFUL, *defects]:
        st = next(m for m in measurements if m.tool == "schemathesis" and m.target == target)
        suite = next(m for m in measurements if m.tool == "retry-contract" and m.target == target)
        lines.append(
            f"| `{target}` | {_mark(st)} | {st.seconds:.1f} | {_mark(suite)} | {suite.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _mark(measurement: Measurement) -> str:
    if measurement.exit_code not in (0, 1):
        return f"error (exit {measurement.exit_code})"
    return "yes" if measurement.caught else "no"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--defect", action="append", default=None, help="only these defects (repeatable)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES)
    parser.add_argument("--out", type=Path, default=Path("reports/comparison-with-schemathesis.md"))
    args = parser.parse_args()
    defects = args.defect or [d.name for d in CATALOGUE]
    measurements = []
    for target in [None, *defects]:
        for tool in ("schemathesis", "retry-contract"):
            measurement = measure(tool, target, args.seed, args.max_examples)
            measurements.append(measurement)
            print(
                f"{tool:15} {measurement.target:36} exit {measurement.exit_code} {measurement.seconds:.1f} s",
                flush=True,
            )
    result = table(measurements, defects)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        f"# Plain Schemathesis vs retry-contract\n\nseed {args.seed}, "
        f"{args.max_examples} examples per phase\n\n{result}"
    )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
