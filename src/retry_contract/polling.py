"""Waiting for a server that applies workflow changes asynchronously, without sleeping blindly.

The mock settles synchronously, so the first reading already satisfies the condition there; a real
server (CDF runs workflows on an engine) may need a few reads. Each wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from retry_contract.timing import PhaseTimer

T = TypeVar("T")
DEFAULT_TIMEOUT_SECONDS = 20.0
# How long a retry may take to show its new attempts on a server that starts them asynchronously.
RETRY_SETTLE_SECONDS = 5.0


def poll(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    timer: PhaseTimer | None = None,
) -> T:
    """Read until `done` holds or `timeout` seconds pass; the last reading either way.

    Time asleep between reads is added to `timer` as "waiting (polls)": a slow run explains itself.
    """

    def sleep(seconds: float) -> None:
        if timer is not None:
            timer.add("waiting (polls)", seconds)
        time.sleep(seconds)

    retrying = Retrying(
        sleep=sleep,
        retry=retry_if_result(lambda reading: not done(reading)),
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.05, max=1.0),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    reading: T = retrying(read)
    return reading
