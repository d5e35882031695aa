"""Scenario checks: requests built on purpose for what random data rarely reaches.

Each scenario gets a :class:`ScenarioContext`, sends its requests through `ctx.retry`/`ctx.send`
(every response is judged by the per-exchange judges too) and adds the observations only it can
make, such as "nothing changed" or "exactly these tasks got a new attempt".
"""

from __future__ import annotations

from collections.abc import Callable

from retry_contract.scenarios import auth, forms, malformed, nonces, odd_values, semantics, states
from retry_contract.scenarios.context import ScenarioContext

Scenario = Callable[[ScenarioContext], None]

ALL_SCENARIOS: tuple[Scenario, ...] = (
    *auth.SCENARIOS,
    *malformed.SCENARIOS,
    *odd_values.SCENARIOS,
    *states.SCENARIOS,
    *nonces.SCENARIOS,
    *semantics.SCENARIOS,
    *forms.SCENARIOS,
)
# The scenarios with the longest chains of requests, started first so that they do not end the
# concurrent part of a run alone (their reports still follow ALL_SCENARIOS' order).
LONGEST_FIRST: tuple[Scenario, ...] = (forms.request_forms, malformed.malformed_bodies, semantics.task_shapes)

# Run after everything else: each waits on the server for something that takes time to happen.
LATE_SCENARIOS: tuple[Scenario, ...] = states.LATE_SCENARIOS

__all__ = ["ALL_SCENARIOS", "LATE_SCENARIOS", "LONGEST_FIRST", "Scenario", "ScenarioContext"]
