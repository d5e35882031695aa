"""One request and what came back, in a form every judge and every report understands.

Fuzzed cases (sent by Schemathesis with `requests`) and scenario requests (sent with httpx) both
become an :class:`Exchange`, so a check is written once and judges both.
"""

from __future__ import annotations

import gzip
import json
import reprlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn
from urllib.parse import urlsplit

_NOT_JSON = object()
# What an exchange keeps of its answer's body once it has been judged (and of an answer over the
# read cap at all): reports show only its beginning, and a run that judges thousands of large
# answers must not hold them all.
KEPT_BODY_BYTES = 64 * 1024
# Said in the report of every retry sent again after its answer was lost, and in its reproduction.
RESENT_NOTE = "re-sent after a lost answer; the first attempt may have taken effect"
# Deeper than any body of this API (a WorkflowExecution is three levels deep, a detailed execution
# with a user's input some more) and far below the interpreter's recursion limit, which every
# recursive reader of a parsed body (json itself, openapi-core, jsonschema, repr) shares.
MAX_JSON_DEPTH = 100
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels, too deep to judge"
# A server's values in a message: bounded in length and depth, whatever it sent.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 4, 80, 80, 40
_BRIEF.maxdict = _BRIEF.maxlist = 8


def brief(value: Any) -> str:
    """`repr(value)`, cut to a readable length (a server's strings, numbers and nesting have no bound)."""
    return _BRIEF.repr(value)


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _integer(digits: str) -> int | float:
    """A JSON integer; one longer than Python converts (4300 digits) as the float it rounds to (inf)."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _whole(text: str) -> str:
    """`text` with its lone surrogates (a JSON `\\ud800` escape with no pair) replaced by U+FFFD: they
    can be neither compared meaningfully nor written out as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _checked(value: Any, text: str) -> tuple[Any, str | None]:
    """`value` within MAX_JSON_DEPTH, its strings whole; walked without recursion."""
    escaped = "\\u" in text
    if not escaped and text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return value, None
    if isinstance(value, str):
        return _whole(value), None
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return _NOT_JSON, TOO_DEEP
        if isinstance(node, dict):
            if escaped and not all(key.isascii() for key in node):
                mended = {_whole(key): item for key, item in node.items()}
                node.clear()
                node.update(mended)
            items: Any = node.items()
        else:
            items = enumerate(node)
        for key, item in list(items):
            if isinstance(item, str):
                if escaped and not item.isascii():
                    node[key] = _whole(item)
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
    return value, None


def parse_json(data: bytes) -> tuple[Any, str | None]:
    """`data` as JSON and None, or `NOT_JSON` and why it is not JSON; total over any bytes.

    JSON as RFC 8259 has it: UTF-8 (a byte order mark is ignored), no NaN or Infinity; nesting beyond
    MAX_JSON_DEPTH is refused rather than judged. Duplicate names keep the last value, as most
    readers do.
    """
    if not data.strip():
        return _NOT_JSON, "empty body"
    if b"\x00" in data[:4]:
        # No JSON text starts with NUL in UTF-8; in UTF-16 or UTF-32 every ASCII character has one.
        return _NOT_JSON, "not UTF-8 (NUL bytes among the first four: UTF-16 or UTF-32)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return _NOT_JSON, f"not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start})"
    text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_integer)
    except RecursionError:
        return _NOT_JSON, TOO_DEEP
    except ValueError as error:
        return _NOT_JSON, f"invalid JSON ({str(error)[:120]})"
    return _checked(value, text)


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
    # Re-sent so, and a reading of the execution showed that a retry had taken effect: the answer is
    # that of a retry of an execution already retried, and what the retry did is judged from `before`
    # and `after` (SEM-*), whatever the status.
    first_attempt_took_effect: bool = False
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
    # The generated operation sequence it was sent in, when that sequence failed (`exploration`): its
    # JSON and readable steps, for the reproduction and `replay`.
    sequence: Mapping[str, Any] | None = None
    # The response body parsed (the body it was parsed from, the value, why it is not JSON): judges
    # ask for it many times, and the body may be large.
    _parsed: tuple[bytes, Any, str | None] | None = field(default=None, init=False, repr=False, compare=False)

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

    def _parse(self) -> tuple[Any, str | None]:
        parsed = self._parsed
        if parsed is None or parsed[0] is not self.response_body:
            parsed = self._parsed = (self.response_body, *parse_json(self.response_body))
        return parsed[1], parsed[2]

    def json(self) -> Any:
        """The response body as JSON, or `NOT_JSON` when it is not JSON (see `parse_json`)."""
        return self._parse()[0]

    def json_problem(self) -> str | None:
        """Why the response body is not JSON ("not UTF-8 ...", "empty body", ...); None when it is."""
        return self._parse()[1]

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
        return _NOT_JSON if content is None else parse_json(content)[0]


def is_json(value: Any) -> bool:
    return value is not _NOT_JSON


def nonce_in(body: Any) -> str | None:
    """The nonce where the API reads it (`authentication.nonce`), when it is a non-empty string."""
    authentication = body.get("authentication") if isinstance(body, dict) else None
    nonce = authentication.get("nonce") if isinstance(authentication, dict) else None
    return nonce if isinstance(nonce, str) and nonce else None
