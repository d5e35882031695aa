#!/usr/bin/env python3
"""The spec gate, locally and in the self-test: does a change to the curated spec break the contract?

    .venv/bin/python scripts/spec_gate.py --base-ref origin/main        # the working tree's spec
    .venv/bin/python scripts/spec_gate.py --base OLD.yaml --head NEW.yaml
    .venv/bin/python scripts/spec_gate.py --base-ref BASE --intended    # a breaking change on purpose

On GitHub the gate is oasdiff's action (.github/workflows/spec-gate.yml, its levels in
.github/spec-gate/). oasdiff cannot be installed from the registries these machines reach (no PyPI
or npm package ships it, and Debian's Go is too old to build it), so this script runs optic: archived
since January 2026, pinned, and held by tests/e2e/test_spec_gate.py to the same classification of the
same changes as oasdiff's settings.

The head spec must be valid OpenAPI (openapi-spec-validator). Then optic (`optic diff --check`, its
standard breaking-change rules) compares the two in both directions, because the contract binds both
sides of the API:

- base → head: what a client written against the base spec would break on (a required request field
  added, a response property removed, a response enum value added, ...);
- head → base: what a server that conformed to the base spec would now violate (a response enum value
  removed, a response narrowed, ...). optic words these changes from head to base.

Exit status: 0 nothing breaks, or it breaks and --intended says so (a notice); 1 a breaking change;
2 the specs cannot be compared (invalid head spec, unreadable file, unknown git ref); 3 the tool cannot
be had (no npm, or installing it failed). In GitHub Actions the verdict is also an annotation.

optic is pinned with its whole dependency tree (.github/spec-gate/package-lock.json) and installed
once with `npm ci` into a cache directory outside the repository, keyed by the lock's hash:
--cache-dir, else $SPEC_GATE_CACHE, else ~/.cache/retry-contract/spec-gate (CI caches that folder).
Standard library, PyYAML and openapi-spec-validator only: the project's environment has them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = Path("spec/retry-workflow-execution.yaml")
TOOL_MANIFEST = ROOT / ".github" / "spec-gate"
TOOL = "@useoptic/optic"
BREAKING_MARK = "This is a breaking change"
LABEL = "breaking-change-intended"
INSTALL_TIMEOUT = 900
DIFF_TIMEOUT = 300

OK, BREAKING, CANNOT_COMPARE, TOOL_UNAVAILABLE = 0, 1, 2, 3


class GateError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def default_cache_dir() -> Path:
    if configured := os.environ.get("SPEC_GATE_CACHE"):
        return Path(configured)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "retry-contract" / "spec-gate"


def tool_version() -> str:
    import json

    manifest = json.loads((TOOL_MANIFEST / "package.json").read_text(encoding="utf-8"))
    return str(manifest["dependencies"][TOOL])


def ensure_tool(cache_dir: Path) -> Path:
    """The optic executable, installed from the lock into the cache on first use."""
    manifests = [TOOL_MANIFEST / "package.json", TOOL_MANIFEST / "package-lock.json"]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in manifests)).hexdigest()[:16]
    home = cache_dir / f"optic-{tool_version()}-{digest}"
    executable = home / "node_modules" / ".bin" / "optic"
    # The marker is written last: a folder without it is an install that was cut short.
    if (home / ".installed").is_file() and executable.exists():
        return executable
    npm = shutil.which("npm")
    if npm is None:
        raise GateError(
            "cannot install optic: npm is not installed (it comes with Node.js)", TOOL_UNAVAILABLE
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Installed beside the final folder, then renamed into place: two gates at once never share a
    # half-installed tree, and an interrupted install leaves nothing that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=cache_dir))
    try:
        for path in manifests:
            shutil.copy2(path, staging / path.name)
        # --ignore-scripts: optic needs no install script; its tree's only ones send analytics.
        command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        print(f"spec gate: installing {TOOL}@{tool_version()} into {home} ...", flush=True)
        try:
            installed = subprocess.run(
                command, cwd=staging, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise GateError(
                f"cannot install optic: npm ci took over {INSTALL_TIMEOUT} s", TOOL_UNAVAILABLE
            ) from None
        if installed.returncode != 0:
            last = " | ".join((installed.stderr or installed.stdout).strip().splitlines()[-3:])
            raise GateError(f"cannot install optic: npm ci failed: {last}", TOOL_UNAVAILABLE)
        (staging / ".installed").write_text(f"{TOOL}@{tool_version()}\n")
        if home.exists():
            shutil.rmtree(home)
        try:
            staging.rename(home)
        except OSError:
            # Another gate finished the same install first: use its copy.
            if not (home / ".installed").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return executable


def read_base(base: Path | None, base_ref: str | None, head: Path) -> tuple[str, str]:
    """The base spec's text and a name for it."""
    if base is not None:
        try:
            return base.read_text(encoding="utf-8"), str(base)
        except (OSError, UnicodeDecodeError) as error:
            raise GateError(f"cannot read the base spec {base}: {error}", CANNOT_COMPARE) from None
    assert base_ref is not None
    try:
        inside = head.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        inside = SPEC.as_posix()
    shown = subprocess.run(["git", "show", f"{base_ref}:{inside}"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        reason = shown.stderr.strip().splitlines()[-1:] or ["git show failed"]
        raise GateError(f"cannot read {inside} at {base_ref}: {reason[0]}", CANNOT_COMPARE)
    return shown.stdout, f"{base_ref}:{inside}"


def validate_head(text: str, name: str) -> None:
    import yaml
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise GateError(f"{name} is not YAML: {error}".replace("\n", " "), CANNOT_COMPARE) from None
    if not isinstance(document, dict):
        raise GateError(f"{name} is not an OpenAPI document", CANNOT_COMPARE)
    try:
        validate(document)
    except OpenAPIValidationError as error:
        where = "/".join(str(part) for part in error.path) or "the document"
        raise GateError(f"{name} is not valid OpenAPI, at {where}: {error.message}", CANNOT_COMPARE) from None


@dataclass(frozen=True)
class Direction:
    title: str
    old: Path
    new: Path


@dataclass(frozen=True)
class Finding:
    direction: Direction
    breaking: bool
    output: str


def compare(optic: Path, base_text: str, head_text: str) -> list[Finding]:
    """optic's verdict both ways, the two run side by side on copies in a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="spec-gate-") as scratch:
        # Copies under base/ and head/ with the spec's own name, so optic's "at head/...:LINE" points
        # at the line of the pull request's file; the scratch folder holds no optic.yml to pick up.
        base_file, head_file = Path(scratch, "base", SPEC.name), Path(scratch, "head", SPEC.name)
        for path, text in ((base_file, base_text), (head_file, head_text)):
            path.parent.mkdir()
            path.write_text(text, encoding="utf-8")
        directions = [
            Direction("what a client of the base spec would break on", base_file, head_file),
            Direction(
                "what a server conforming to the base spec would now violate (optic words it head → base)",
                head_file,
                base_file,
            ),
        ]
        environment = {
            **os.environ,
            "OPTIC_TELEMETRY_LEVEL": "off",
            "NO_UPDATE_NOTIFIER": "1",
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
        }
        running = [
            (
                direction,
                subprocess.Popen(
                    [
                        str(optic),
                        "diff",
                        str(direction.old.relative_to(scratch)),
                        str(direction.new.relative_to(scratch)),
                        "--check",
                    ],
                    cwd=scratch,
                    env=environment,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                ),
            )
            for direction in directions
        ]
        findings = []
        for direction, process in running:
            try:
                output, _ = process.communicate(timeout=DIFF_TIMEOUT)
            except subprocess.TimeoutExpired:
                for _, other in running:
                    other.kill()
                raise GateError(f"optic diff took over {DIFF_TIMEOUT} s", CANNOT_COMPARE) from None
            breaking = BREAKING_MARK in output
            if process.returncode != 0 and not breaking:
                summary = " | ".join(output.strip().splitlines()[-3:])
                raise GateError(f"optic could not compare the specs: {summary}", CANNOT_COMPARE)
            # optic ends with an offer of its web view, which needs an account: noise in a CI log.
            shown = [line for line in output.rstrip().splitlines() if "--web flag" not in line]
            findings.append(Finding(direction, breaking, "\n".join(shown)))
        return findings


def annotate(level: str, title: str, message: str) -> None:
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::{level} title={title}::{message}", flush=True)
    else:
        print(f"{level}: {title}: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    base = parser.add_mutually_exclusive_group(required=False)
    base.add_argument("--base", type=Path, metavar="FILE", help="The base spec, a file.")
    base.add_argument(
        "--base-ref", metavar="REF", help=f"The base spec: the head's path (or {SPEC}) at this git ref."
    )
    parser.add_argument(
        "--head", type=Path, default=ROOT / SPEC, metavar="FILE", help=f"The changed spec (default: {SPEC})."
    )
    parser.add_argument(
        "--intended",
        action="store_true",
        help=f"Breaking changes are meant (the pull request carries the label {LABEL}): notice, exit 0.",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="Where optic is installed (see above).")
    parser.add_argument(
        "--install-only", action="store_true", help="Install optic if needed, print its path."
    )
    options = parser.parse_args(argv)
    try:
        optic = ensure_tool(options.cache_dir or default_cache_dir())
        if options.install_only:
            print(optic)
            return OK
        if options.base is None and options.base_ref is None:
            parser.error("give --base FILE or --base-ref REF")
        try:
            head_text = options.head.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise GateError(f"cannot read the head spec {options.head}: {error}", CANNOT_COMPARE) from None
        base_text, base_name = read_base(options.base, options.base_ref, options.head)
        validate_head(head_text, str(options.head))
        findings = compare(optic, base_text, head_text)
    except GateError as error:
        annotate("error", "Spec gate could not run", str(error))
        return error.code
    print(f"spec gate: {TOOL}@{tool_version()}, base {base_name}, head {options.head}")
    for finding in findings:
        print(f"\n--- {finding.direction.title}: {'BREAKING' if finding.breaking else 'nothing breaks'}")
        print(finding.output)
    print()
    breaking = [finding.direction.title for finding in findings if finding.breaking]
    if not breaking:
        print("spec gate: no breaking change to the contract")
        return OK
    said = "; ".join(breaking)
    if options.intended:
        annotate(
            "notice",
            "Breaking change intended",
            f"the spec change breaks the contract ({said}), as the pull request says",
        )
        return OK
    annotate(
        "error",
        "Breaking change to the contract",
        f"{said}; see the log above. If it is meant, label the pull request {LABEL}.",
    )
    return BREAKING


if __name__ == "__main__":
    sys.exit(main())
