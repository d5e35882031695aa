#!/usr/bin/env python3
"""The two commands of the README, with nothing installed beforehand but Python >= 3.11.

    python3 dev.py conformance [run options]   # the conformance suite against the embedded mock
    python3 dev.py test [pytest options]       # lint, type checks and the self-tests

Each creates `.venv/` on first use and reinstalls only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-from"
LINTED = ("src", "tests", "benchmarks", "examples", "conftest.py", "dev.py")


def _python() -> Path:
    return BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_environment() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == wanted and _python().exists():
        return
    # dev.py is the one file an older interpreter may run: tell the user instead of failing in pip.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit(f"retry-contract needs Python >= 3.11; this is {sys.version.split()[0]}")
    print("dev.py: installing retry-contract and its test dependencies into .venv/ ...", flush=True)
    if not _python().exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--editable", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def _run(*command: str) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


def conformance(args: list[str]) -> int:
    return _run(str(BIN / "retry-contract"), "run", *args)


def test(args: list[str]) -> int:
    steps = [
        (str(BIN / "ruff"), "check", "--no-cache", *LINTED),
        (str(BIN / "ruff"), "format", "--no-cache", "--check", *LINTED),
        (str(BIN / "mypy"),),
        (str(_python()), "-m", "pytest", *args),
    ]
    for step in steps:
        print(
            f"dev.py: {' '.join(Path(step[0]).name if i == 0 else part for i, part in enumerate(step))}",
            flush=True,
        )
        code = _run(*step)
        if code:
            return code
    return 0


COMMANDS = {"conformance": conformance, "test": test}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [options]")
    try:
        ensure_environment()
    except subprocess.CalledProcessError as error:
        sys.exit(f"dev.py: installing dependencies failed ({error}); see pip's output above")
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
