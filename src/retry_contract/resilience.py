"""Telling faults of the network from faults of the server under test.

Connection failures, DNS and TLS errors, timeouts and 429/502/503/504 answers are retried with
bounded, jittered backoff that honours `Retry-After`. What still fails afterwards is a *fault*:
reported as an infrastructure error, never as a contract violation. A connection the server drops
after receiving the whole request, every time it is asked, is the server's doing: that stays a
response to judge (ROBUST).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_base, wait_exponential

from retry_contract.exchange import Exchange

# Answers of proxies, gateways and rate limiters: the request may be fine, the path to the server is not.
FAULT_STATUSES = frozenset({429, 502, 503, 504})
# Transport errors where the request may never have reached the server, or its answer never came.
FAULT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.TimeoutException, httpx.ProxyError)
# The connection broke after the request went out: retried, but judged as ROBUST if it persists.
BROKEN_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    max_seconds: float = 60.0
    initial_backoff: float = 0.2
    max_backoff: float = 10.0

    def retrying(self, sleep: Callable[[float], None] = time.sleep) -> Retrying:
        return Retrying(
            retry=retry_if_result(is_retryable),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_seconds),
            wait=_RetryAfterOr(
                wait_exponential(multiplier=self.initial_backoff, max=self.max_backoff)
                + _Jitter(self.initial_backoff),
                self.max_backoff,
            ),
            sleep=sleep,
            reraise=True,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )

    def patient(self) -> RetryPolicy:
        """For the suite's own setup requests (sessions, runs, task updates, readings): no answer of them
        is judged, and one that fails ends the run, so they outlast a gateway's outage window far longer
        than the requests under test, still bounded."""
        return replace(self, attempts=self.attempts * 2 + 2, max_seconds=self.max_seconds * 2)


DEFAULT_RETRY_POLICY = RetryPolicy()


def is_retryable(exchange: Exchange) -> bool:
    return exchange.status in FAULT_STATUSES or exchange.transport_error is not None


def fault_of(exchange: Exchange) -> str | None:
    """Why this final exchange says nothing about the contract, or None when it can be judged."""
    if exchange.status in FAULT_STATUSES:
        return f"{exchange.status} from {exchange.url} after {exchange.attempts} attempts"
    if exchange.transport_error is not None and not exchange.connection_broken:
        return f"{exchange.transport_error} after {exchange.attempts} attempts"
    return None


def retry_after_seconds(exchange: Exchange) -> float | None:
    value = exchange.header("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class _Jitter(wait_base):
    """Up to `spread` seconds more, drawn from a generator of its own.

    Not the `random` module's (tenacity's jittered waits use it): the fuzzer's thread may be drawing
    a case while a retry waits on another thread, and Hypothesis takes any change of the global
    random state during a draw for a strategy using `random`, and warns, printing the strategy.
    """

    _generator = random.Random()

    def __init__(self, spread: float) -> None:
        self._spread = spread

    def __call__(self, retry_state: RetryCallState) -> float:
        return self._generator.uniform(0.0, self._spread)


class _RetryAfterOr:
    """Waits as the server asks (`Retry-After`), or else with the fallback backoff; never beyond the cap."""

    def __init__(self, fallback: Callable[[RetryCallState], float], cap: float) -> None:
        self._fallback = fallback
        self._cap = cap

    def __call__(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exchange = outcome.result() if outcome is not None and not outcome.failed else None
        asked = retry_after_seconds(exchange) if isinstance(exchange, Exchange) else None
        return min(asked if asked is not None else self._fallback(state), self._cap)
