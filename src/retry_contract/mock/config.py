"""Configuration of the embedded mock: the project it serves, the tokens it knows, its clock.

Tokens are static strings mapped to grants, because the suite only needs to tell a write token,
a read-only token and a stranger apart; there is no identity provider behind the mock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from retry_contract.domain import SESSIONS_CREATE, WORKFLOW_READ, WORKFLOW_WRITE

DEFAULT_PROJECT = "contract-test"
# Documented tokens of the standalone mock (`retry-contract mock`): anyone on the machine may use
# them, which is fine for a loopback test double and why they are not secrets.
DEFAULT_WRITE_TOKEN = "mock-write-token"
DEFAULT_READONLY_TOKEN = "mock-readonly-token"
DEFAULT_NONCE_TTL_SECONDS = 3600.0


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
    `clock` returns epoch milliseconds; tests replace it to expire nonces or time out tasks
    without waiting. `defects` names deliberate server bugs to switch on (`defects.CATALOGUE`),
    for checking that the suite catches them; empty means the faithful mock.
    """

    project: str = DEFAULT_PROJECT
    tokens: Mapping[str, TokenGrant] = field(default_factory=dict)
    nonce_ttl_seconds: float = DEFAULT_NONCE_TTL_SECONDS
    clock: Callable[[], int] = epoch_millis
    defects: frozenset[str] = frozenset()

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
    ) -> MockConfig:
        """A write token (READ, WRITE, sessions CREATE) and a read-only one (READ, sessions CREATE)."""
        if isinstance(defects, str):
            raise ValueError("defects must be a collection of defect names, not one string")
        return cls(
            project=project,
            tokens=_grants(project, write_token, readonly_token),
            nonce_ttl_seconds=nonce_ttl_seconds,
            clock=clock,
            defects=frozenset(defects),
        )

    @property
    def nonce_ttl_millis(self) -> int:
        return int(self.nonce_ttl_seconds * 1000)
