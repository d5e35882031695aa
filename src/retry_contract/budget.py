"""Bounds on what a run sends to a live server: a total number of requests and a rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class BudgetExhausted(Exception):
    """The run sent as many requests as --max-requests allows."""


class RequestBudget:
    """Thread-safe: `spend()` blocks to keep the rate and raises once the total is used up.

    Cleanup requests are sent with `exempt=True`: leaving fixtures behind would be worse than
    exceeding the budget by the few requests cleanup needs.
    """

    def __init__(
        self,
        max_requests: int | None = None,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_requests = max_requests
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self.spent = 0
        self._closed: str | None = None

    def close(self, reason: str) -> None:
        """Refuse every further request but cleanup's: the run is stopping (an error, Ctrl-C)."""
        with self._lock:
            self._closed = self._closed or reason

    @property
    def exhausted(self) -> bool:
        return self.max_requests is not None and self.spent >= self.max_requests

    def spend(self, *, exempt: bool = False) -> None:
        with self._lock:
            if not exempt and self._closed is not None:
                raise BudgetExhausted(f"the run is stopping: {self._closed}")
            if not exempt and self.exhausted:
                raise BudgetExhausted(f"the request budget of {self.max_requests} is used up")
            self.spent += 1
            now = self._clock()
            wait = max(0.0, self._next_slot - now)
            self._next_slot = max(now, self._next_slot) + self._interval
        if wait:
            self._sleep(wait)
