"""Where the repository's files are and how the self-tests start the CLI, defined once."""

from __future__ import annotations

import sys
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


def readme_block(name: str) -> str:
    """The fenced block between `<!-- name:start -->` and `<!-- name:end -->` in the README."""
    text = README.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, f"README must hold {name} once"
    block = text[text.index(start) + len(start) : text.index(end)]
    lines = block.strip("\n").split("\n")
    assert lines[0].startswith("```") and lines[-1] == "```", block[:80]
    return "\n".join(lines[1:-1]) + "\n"
