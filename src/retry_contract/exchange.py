"""One request and what came back, in a form every judge and every report understands.

Fuzzed cases (sent by Schemathesis with `requests`) and scenario requests (sent with httpx) both
become an :class:`Exchange`, so a check is written once and judges both.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

_NOT_JSON = object()
# What an exchange keeps of its answer's body once it has been judged (and of an answer over the
# read cap at all): reports show only its beginning, and a run that judges thousands of large
# answers must not hold them all.
KEPT_BODY_BYTES = 64 * 1024


class Credential(StrEnum):
    """Which credential role authorised a request: what a person re-sending it has to use.

    The role, never the secret, is what reports and replays carry; the secret comes back from the
    environment (or, for the invalid ones, is made up again) when the request is re-sent.
    """

    # CDF_TOKEN or the client credentials: the main credentials of the run.
    WRITE = "write"
    # CDF_READONLY_TOKEN: valid, but without workflowOrchestrationACL:WRITE.
    READONLY = "readonly"
    # A well-formed bearer token no identity provider ever issued.
    UNKNOWN_TOKEN = "unknown-token"
    # No Authorization header at all.
    NONE = "none"
    # An Authorization header sent literally (another scheme, a bare "Bearer", a fuzzed value).
    OTHER = "other"


def credential_of(authorization: str | None, write_headers: Collection[str]) -> Credential:
    """The role of a request that carried `authorization`, given the run's `Bearer <write token>` headers."""
    if authorization is None:
        return Credential.NONE
    return Credential.WRITE if authorization in write_headers else Credential.OTHER


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a request was built to provoke: the requirement that governs its status code."""

    requirement: str
    statuses: frozenset[int]
    note: str = ""


@dataclass(slots=True)
class Exchange:
    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes | None
    # None when no response arrived (connection dropped, timeout): see `transport_error`.
    status: int | None
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    elapsed_ms: float = 0.0
    origin: str = ""
    transport_error: str | None = None
    expectation: Expectation | None = None
    # The execution id of the path, when the request targets the retry endpoint.
    execution_id: str | None = None
    # Detailed execution read before the request, for requirements about what a retry changes.
    before: Mapping[str, Any] | None = None
    # The same execution read once a successful retry had taken effect: what the retry did (SEM-*).
    after: Mapping[str, Any] | None = None
    # How many times the request was sent before this answer (faults are retried).
    attempts: int = 1
    # The connection broke after the request was sent (the server's doing when it persists).
    connection_broken: bool = False
    # The request went out in full and no answer came in time (a read timeout): a fault, but the server
    # may have acted on it, so a re-sent request is not held to the original expectation either.
    answer_timed_out: bool = False
    # Re-sent after a broken connection: the first attempt may have taken effect on the server.
    maybe_replayed: bool = False
    # The cap in bytes when the answer's body (raw or decoded) was larger: `response_body` then holds
    # only the beginning of what was read up to it; the rest was never read.
    body_over_cap: int | None = None
    # Set when the final answer is a fault of the network or infrastructure, not a judgeable response.
    fault: str | None = None
    # The name of the RequestForm the body went out in (request_forms); fuzzed ones: "schemathesis".
    request_form: str = "plain"
    # Which credential role authorised the request: a `Credential` value (its secret is never kept).
    credential: str = Credential.WRITE
    # The latest detailed reading of the path's execution the client had taken when the request went
    # out (None: it knew no execution by that id): the state a reproduction has to recreate.
    reading: Mapping[str, Any] | None = None
    # The body's nonce had already been accepted (2xx) by an earlier request: a reproduction must spend
    # a fresh nonce once before sending this.
    nonce_spent: bool = False

    def header(self, name: str) -> str | None:
        """A response header, looked up case-insensitively."""
        wanted = name.lower()
        for key, value in self.response_headers.items():
            if key.lower() == wanted:
                return value
        return None

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def json(self) -> Any:
        """The response body as JSON, or `NOT_JSON` when it is not valid JSON."""
        try:
            return json.loads(self.response_body)
        except (ValueError, UnicodeDecodeError):
            return _NOT_JSON

    @property
    def request_gzipped(self) -> bool:
        return any(
            k.lower() == "content-encoding" and v.strip().lower() == "gzip"
            for k, v in self.request_headers.items()
        )

    def request_content(self) -> bytes | None:
        """The request body as the server reads it: decompressed when it was sent gzipped."""
        if self.request_body is None or not self.request_gzipped:
            return self.request_body
        try:
            return gzip.decompress(self.request_body)
        except (OSError, EOFError):
            return self.request_body

    def request_json(self) -> Any:
        content = self.request_content()
        if content is None:
            return _NOT_JSON
        try:
            return json.loads(content)
        except (ValueError, UnicodeDecodeError):
            return _NOT_JSON


def is_json(value: Any) -> bool:
    return value is not _NOT_JSON


def nonce_in(body: Any) -> str | None:
    """The nonce where the API reads it (`authentication.nonce`), when it is a non-empty string."""
    authentication = body.get("authentication") if isinstance(body, dict) else None
    nonce = authentication.get("nonce") if isinstance(authentication, dict) else None
    return nonce if isinstance(nonce, str) and nonce else None
