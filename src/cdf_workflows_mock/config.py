"""Configuration of the embedded mock: the project it serves, the tokens it knows, its clock, and
which faithful shape of server it takes (its profile).

Tokens are static strings mapped to grants, because the suite only needs to tell a write token,
a read-only token and a stranger apart; there is no identity provider behind the mock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from cdf_workflows_mock.cdf import (
    SESSIONS_CREATE,
    SESSIONS_DELETE,
    SESSIONS_LIST,
    WORKFLOW_READ,
    WORKFLOW_WRITE,
)
from cdf_workflows_mock.chaos import ChaosConfig
from cdf_workflows_mock.front_end import FrontEndLimits

DEFAULT_PROJECT = "contract-test"
# Documented tokens of the standalone mock (`serve_forever`, `retry-contract mock`): anyone on the
# machine may use them, which is fine for a loopback test double and why they are not secrets.
DEFAULT_WRITE_TOKEN = "mock-write-token"
DEFAULT_READONLY_TOKEN = "mock-readonly-token"
DEFAULT_NONCE_TTL_SECONDS = 3600.0
# Bounds of the mock's memory (see `MockConfig`): generous enough that no test run meets them.
DEFAULT_MAX_SESSIONS = 50_000
DEFAULT_MAX_FINISHED_EXECUTIONS = 10_000
# How long the served mock waits for a request to arrive in full, and keeps a quiet connection open.
DEFAULT_READ_TIMEOUT_SECONDS = 20.0
DEFAULT_IDLE_TIMEOUT_SECONDS = 5


class Profile(StrEnum):
    """A faithful shape of server the mock can take. Both are real; the suite must judge both alike.

    - `classic` (the default): an execution starts when it is created; a new task attempt is
      IN_PROGRESS at once; a container (subworkflow or dynamic) stays IN_PROGRESS until its nested
      tasks end, and fails with them; nested attempts carry `parentTaskExternalId`; `executedTasks`
      is in start order.
    - `recorded`: the shape of the execution recorded from a real CDF cluster
      (`shared/reference/upstream/recorded-workflow-execution.json`): the execution's `startTime` is
      86 ms before its `createdTime`; a new attempt (first, automatic or from a retry) is SCHEDULED,
      without `startTime`, for `schedule_delay_millis` (50 by default) on the mock's clock, and is
      IN_PROGRESS from the first look at the execution after that; a dynamic container's own attempt
      COMPLETES as soon as it has spawned its nested tasks, which run on and hold the container's
      dependants back until they are done; a nested task that fails for good fails the execution
      (FAILED or TIMED_OUT; in an optional container it turns the container's attempt
      COMPLETED_WITH_ERRORS instead, and the workflow goes on), and a retry gives the failed nested
      tasks a new attempt, the container none; nested attempts carry no `parentTaskExternalId`;
      `executedTasks` lists the top-level attempts first, then the nested ones. Subworkflow
      containers keep the classic shape.
    - `proxied`: the classic server behind a front-end proxy (`front_end.FrontEndLimits`) that
      refuses oversized requests itself with 413/414/431 and an HTML page of its own, without the
      error envelope or `X-Request-ID`, as deployments commonly have one.
    """

    CLASSIC = "classic"
    RECORDED = "recorded"
    PROXIED = "proxied"

    @classmethod
    def parse(cls, name: str) -> Profile:
        """The profile called `name`; a ValueError naming the known profiles otherwise."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(profile.value for profile in cls)
            raise ValueError(f"unknown mock profile {name!r}; known profiles: {known}") from None


@dataclass(frozen=True, slots=True)
class ServerShape:
    """The points where faithful servers differ, as the model, the engine and the renderer ask them.

    The defaults are the classic profile; `MockConfig.shape` gives the shape of a configuration.
    """

    # The execution's startTime is this many milliseconds before its createdTime.
    start_lead_millis: int = 0
    # A new task attempt is SCHEDULED this long before it starts; 0: it starts at once.
    schedule_delay_millis: int = 0
    # A dynamic container's own attempt COMPLETES once it has spawned its nested tasks.
    dynamic_completes_on_spawn: bool = False
    # Nested attempts name their container in `parentTaskExternalId`.
    names_parent: bool = True
    # `executedTasks` lists top-level attempts before nested ones (each group in start order).
    top_level_first: bool = False
    # A front-end proxy answers oversized requests before the API sees them; None: no front end.
    front_end: FrontEndLimits | None = None


# The recorded execution's startTime is 86 ms before its createdTime.
RECORDED_START_LEAD_MILLIS = 86
# Short, so that a real-time run barely waits, and long enough that a poller sees SCHEDULED.
DEFAULT_SCHEDULE_DELAY_MILLIS = 50

_SHAPES: Mapping[Profile, ServerShape] = MappingProxyType(
    {
        Profile.CLASSIC: ServerShape(),
        Profile.RECORDED: ServerShape(
            start_lead_millis=RECORDED_START_LEAD_MILLIS,
            schedule_delay_millis=DEFAULT_SCHEDULE_DELAY_MILLIS,
            dynamic_completes_on_spawn=True,
            names_parent=False,
            top_level_first=True,
        ),
        Profile.PROXIED: ServerShape(front_end=FrontEndLimits()),
    }
)


def epoch_millis() -> int:
    """The real time as the API states it: integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a bearer token may do: capabilities (`cdf.WORKFLOW_READ`, ...) on some projects."""

    capabilities: frozenset[str]
    projects: frozenset[str]


def _grants(project: str, write_token: str, readonly_token: str) -> dict[str, TokenGrant]:
    if not write_token or not readonly_token:
        raise ValueError("mock tokens must be non-empty strings")
    if write_token == readonly_token:
        raise ValueError("the write token and the read-only token must differ")
    projects = frozenset({project})
    return {
        write_token: TokenGrant(
            frozenset({WORKFLOW_READ, WORKFLOW_WRITE, SESSIONS_CREATE, SESSIONS_LIST, SESSIONS_DELETE}),
            projects,
        ),
        readonly_token: TokenGrant(frozenset({WORKFLOW_READ, SESSIONS_CREATE, SESSIONS_LIST}), projects),
    }


@dataclass(frozen=True, slots=True)
class MockConfig:
    """How one mock instance behaves.

    `tokens` left empty means the two documented default tokens, granted on `project`.
    `clock` returns epoch milliseconds; tests replace it to expire nonces, time out tasks or start
    SCHEDULED ones without waiting. `defects` names deliberate server bugs to switch on
    (`cdf_workflows_mock.defects.CATALOGUE`), for checking that a test suite catches them; empty means
    the faithful mock. The names are checked when the mock is built (`cdf_workflows_mock.create_app`,
    `EmbeddedMock`), or before by `cdf_workflows_mock.defects.check_combination`: the configuration
    cannot know the catalogue, which builds on the app and so on this module.
    `profile` is the faithful shape of server to take (`Profile`, or its name); `schedule_delay_millis`,
    when given, replaces the profile's time that a new task attempt stays SCHEDULED (0: never).
    `chaos` switches on latency and transient 429/503 answers in front of the mock (`chaos.py`);
    off by default.

    The mock's memory is bounded, so a long-running mock does not grow without end:
    - A session is kept until its nonce expires (`nonce_ttl_seconds`), and at most `max_sessions`
      sessions are kept; beyond that the oldest are forgotten. A nonce carries its issue time and is
      sealed with the store's key, so a forgotten nonce is still refused exactly as before: an expired
      one as expired, one of a session forgotten before it expired as already used (the answer of a
      reused nonce, so a nonce is never accepted twice; an unused nonce that old is refused too).
    - At most `max_finished_executions` finished executions (COMPLETED, FAILED, TIMED_OUT,
      TERMINATED) are kept; beyond that the one that finished longest ago is forgotten, with its task
      attempts, and then answers 404 like an execution that never existed (a retried execution
      counts from when it finished last). RUNNING executions are never forgotten.
    `read_timeout_seconds` and `idle_timeout_seconds` bound connections when the mock is served
    (`EmbeddedMock`, `serve_forever`): a request must arrive in full, head and body, within
    `read_timeout_seconds` of the connection opening or of its first byte (else 408 with the error
    envelope, or a plain close when nothing arrived), and a kept-alive connection quiet for
    `idle_timeout_seconds` (whole seconds, uvicorn's `timeout_keep_alive`) is closed
    (`cdf_workflows_mock.read_deadlines`).
    """

    project: str = DEFAULT_PROJECT
    tokens: Mapping[str, TokenGrant] = field(default_factory=dict)
    nonce_ttl_seconds: float = DEFAULT_NONCE_TTL_SECONDS
    clock: Callable[[], int] = epoch_millis
    defects: frozenset[str] = frozenset()
    profile: Profile = Profile.CLASSIC
    schedule_delay_millis: int | None = None
    chaos: ChaosConfig = field(default_factory=ChaosConfig)
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_finished_executions: int = DEFAULT_MAX_FINISHED_EXECUTIONS
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS
    idle_timeout_seconds: int = DEFAULT_IDLE_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.project:
            raise ValueError("the mock's project must be a non-empty string")
        if self.nonce_ttl_seconds <= 0:
            raise ValueError("nonce_ttl_seconds must be positive")
        tokens = dict(self.tokens) or _grants(self.project, DEFAULT_WRITE_TOKEN, DEFAULT_READONLY_TOKEN)
        if any(not token for token in tokens):
            raise ValueError("mock tokens must be non-empty strings")
        # Frozen all the way down: the app reads the grants from several threads.
        object.__setattr__(self, "tokens", MappingProxyType(tokens))
        # A plain name is accepted too: it is what a command line or a settings file holds.
        object.__setattr__(self, "profile", Profile.parse(self.profile))
        delay = self.schedule_delay_millis
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int) or delay < 0):
            raise ValueError("schedule_delay_millis must be a non-negative integer (milliseconds) or None")
        if isinstance(self.defects, str):
            raise ValueError("defects must be a collection of defect names, not one string")
        if not isinstance(self.chaos, ChaosConfig):
            raise ValueError("chaos must be a ChaosConfig (see cdf_workflows_mock.chaos)")
        for name in ("max_sessions", "max_finished_executions", "idle_timeout_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        timeout = self.read_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            raise ValueError("read_timeout_seconds must be a positive, finite number of seconds")
        object.__setattr__(self, "defects", frozenset(self.defects))

    @classmethod
    def with_tokens(
        cls,
        project: str = DEFAULT_PROJECT,
        write_token: str = DEFAULT_WRITE_TOKEN,
        readonly_token: str = DEFAULT_READONLY_TOKEN,
        *,
        nonce_ttl_seconds: float = DEFAULT_NONCE_TTL_SECONDS,
        clock: Callable[[], int] = epoch_millis,
        defects: Iterable[str] = (),
        profile: str = Profile.CLASSIC,
        schedule_delay_millis: int | None = None,
        chaos: ChaosConfig | None = None,
    ) -> MockConfig:
        """A write token (READ, WRITE; sessions CREATE, LIST, DELETE) and a read-only one (READ;
        sessions CREATE, LIST).

        `profile` is a `Profile` or its name (a ValueError names the known ones).
        """
        if isinstance(defects, str):
            raise ValueError("defects must be a collection of defect names, not one string")
        return cls(
            project=project,
            tokens=_grants(project, write_token, readonly_token),
            nonce_ttl_seconds=nonce_ttl_seconds,
            clock=clock,
            defects=frozenset(defects),
            profile=Profile.parse(profile),
            schedule_delay_millis=schedule_delay_millis,
            chaos=chaos if chaos is not None else ChaosConfig(),
        )

    @property
    def nonce_ttl_millis(self) -> int:
        return int(self.nonce_ttl_seconds * 1000)

    @property
    def shape(self) -> ServerShape:
        """How the server of this configuration's profile behaves where faithful servers differ."""
        shape = _SHAPES[self.profile]
        if self.schedule_delay_millis is None:
            return shape
        return replace(shape, schedule_delay_millis=self.schedule_delay_millis)
