"""Where a run's time goes: wall seconds per phase, and time summed over threads by kind.

Phases overlap when work runs concurrently (fuzzing inside "scenarios and fuzzing"), so the report
shows each phase's own wall time, not shares of a total.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Thread-safe: phases may be timed from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phases: dict[str, float] = {}
        # Seconds summed over every thread: time spent waiting for responses, by kind of request, and
        # asleep between the reads of a poll.
        self.summed: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add_phase(name, time.perf_counter() - started)

    def add_phase(self, name: str, seconds: float) -> None:
        with self._lock:
            self.phases[name] = self.phases.get(name, 0.0) + seconds

    def add(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.summed[kind] = self.summed.get(kind, 0.0) + seconds

    def as_json(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                "wall_seconds": {name: round(value, 3) for name, value in self.phases.items()},
                "summed_seconds": {kind: round(value, 3) for kind, value in sorted(self.summed.items())},
            }
