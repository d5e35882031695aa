"""Configuration of the embedded mock: the project it serves, the tokens it knows, its clock, and
which faithful shape of server it takes (its profile).

Tokens are static strings mapped to grants, because the suite only needs to tell a write token,
a read-only token and a stranger apart; there is no identity provider behind the mock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from retry_contract.domain import SESSIONS_CREATE, WORKFLOW_READ, WORKFLOW_WRITE

DEFAULT_PROJECT = "contract-test"
# Documented tokens of the standalone mock (`retry-contract mock`): anyone on the machine may use
# them, which is fine for a loopback test double and why they are not secrets.
DEFAULT_WRITE_TOKEN = "mock-write-token"
DEFAULT_READONLY_TOKEN = "mock-readonly-token"
DEFAULT_NONCE_TTL_SECONDS = 3600.0


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
    """

    CLASSIC = "classic"
    RECORDED = "recorded"

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
    }
)


def epoch_millis() -> int:
    """The real time as the API states it: integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a bearer token may do: capabilities (`domain.WORKFLOW_READ`, ...) on some projects."""

    capabilities: frozenset[str]
    projects: frozenset[str]


def _grants(project: str, write_token: str, readonly_token: str) -> dict[str, TokenGrant]:
    if not write_token or not readonly_token:
        raise ValueError("mock tokens must be non-empty strings")
    if write_token == readonly_token:
        raise ValueError("the write token and the read-only token must differ")
    projects = frozenset({project})
    return {
        write_token: TokenGrant(frozenset({WORKFLOW_READ, WORKFLOW_WRITE, SESSIONS_CREATE}), projects),
        readonly_token: TokenGrant(frozenset({WORKFLOW_READ, SESSIONS_CREATE}), projects),
    }


@dataclass(frozen=True, slots=True)
class MockConfig:
    """How one mock instance behaves.

    `tokens` left empty means the two documented default tokens, granted on `project`.
    `clock` returns epoch milliseconds; tests replace it to expire nonces, time out tasks or start
    SCHEDULED ones without waiting. `defects` names deliberate server bugs to switch on
    (`defects.CATALOGUE`), for checking that the suite catches them; empty means the faithful mock.
    `profile` is the faithful shape of server to take (`Profile`, or its name); `schedule_delay_millis`,
    when given, replaces the profile's time that a new task attempt stays SCHEDULED (0: never).
    """

    project: str = DEFAULT_PROJECT
    tokens: Mapping[str, TokenGrant] = field(default_factory=dict)
    nonce_ttl_seconds: float = DEFAULT_NONCE_TTL_SECONDS
    clock: Callable[[], int] = epoch_millis
    defects: frozenset[str] = frozenset()
    profile: Profile = Profile.CLASSIC
    schedule_delay_millis: int | None = None

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
        object.__setattr__(self, "defects", frozenset(self.defects))
        if self.defects:
            from retry_contract.mock.defects import check_combination  # it imports this module

            check_combination(self.defects)

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
    ) -> MockConfig:
        """A write token (READ, WRITE, sessions CREATE) and a read-only one (READ, sessions CREATE).

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
