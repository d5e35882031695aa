"""Chaos mode, opt-in: latency and transient 429/503 answers in front of the mock.

Client code talks to a CDF that is sometimes slow and sometimes says "not now": the official SDK
re-sends on 429 and 503 (with its own backoff), and code that drives workflows through it should
survive that. `ChaosConfig` (a field of `MockConfig`, off by default) switches this on:

- `latency_min_seconds`/`latency_max_seconds`: every request waits a delay drawn uniformly from the
  range before it is handled (both 0: none);
- `error_rate`: the share of requests answered 429 or 503 (half each, on average), with the Cognite
  error envelope, an `X-Request-ID` and `Retry-After`;
- `seed`: the draws come from `random.Random(seed)`, a fixed number per request, so the n-th request
  an app receives meets the same fate in every run with the same seed.

The middleware sits in front of everything else, defects included: a refused request never reaches
the model, so it changes nothing (its nonce stays unused, no execution starts), exactly like a
request a real CDF turned away at its gateway. That is what makes re-sending it safe.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from cdf_workflows_mock.bodies import json_response
from cdf_workflows_mock.errors import error_body

# A delay longer than the SDK's default request timeout (30 s) would only make clients time out;
# the bound keeps a typo (`--latency 500`) from hanging a test run.
MAX_LATENCY_SECONDS = 30.0
# What a chaos answer asks the client to wait, in whole seconds (RFC 9110 delay-seconds). The SDK
# ignores it (its own jittered backoff decides), clients that honour it wait this long.
RETRY_AFTER_SECONDS = 1
INJECTED_STATUSES = (429, 503)
_MESSAGES = {
    429: "Too many requests; retry later (injected by the fake CDF's chaos mode: nothing was done)",
    503: "Service unavailable; retry later (injected by the fake CDF's chaos mode: nothing was done)",
}


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """Faults in front of the mock; the default injects none."""

    latency_min_seconds: float = 0.0
    latency_max_seconds: float = 0.0
    error_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("latency_min_seconds", "latency_max_seconds", "error_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"chaos {name} must be a finite number, got {value!r}")
        if not 0 <= self.latency_min_seconds <= self.latency_max_seconds <= MAX_LATENCY_SECONDS:
            raise ValueError(
                f"chaos latency must satisfy 0 <= min <= max <= {MAX_LATENCY_SECONDS:g} seconds, "
                f"got {self.latency_min_seconds:g}-{self.latency_max_seconds:g}"
            )
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"chaos error rate must be between 0 and 1, got {self.error_rate:g}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"chaos seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_options(
        cls, latency: str | float | None = None, error_rate: float | None = None, seed: int | None = None
    ) -> ChaosConfig:
        """From the spellings of a command line: latency `SECONDS` or `MIN-MAX` (a ValueError says
        what is wrong)."""
        low, high = parse_latency(latency) if latency is not None else (0.0, 0.0)
        return cls(low, high, 0.0 if error_rate is None else error_rate, 0 if seed is None else seed)

    @property
    def enabled(self) -> bool:
        return self.latency_max_seconds > 0 or self.error_rate > 0

    def describe(self) -> str:
        """One line for a banner, e.g. `latency 0.1-0.5 s, 429/503 on 30% of requests, seed 7`."""
        parts: list[str] = []
        if self.latency_max_seconds > 0:
            low, high = self.latency_min_seconds, self.latency_max_seconds
            parts.append(f"latency {low:g} s" if low == high else f"latency {low:g}-{high:g} s")
        if self.error_rate > 0:
            parts.append(f"429/503 on {self.error_rate:.0%} of requests")
        return ", ".join([*parts, f"seed {self.seed}"]) if parts else "off"


def parse_latency(text: str | float) -> tuple[float, float]:
    """`0.2` → (0.2, 0.2); `0.1-0.5` → (0.1, 0.5). A ValueError names the accepted forms."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text), float(text)
    spelled = str(text).strip()
    low_text, dash, high_text = spelled.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if dash else low
    except ValueError:
        raise ValueError(
            f"latency {spelled!r} is neither SECONDS nor MIN-MAX (e.g. 0.2 or 0.05-0.3)"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"latency {spelled!r} must be finite seconds")
    return low, high


@dataclass(frozen=True, slots=True)
class Fault:
    """What chaos does to one request: wait `delay_seconds`, then answer `status` (None: pass it on)."""

    delay_seconds: float
    status: int | None


class ChaosInjector:
    """The faults of one app, in the order its requests arrive, and a count of what it did."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.refused = 0

    def next_fault(self) -> Fault:
        config = self.config
        with self._lock:
            # Always three draws, whatever they decide: the n-th request's fate depends on the seed
            # and n only, not on what earlier requests met.
            delay_draw, error_draw, status_draw = (self._random.random() for _ in range(3))
            refused = error_draw < config.error_rate
            self.requests += 1
            self.refused += refused
        low, high = config.latency_min_seconds, config.latency_max_seconds
        status = INJECTED_STATUSES[int(status_draw * len(INJECTED_STATUSES))] if refused else None
        return Fault(delay_seconds=low + (high - low) * delay_draw, status=status)


class ChaosMiddleware:
    """ASGI middleware that applies an injector's faults before the request reaches the app."""

    def __init__(self, app: ASGIApp, injector: ChaosInjector) -> None:
        self._app = app
        self._injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        fault = self._injector.next_fault()
        if fault.delay_seconds > 0:
            await asyncio.sleep(fault.delay_seconds)
        if fault.status is None:
            await self._app(scope, receive, send)
            return
        # The body is left unread, as a gateway that turns a request away does; the server
        # discards it.
        response = json_response(
            fault.status,
            error_body(fault.status, _MESSAGES[fault.status]),
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        await response(scope, receive, send)


def chaos_injector(config: ChaosConfig) -> ChaosInjector | None:
    """A fresh injector for one app (its own random sequence), or None when chaos is off."""
    return ChaosInjector(config) if config.enabled else None
