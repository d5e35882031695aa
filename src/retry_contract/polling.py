"""Waiting for a server that applies workflow changes asynchronously, without sleeping blindly.

The mock settles synchronously, so the first reading already satisfies the condition there; a real
server (CDF runs workflows on an engine) may need a few reads. Each wait is bounded, and waits for
the effects of retries share one run-wide `WaitBudget` besides: a server that never shows an effect
costs the run that budget once, not a full wait per retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_delay,
    stop_any,
    wait_exponential,
)
from tenacity.stop import stop_base

from retry_contract.timing import PhaseTimer

T = TypeVar("T")
DEFAULT_TIMEOUT_SECONDS = 20.0
# How long a retry may take to show its new attempts on a server that starts them asynchronously.
RETRY_SETTLE_SECONDS = 5.0
# How long, in all, a run waits for effects that do not come: two full waits. A wait that ends with
# its effect seen costs nothing, so a faithful server, however many retries it answers, never spends
# it; a server that shows no effect spends it on its first two retries, and every later wait is a
# single reading (the effect is judged missing from it at once).
RUN_WAIT_BUDGET_SECONDS = 2 * RETRY_SETTLE_SECONDS


class WaitBudget:
    """The time a run may still spend waiting for effects that never come, shared by all its threads.

    Only waits that end without their effect are charged (with how long they lasted); once the budget
    is spent, waits under way stop at their next reading and later ones read once.
    """

    def __init__(self, seconds: float = RUN_WAIT_BUDGET_SECONDS) -> None:
        self._left = seconds
        self._lock = threading.Lock()

    @property
    def left(self) -> float:
        with self._lock:
            return max(0.0, self._left)

    @property
    def spent(self) -> bool:
        return self.left <= 0.0

    def charge(self, seconds: float) -> None:
        """A wait ended after `seconds` without its effect."""
        with self._lock:
            self._left -= seconds


class _BudgetSpent(stop_base):
    """Stops a wait once the run's budget is spent, whoever spent it."""

    def __init__(self, budget: WaitBudget) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.budget.spent


def poll(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    timer: PhaseTimer | None = None,
    budget: WaitBudget | None = None,
) -> T:
    """Read until `done` holds or `timeout` seconds pass; the last reading either way.

    With a `budget`, the wait is also bounded by what is left of it, and stops once it is spent (by
    this wait or another thread's); a wait that ends without `done` is charged to it.
    Time asleep between reads is added to `timer` as "waiting (polls)": a slow run explains itself.
    """

    def sleep(seconds: float) -> None:
        if timer is not None:
            timer.add("waiting (polls)", seconds)
        time.sleep(seconds)

    stop: stop_base = stop_after_delay(timeout if budget is None else min(timeout, budget.left))
    if budget is not None:
        stop = stop_any(stop, _BudgetSpent(budget))
    retrying = Retrying(
        sleep=sleep,
        retry=retry_if_result(lambda reading: not done(reading)),
        stop=stop,
        wait=wait_exponential(multiplier=0.05, max=1.0),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    started = time.monotonic()
    reading: T = retrying(read)
    if budget is not None and not done(reading):
        budget.charge(time.monotonic() - started)
    return reading
