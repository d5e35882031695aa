"""Concurrency changes how long a run takes, never what it concludes: the same verdict, the same
requirement outcomes and the same number of judgements with one worker as with eight."""

from __future__ import annotations

import functools

import pytest

from retry_contract.runner import MOCK_PROJECT, RunOptions, RunResult, run

# The faithful mock and defects that show in different places: the retries limit on repeated retries,
# optional tasks, fixture shapes (metadata below its limits), and nonces (scenarios and fuzzing).
TARGETS = (
    (),
    ("limit-reset",),
    ("optional-retried",),
    ("metadata-stamped-when-room",),
    ("nonce-not-verified",),
)


# The last run is kept (one: a run's result is large): the ordering test below compares a second run of
# eight workers with the one the last case of the first test made, when it ran just before on this worker.
@functools.lru_cache(maxsize=1)
def _run(concurrency: int, defects: tuple[str, ...]) -> RunResult:
    return run(
        RunOptions(
            base_url=None,
            project=MOCK_PROJECT,
            credentials=None,
            max_examples=10,
            concurrency=concurrency,
            mock_defects=frozenset(defects),
        )
    )


def _summary(result: RunResult) -> tuple[int, dict[str, tuple[str, int, int]], int]:
    outcomes = {
        requirement: (r.outcome.value, r.judged, len(r.failures))
        for requirement, r in result.ledger.results.items()
    }
    return int(result.exit_code), outcomes, result.fuzz.cases


@pytest.mark.slow
@pytest.mark.parametrize("defects", TARGETS, ids=lambda d: d[0] if d else "faithful")
def test_concurrent_and_sequential_runs_conclude_alike(defects: tuple[str, ...]) -> None:
    sequential, concurrent = _run(1, defects), _run(8, defects)
    assert _summary(concurrent) == _summary(sequential)
    assert concurrent.timer.phases.keys() >= {"preflight", "scenarios and fuzzing", "fuzzing", "cleanup"}


@pytest.mark.slow
def test_reports_list_failures_in_the_same_order_whatever_the_interleaving() -> None:
    first, second = _run(8, ("nonce-not-verified",)), _run.__wrapped__(8, ("nonce-not-verified",))
    for requirement in ("BODY-NONCE", "NONCE-REUSE"):
        origins = [
            [f.exchange.origin for f in r.ledger.results[requirement].failures if f.exchange]
            for r in (first, second)
        ]
        assert origins[0] == origins[1] and origins[0]
