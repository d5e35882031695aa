"""Which mock defects the suite catches with its generated fixture values, and which it would catch
with the five hand-picked shapes it used before (`--hand-picked`); and whether the faithful mock
passes with several seeds (`--faithful`). Runs one embedded-mock run at a time.

    PYTHONPATH=src .venv/bin/python scripts/compare_fixture_values.py [--hand-picked] DEFECT...
    PYTHONPATH=src .venv/bin/python scripts/compare_fixture_values.py --faithful 1 2 3 20230101
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from retry_contract import fixture_values
from retry_contract.defect_matrix import FAITHFUL_PROFILES, MatrixSettings, run_one
from retry_contract.fixture_values import FixtureShape
from retry_contract.request_forms import RAW_UTF8
from retry_contract.runner import DEFAULT_MAX_EXAMPLES, DEFAULT_SEED


def hand_picked_shapes(seed: int, seeded: int = 0) -> tuple[FixtureShape, ...]:
    """The shapes provisioning cycled through before its values were generated (version "1", no tail)."""
    limits = fixture_values.rules()
    at_limits = {
        f"retry-contract-{index:02d}".ljust(limits.max_key_length, "k"): f"fixture value {index} ".ljust(
            limits.max_value_length, "v"
        )
        for index in range(limits.max_pairs)
    }
    return (
        FixtureShape("metadata at every limit, no input", at_limits, None),
        FixtureShape("empty metadata, empty input", {}, {}),
        FixtureShape("one metadata pair, an input object", {"purpose": "retry-contract"}, {"batch": 7}),
        FixtureShape(
            "non-ASCII metadata and input as raw UTF-8",
            {"owner": "Åsa Ødegård", "note": "überprüft ✓ 再試行 \u200f\u05e2\u05d1\u05e8\u05d9\u05ea"},
            {"city": "Tromsø", "emoji": "🛠️"},
            RAW_UTF8,
        ),
        FixtureShape("no metadata field, no input", None, None),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="+", help="defect names, or seeds with --faithful")
    parser.add_argument("--hand-picked", action="store_true")
    parser.add_argument("--faithful", action="store_true")
    arguments = parser.parse_args()
    if arguments.hand_picked:
        # provisioning reads the cycle through this function at run time.
        fixture_values.fixture_shapes = hand_picked_shapes  # type: ignore[assignment]
    rows: list[tuple[Any, ...]] = []
    if arguments.faithful:
        for seed in (int(name) for name in arguments.names):
            for profile in FAITHFUL_PROFILES:
                started = time.perf_counter()
                outcome = run_one(None, MatrixSettings(seed, DEFAULT_MAX_EXAMPLES, False), profile)
                rows.append((f"seed {seed}", profile, outcome.caught, outcome.failed, outcome.error))
                print(*rows[-1], f"{time.perf_counter() - started:.0f} s", flush=True)
    else:
        for name in arguments.names:
            outcome = run_one(name, MatrixSettings(DEFAULT_SEED, DEFAULT_MAX_EXAMPLES, False))
            rows.append((name, outcome.caught, outcome.failed, outcome.error))
            print(*rows[-1], f"{outcome.seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
