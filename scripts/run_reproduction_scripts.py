"""Run every failure's `reproduce_script` of a JSON report of an embedded-mock run with bash, against a
fresh mock with the run's defects and profile, and say how many got the status the run was answered.

    PYTHONPATH=src .venv/bin/retry-contract run --mock-defect retry-running --report-dir /tmp/r
    PYTHONPATH=src .venv/bin/python scripts/run_reproduction_scripts.py /tmp/r/retry-contract.json

Exit 0 when every script ran and got the recorded status, 1 otherwise. A script whose request met a
server-side race (concurrent requests) may legitimately differ; each difference is listed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cdf_workflows_mock import EmbeddedMock, MockConfig

SCRIPT_TIMEOUT_SECONDS = 180


def status_of(output: str) -> int | None:
    """The status of the last HTTP answer curl -i printed."""
    lines = [line for line in output.splitlines() if line.startswith("HTTP/")]
    return int(lines[-1].split()[1]) if lines else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    arguments = parser.parse_args()
    data: dict[str, Any] = json.loads(arguments.report.read_text(encoding="utf-8"))
    failures = [f for row in data["requirements"] for f in row["failures"] if "reproduce_script" in f]
    same = 0
    for failure in failures:
        run = failure["replay"]["run"]
        write, readonly = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        config = MockConfig.with_tokens(
            run["project"],
            write,
            readonly,
            defects=frozenset(run["mock_defects"]),
            profile=run["mock_profile"],
        )
        with EmbeddedMock(config) as mock, tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "reproduce.sh"
            path.write_text(failure["reproduce_script"], encoding="utf-8")
            environment = {"PATH": os.environ["PATH"], "CDF_BASE_URL": mock.base_url}
            environment |= {"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly}
            ran = subprocess.run(
                ["bash", str(path)],
                capture_output=True,
                text=True,
                timeout=SCRIPT_TIMEOUT_SECONDS,
                env=environment,
            )
        got = status_of(ran.stdout) if ran.returncode == 0 else None
        if got == failure.get("status"):
            same += 1
        else:
            problem = ran.stderr.strip().splitlines()[-1:] if ran.returncode else [f"answered {got}"]
            print(
                f"failure {failure['number']} {failure['requirement']} ({failure.get('origin')}): recorded "
                f"{failure.get('status')}, script: {'; '.join(problem)}"
            )
    print(f"{same} of {len(failures)} reproduction scripts got the recorded status")
    return 0 if same == len(failures) else 1


if __name__ == "__main__":
    sys.exit(main())
