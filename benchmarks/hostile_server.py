#!/usr/bin/env python3
"""The suite against every hostile server of tests/e2e/test_hostile_server.py, as a Markdown table.

Each case runs the CLI in its own process against a fresh embedded mock behind
`tests/support/hostile_proxy.py` (canary tokens), one case at a time, and reports: its exit status (or
that it was killed at the case's wall bound), wall seconds, peak RSS of that process (`os.wait4`), how
many times a canary was found in any encoded form in anything it wrote, and whether it wrote its reports
(a parseable JSON report).
Cases that need a flag the suite lacks run without it (the table says so).

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/hostile_server.py            # every case (~25 min)
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/hostile_server.py --fast     # the unmarked ones
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/hostile_server.py --case drip-one --case gzip-bomb

Exit status: 0 when every case met the test's expectations, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

# The cases and their runner are the self-test's (tests/e2e/test_hostile_server.py), which imports the
# helpers of tests/support as `support`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from test_hostile_server import (
    CASES,
    JSON_REPORT,
    MAX_PEAK_RSS_MIB,
    Case,
    Outcome,
    run_case,
    supported_flags,
)


def meets_expectations(case: Case, outcome: Outcome) -> bool:
    return (
        outcome.ended_by_itself
        and (case.ends_within is None or outcome.wall_seconds < case.ends_within)
        and outcome.exit_code in case.exits
        and outcome.secrets_found == 0
        and outcome.peak_rss_mib < MAX_PEAK_RSS_MIB
        and outcome.json_report_ok
    )


def row(case: Case, outcome: Outcome) -> str:
    exit_text = str(outcome.exit_code) if outcome.ended_by_itself else f"killed at {case.wall_seconds:.0f} s"
    missing = [flag for flag in case.needs if flag not in supported_flags()]
    written = "yes" if outcome.json_report_ok else ("no" if not outcome.reports else "unparseable JSON")
    notes = [f"without {', '.join(missing)}"] if missing else []
    if outcome.secrets_found:
        notes.append(f"leaked: {outcome.leak_summary()}")
    verdict = "ok" if meets_expectations(case, outcome) else "FAILS"
    cells = [
        case.name,
        exit_text,
        f"{outcome.wall_seconds:.1f}",
        f"{outcome.peak_rss_mib:.0f}",
        str(outcome.secrets_found),
        written,
        verdict,
        "; ".join(notes),
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", action="append", default=[], metavar="NAME", help="Only these cases.")
    parser.add_argument("--fast", action="store_true", help="Only the cases the test does not mark slow.")
    options = parser.parse_args(argv)
    known = {case.name for case in CASES}
    if unknown := sorted(set(options.case) - known):
        parser.error(f"unknown case {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    chosen = [
        case
        for case in CASES
        if (not options.case or case.name in options.case) and not (options.fast and case.slow)
    ]
    print("| mode | exit | wall s | peak RSS MiB | secrets found | reports written | expected | notes |")
    print("|---|---|---|---|---|---|---|---|")
    failed = 0
    for case in chosen:
        with tempfile.TemporaryDirectory(prefix=f"hostile-{case.name}-") as directory:
            outcome = run_case(case, Path(directory))
        failed += not meets_expectations(case, outcome)
        print(row(case, outcome), flush=True)
    print(
        f"\n{len(chosen) - failed} of {len(chosen)} cases as expected ({JSON_REPORT} parseable, no canary, "
        f"peak RSS < {MAX_PEAK_RSS_MIB} MiB, exit as the case allows, ended by itself)."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
