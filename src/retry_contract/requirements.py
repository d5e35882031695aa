"""The requirement catalogue: every ID the spec, the checks and the reports trace to.

Mirrors ``shared/reference/requirements.md``; a self-test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    MUST = "MUST"
    SHOULD = "SHOULD"


@dataclass(frozen=True, slots=True)
class Requirement:
    id: str
    level: Level
    summary: str

    @property
    def family(self) -> str:
        """The prefix that groups related requirements (AUTH, RESP, SEM, ...)."""
        return self.id.split("-", 1)[0]


_M, _S = Level.MUST, Level.SHOULD

CATALOGUE: tuple[Requirement, ...] = (
    Requirement("AUTH-401", _M, "No, non-Bearer or unknown token: 401 with the error envelope"),
    Requirement("AUTH-403", _M, "Token without WRITE or not valid for the project: 403, nothing changes"),
    Requirement(
        "PATH-UUID", _M, "executionId not a 36-char UUID: 400 or 404 with the envelope, never 2xx/5xx"
    ),
    Requirement("BODY-SHAPE", _M, "Missing/non-JSON/non-object body or bad authentication.nonce: 400"),
    Requirement("BODY-NONCE", _M, "A nonce the server never issued: 400/401/403 and nothing is retried"),
    Requirement("NONCE-REUSE", _S, "A used or expired nonce is rejected the same way"),
    Requirement(
        "METHOD",
        _M,
        "GET/PUT/PATCH/DELETE on the retry path: 404 or 405 (with Allow: POST), never 2xx/5xx, nothing "
        "retried; OPTIONS open, HEAD open but never retries",
    ),
    Requirement(
        "STATE-404",
        _M,
        "Well-formed id of no execution: 404 with the envelope (400 + error.missing tolerated)",
    ),
    Requirement(
        "STATE-RETRYABLE",
        _M,
        "Only FAILED/TIMED_OUT/TERMINATED retried; RUNNING/COMPLETED: 400/409, unchanged",
    ),
    Requirement(
        "ROBUST",
        _M,
        "No input produces a 5xx, a dropped connection or a non-JSON error body (413/414/431 allowed; "
        "their body is a SHOULD: front-end proxies answer them)",
    ),
    Requirement("RESP-200", _M, "A successful retry answers 200, application/json, a WorkflowExecution"),
    Requirement("RESP-ID", _M, "id: 36-char UUIDv4 equal to the path executionId"),
    Requirement("RESP-ENGINE-ID", _M, "engineExecutionId: 36-char UUIDv4"),
    Requirement("RESP-XID", _M, "workflowExternalId: 1-255 chars, no surrounding whitespace, no NUL"),
    Requirement("RESP-VERSION", _M, "version: optional, 1-255 chars, no surrounding whitespace, no NUL"),
    Requirement("RESP-STATUS", _M, "status: one of the five; RUNNING after a successful retry"),
    Requirement("RESP-TIME", _M, "createdTime/startTime/endTime: int64 ms >= 0, never string or float"),
    Requirement("RESP-METADATA", _M, "metadata: string map, <= 10 pairs, keys <= 32, values <= 255"),
    Requirement("RESP-REASON", _M, "reasonForIncompletion: optional string"),
    Requirement(
        "RESP-UNCHANGED", _M, "id, workflowExternalId, version, createdTime, metadata unchanged by the retry"
    ),
    Requirement(
        "ERR-ENVELOPE",
        _M,
        'Every 4xx/5xx body is {"error": {"code": int, "message": str}} as JSON (for 413/414/431 a SHOULD)',
    ),
    Requirement("ERR-CODE", _S, "error.code equals the HTTP status"),
    Requirement("HDR-REQUEST-ID", _S, "Every response carries X-Request-ID"),
    Requirement(
        "SEM-TARGETED",
        _M,
        "Exactly the tasks whose latest attempt ended unsuccessfully get one new attempt (SCHEDULED or "
        "IN_PROGRESS); tasks that never started may start once their dependencies complete",
    ),
    Requirement("SEM-OPTIONAL", _M, "Optional tasks (onFailure: skipTask) are not retried"),
    Requirement("SEM-COMPLETED", _M, "Completed tasks are not run again"),
    Requirement("SEM-NESTED", _M, "Only failed nested tasks are retried, never the container"),
    Requirement("SEM-LIMIT", _M, "A task at its retries limit gets exactly one more attempt, no reset"),
    Requirement(
        "SEM-CONCURRENT", _S, "Of simultaneous retries exactly one succeeds; one new attempt per task"
    ),
)

# IDs the catalogue once had, and why they went: a report or spec naming one is out of date.
RETIRED: dict[str, str] = {
    "RESP-TIME-ORDER": "a real recorded execution has startTime 86 ms before createdTime",
}

# Methods whose answer on the retry path the catalogue leaves open (METHOD): OPTIONS (a server that
# serves browsers answers CORS preflights with 2xx) and HEAD (open, save that it never retries).
OPEN_METHODS = frozenset({"OPTIONS", "HEAD"})

BY_ID: dict[str, Requirement] = {requirement.id: requirement for requirement in CATALOGUE}
