#!/usr/bin/env python3
"""The commands of the README, with nothing installed beforehand but Python >= 3.11.

    python3 dev.py conformance [run options]   # the conformance suite against the embedded mock
    python3 dev.py test [pytest options]       # lint, type checks and every self-test, in parallel
    python3 dev.py test --fast [pytest opts]   # lint, the unit tier and the quick mock tests (< 60 s)
    python3 dev.py lock [--upgrade NAME ...]   # regenerate requirements.lock

The first two create `.venv/` on first use and install the project with the exact versions of
requirements.lock; they reinstall only when pyproject.toml or the lock changes. Standard library only:
this file runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN_DIR = "Scripts" if os.name == "nt" else "bin"
BIN = VENV / BIN_DIR
STAMP = VENV / ".installed-from"
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
PROJECT = "retry-contract"
LINTED = ("src", "tests", "benchmarks", "examples", "scripts", "conftest.py", "dev.py")
PIP_INSTALL = ("-m", "pip", "install", "--quiet", "--disable-pip-version-check")
# The platform the lock is generated on and CI runs on; another one would resolve other packages.
LOCK_PLATFORM = ("linux", (3, 11))
LOCK_HEADER = """\
# The exact versions retry-contract is tested with, every transitive dependency included, for
# Python 3.11 on Linux (CI's platform), as pip constraints: dev.py and CI install with
# `pip install --constraint requirements.lock -e .[test]`. Installing retry-contract into your own
# project does not need this file: pyproject.toml declares compatible ranges.
#
# Regenerated, never edited by hand, with `python3 dev.py lock`: a fresh virtual environment,
# `pip install .[test]` within pyproject.toml's ranges keeping the versions locked here, then
# `pip freeze`. Moving a dependency is a deliberate change of this file:
# `python3 dev.py lock --upgrade NAME` (repeatable) or `--upgrade-all`.
"""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def _python(environment: Path = VENV) -> Path:
    return environment / BIN_DIR / ("python.exe" if os.name == "nt" else "python")


def _normalized(name: str) -> str:
    """The PEP 503 form of a distribution name: `PyYAML` and `pyyaml` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_from() -> str:
    """What the environment was installed from: a change to either file means reinstalling."""
    combined = hashlib.sha256()
    for path in (PYPROJECT, LOCK):
        combined.update(hashlib.sha256(path.read_bytes()).digest())
    return combined.hexdigest()


def ensure_environment() -> None:
    # dev.py is the one file an older interpreter may run: tell the user instead of failing in pip.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit(f"retry-contract needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not LOCK.is_file():
        sys.exit(f"dev.py: {LOCK.name} is missing; `python3 dev.py lock` makes it")
    wanted = installed_from()
    if STAMP.is_file() and STAMP.read_text().strip() == wanted and _python().exists():
        return
    print("dev.py: installing retry-contract and its test dependencies into .venv/ ...", flush=True)
    if not _python().exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(_python()), *PIP_INSTALL]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--constraint", str(LOCK), "--editable", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


def _run(*command: str) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


def conformance(args: list[str]) -> int:
    return _run(str(BIN / "retry-contract"), "run", *args)


# The fast tier, run on every change: the tests that need no server and the quick ones against the
# embedded mock (tests/conftest.py marks the tiers; `slow` is what it leaves out). mypy and the end-to-end
# tier (whole CLI runs, kill matrix, hostile servers, browser) are left to the full command.
FAST_TESTS = ("tests/unit", "tests/mock", "-m", "not slow")
# The full suite runs on pytest-xdist's workers, one per core: the tests are independent (free ports,
# tmp_path, no shared files) and many of them spend their time waiting on servers and subprocesses.
# Their lengths differ a hundredfold, so an idle worker takes tests from a busy one's queue (worksteal).
PARALLEL = ("-n", "auto", "--dist", "worksteal")


def test(args: list[str]) -> int:
    fast = "--fast" in args
    pytest_args = [arg for arg in args if arg != "--fast"]
    # The fast tier's tests take about 75 s of CPU: on one worker per core too, to stay under a minute.
    selection = (*FAST_TESTS, *PARALLEL) if fast else PARALLEL
    steps = [
        (str(BIN / "ruff"), "check", "--no-cache", *LINTED),
        (str(BIN / "ruff"), "format", "--no-cache", "--check", *LINTED),
        *([] if fast else [(str(BIN / "mypy"),)]),
        (str(_python()), "-m", "pytest", *selection, *pytest_args),
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


def locked_pins(text: str) -> dict[str, str]:
    """The `name==version` lines of a lock, by normalized name."""
    pins = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_normalized(match[1])] = line.strip()
    return pins


def lock_text(freeze: str) -> str:
    """requirements.lock from `pip freeze` (the project excluded) of the project's environment."""
    lines: dict[str, str] = {}
    for line in freeze.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        # A `name @ file://...` or editable line would tie the lock to one machine's files.
        if match is None:
            raise ValueError(f"pip freeze gave a line that is not an exact pin: {line!r}")
        lines[_normalized(match[1])] = line
    return LOCK_HEADER + "".join(f"{lines[name]}\n" for name in sorted(lines))


def lock(args: list[str]) -> int:
    """Regenerate requirements.lock, keeping every locked version that pyproject.toml still allows."""
    parser = argparse.ArgumentParser(prog="python3 dev.py lock", description=lock.__doc__)
    parser.add_argument(
        "--upgrade", action="append", default=[], metavar="NAME", help="let this package move (repeatable)"
    )
    parser.add_argument("--upgrade-all", action="store_true", help="let every package move")
    options = parser.parse_args(args)
    platform, version = LOCK_PLATFORM
    if sys.platform != platform or sys.version_info[:2] != version:
        sys.exit(
            f"dev.py lock: the lock is for Python {version[0]}.{version[1]} on {platform} (CI's platform); "
            f"this is Python {sys.version.split()[0]} on {sys.platform}"
        )
    upgraded = {_normalized(name) for name in options.upgrade}
    kept = {} if options.upgrade_all or not LOCK.is_file() else locked_pins(LOCK.read_text())
    kept = {name: pin for name, pin in kept.items() if name not in upgraded}
    with tempfile.TemporaryDirectory(prefix="retry-contract-lock-") as scratch:
        environment = Path(scratch) / "venv"
        print(f"dev.py lock: resolving in a fresh environment ({len(kept)} versions kept) ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(environment)
        pip = [str(_python(environment)), *PIP_INSTALL]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        constraints = Path(scratch) / "kept.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in kept.values()))
        installed = subprocess.run([*pip, "--constraint", str(constraints), f"{ROOT}[test]"])
        if installed.returncode:
            sys.exit(
                "dev.py lock: pip could not install within pyproject.toml's ranges while keeping the locked "
                "versions; let the packages pip names move with --upgrade NAME"
            )
        # The project itself is installed from this directory: a `retry-contract @ file://` line.
        freeze = subprocess.run(
            [str(_python(environment)), "-m", "pip", "freeze", "--exclude", PROJECT],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    new = lock_text(freeze)
    old_pins = locked_pins(LOCK.read_text()) if LOCK.is_file() else {}
    new_pins = locked_pins(new)
    LOCK.write_text(new)
    for name in sorted(old_pins.keys() | new_pins.keys()):
        if old_pins.get(name) != new_pins.get(name):
            print(f"  {old_pins.get(name, '(none)')} -> {new_pins.get(name, '(removed)')}")
    print(f"dev.py lock: wrote {LOCK.name} ({len(new_pins)} packages)")
    return 0


# Commands that need the project's environment first.
COMMANDS = {"conformance": conformance, "test": test}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in {*COMMANDS, "lock"}:
        sys.exit(f"usage: python3 dev.py {{{'|'.join([*COMMANDS, 'lock'])}}} [options]")
    try:
        if sys.argv[1] == "lock":
            sys.exit(lock(sys.argv[2:]))
        ensure_environment()
    except subprocess.CalledProcessError as error:
        sys.exit(f"dev.py: installing dependencies failed ({error}); see pip's output above")
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
