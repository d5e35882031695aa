"""Where the repository's files are and how the self-tests start the CLI, defined once."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# tests/support/project.py: the repository is two levels up.
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# The shared reference (requirement catalogue, upstream evidence) lies beside the repository's checkout.
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
# The example state file of the README and the id of its failed execution.
EXAMPLE_STATE = ROOT / "examples" / "fake_cdf_state.yaml"
EXAMPLE_FAILED_ID = "0b6f6a4e-8a51-4c1e-9d8e-3f1c2a7b9d10"
# The project the self-tests' embedded mocks serve.
PROJECT = "contract-test"
# The CLI as a user runs it, in a separate process.
CLI = (sys.executable, "-m", "retry_contract.cli")
# Inherited settings a child process must not see: a run's credentials and options, CI's and pytest's.
_NOT_INHERITED = ("CDF_", "GITHUB_", "RETRY_CONTRACT", "PYTEST_")


def child_environment(
    variables: Mapping[str, str] = {}, *, path_first: Sequence[Path] = ()
) -> dict[str, str]:
    """The environment of a Python child process that imports this checkout's `src/` (after
    `path_first`), with `variables` and none of the settings of this process's environment."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(_NOT_INHERITED)}
    path = os.pathsep.join(
        entry
        for entry in (*map(str, path_first), str(ROOT / "src"), os.environ.get("PYTHONPATH", ""))
        if entry
    )
    return {**inherited, "PYTHONPATH": path, **variables}


def readme_block(name: str) -> str:
    """The fenced block between `<!-- name:start -->` and `<!-- name:end -->` in the README."""
    text = README.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, f"README must hold {name} once"
    block = text[text.index(start) + len(start) : text.index(end)]
    lines = block.strip("\n").split("\n")
    assert lines[0].startswith("```") and lines[-1] == "```", block[:80]
    return "\n".join(lines[1:-1]) + "\n"
