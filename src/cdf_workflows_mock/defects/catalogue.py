"""The catalogue of defects: each one's name, what it does as its users would see it, the requirements
it breaks, and how it is made (the `PATCHES` of its family's module); and which of them combine.

The order of the catalogue is the order in which defects are listed, checked and composed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cdf_workflows_mock.defects import auth, responses, semantics, state, values, wire
from cdf_workflows_mock.defects.base import DefectiveDispatcher, Patch, SteppedHandlers, SteppedStore
from cdf_workflows_mock.engine import TaskEngine


@dataclass(frozen=True)
class Defect:
    name: str
    # One line: what the server does wrong, as its users would see it.
    description: str
    # The requirement IDs it violates, the one it is mainly about first.
    breaks: tuple[str, ...]


def _entry(name: str, breaks: str, description: str) -> Defect:
    return Defect(name, description, tuple(breaks.split()))


# fmt: off
_ENTRIES: tuple[Defect, ...] = (
    # name, the requirements it breaks (the main one first), what it does
    # AUTH-401
    _entry("auth-header-optional", "AUTH-401",
           "A retry without an Authorization header runs as a service identity with WRITE"),
    _entry("auth-any-bearer-token", "AUTH-401",
           "The retry accepts any bearer token string as a caller with WRITE"),
    _entry("auth-unknown-token-403", "AUTH-401",
           "An unknown bearer token on the retry is answered 403, not 401"),
    # AUTH-403
    _entry("readonly-can-retry", "AUTH-403", "The retry needs only workflowOrchestrationACL:READ"),
    _entry("project-scope-ignored", "AUTH-403",
           "The retry accepts a token for any project and looks the execution up in that project"),
    # PATH-UUID
    _entry("malformed-id-500", "PATH-UUID ROBUST",
           "A path id that is not a UUID crashes the UUID parser: 500"),
    _entry("id-truncated-to-36", "PATH-UUID RESP-ID",
           "Path ids are cut to 36 characters before the lookup: a 37-character id retries a real execution"),
    _entry("malformed-id-422", "PATH-UUID", "A path id that is not a UUID is answered 422"),
    # BODY-SHAPE
    _entry("empty-body-500", "BODY-SHAPE ROBUST",
           "A retry without a body (or with a JSON null or number) crashes the handler: 500"),
    _entry("body-array-500", "BODY-SHAPE ROBUST", "A JSON array as the body crashes the handler: 500"),
    _entry("body-errors-422", "BODY-SHAPE", "Every invalid retry body is answered 422 instead of 400"),
    _entry("nonce-empty-accepted", "BODY-SHAPE",
           "An empty-string nonce skips the session check and the retry proceeds"),
    _entry("nonce-non-string-accepted", "BODY-SHAPE",
           "A nonce that is not a string (number, object, null) skips the session check; the retry proceeds"),
    _entry("raw-utf8-misread", "BODY-SHAPE",
           "A body with raw non-ASCII UTF-8 is refused 400 as malformed JSON; with \\u escapes it is not"),
    # BODY-NONCE, NONCE-REUSE
    _entry("nonce-not-verified", "BODY-NONCE NONCE-REUSE",
           "Any well-formed nonce is accepted, never issued, used or expired alike; the retry proceeds"),
    _entry("nonce-reusable", "NONCE-REUSE", "The retry never marks its nonce used, so the nonce works again"),
    # METHOD
    _entry("method-any-accepted", "METHOD",
           "The retry route answers every method: GET, PUT, PATCH, DELETE... retry the execution"),
    _entry("method-405-without-allow", "METHOD", "A 405 on the retry path has no Allow header"),
    # STATE-404
    _entry("unknown-execution-400", "STATE-404",
           "A retry of an unknown execution is answered 400 without error.missing"),
    _entry("unknown-execution-500", "STATE-404 ROBUST",
           "A retry of an unknown execution crashes on the missing record: 500"),
    # STATE-RETRYABLE
    _entry("retry-running", "STATE-RETRYABLE SEM-CONCURRENT",
           "A RUNNING execution is retried (only COMPLETED is refused)"),
    _entry("retry-completed", "STATE-RETRYABLE",
           "A COMPLETED execution is retried (only RUNNING is refused)"),
    _entry("terminated-not-retryable", "STATE-RETRYABLE", "A TERMINATED execution is refused with 409"),
    _entry("timed-out-not-retryable", "STATE-RETRYABLE", "A TIMED_OUT execution is refused with 409"),
    _entry("gzip-body-refused", "STATE-RETRYABLE",
           "A gzipped body (Content-Encoding: gzip, what the Cognite SDK sends) is refused with 415"),
    _entry("charset-refused", "STATE-RETRYABLE",
           "Content-Type: application/json; charset=utf-8 is refused with 415 (the whole header must match)"),
    _entry("chunked-body-refused", "STATE-RETRYABLE",
           "A retry with a chunked body (Transfer-Encoding: chunked, no Content-Length) is refused with 411"),
    # ROBUST
    _entry("unicode-nonce-500", "ROBUST STATE-404",
           "A nonce with a non-ASCII character crashes the session lookup: 500"),
    _entry("malformed-json-drops-connection", "ROBUST BODY-SHAPE",
           "A body that is not valid JSON kills the answer after its headers: the connection drops"),
    _entry("long-nonce-500", "ROBUST BODY-NONCE",
           "A nonce longer than 4096 characters overflows the request log's column: 500"),
    _entry("long-path-id-500", "ROBUST PATH-UUID ERR-ENVELOPE",
           "A path id longer than 1024 characters crashes the tracing middleware: 500 with an HTML page"),
    _entry("nul-in-body-500", "ROBUST BODY-NONCE BODY-SHAPE",
           "A NUL character (\\u0000) in any string of the body fails the audit-log insert: 500"),
    _entry("extra-field-500", "ROBUST BODY-SHAPE",
           "An unknown field in the body (top level or in authentication) crashes the strict binder: 500"),
    _entry("errors-as-text", "ROBUST ERR-ENVELOPE",
           "4xx answers of the retry are plain-text status phrases such as 'Bad Request'"),
    # ERR-ENVELOPE, ERR-CODE
    _entry("error-envelope-flat", "ERR-ENVELOPE",
           'Errors of the retry are {"code", "message"} at the top level, not inside "error"'),
    _entry("error-message-missing", "ERR-ENVELOPE", "Errors of the retry have no error.message"),
    _entry("error-code-as-string", "ERR-ENVELOPE",
           'Errors of the retry carry error.code as a string ("404")'),
    _entry("error-code-always-400", "ERR-CODE",
           "Errors of the retry all say error.code 400, whatever the status"),
    # HDR-REQUEST-ID
    _entry("no-request-id-on-errors", "HDR-REQUEST-ID",
           "4xx and 5xx answers of every endpoint have no X-Request-ID header"),
    # RESP-200
    _entry("success-202", "RESP-200", "A successful retry answers 202 Accepted"),
    _entry("success-text-content-type", "RESP-200",
           "A successful retry answers its JSON with Content-Type text/plain"),
    # RESP-ID
    _entry("response-id-uppercase", "RESP-ID RESP-UNCHANGED",
           "The retry's answer spells its id in upper case"),
    _entry("response-id-without-dashes", "RESP-ID RESP-UNCHANGED",
           "The retry's answer gives its id as 32 hex digits without dashes"),
    # RESP-ENGINE-ID
    _entry("engine-id-truncated", "RESP-ENGINE-ID",
           "The retry's answer cuts engineExecutionId to 35 characters"),
    _entry("engine-id-missing", "RESP-ENGINE-ID RESP-200", "The retry's answer has no engineExecutionId"),
    _entry("engine-id-uuid1", "RESP-ENGINE-ID",
           "The retry gives the execution a new engineExecutionId, a time-based version-1 UUID"),
    # RESP-XID, RESP-VERSION
    _entry("xid-trailing-space", "RESP-XID RESP-UNCHANGED",
           "The retry's answer pads workflowExternalId with a trailing space"),
    _entry("version-as-number", "RESP-VERSION RESP-UNCHANGED",
           'The retry\'s answer renders a numeric-looking version as a JSON number ("1" -> 1)'),
    _entry("version-empty", "RESP-VERSION RESP-UNCHANGED", "The retry's answer has an empty version"),
    # RESP-STATUS
    _entry("status-lowercase", "RESP-STATUS", "The retry's answer spells the status in lower case (running)"),
    _entry("status-stale", "RESP-STATUS",
           "The retry answers with the execution as it was before the retry (status FAILED)"),
    # RESP-TIME
    _entry("time-as-string", "RESP-TIME RESP-UNCHANGED", "The retry's answer gives its times as strings"),
    _entry("time-as-float-seconds", "RESP-TIME RESP-UNCHANGED",
           "The retry's answer gives its times as float seconds, not integer milliseconds"),
    _entry("time-beyond-int64", "RESP-TIME",
           "The retry's answer gives startTime as 2**64-1, an unsigned 'not set' sentinel"),
    _entry("time-negative-sentinel", "RESP-TIME",
           "The retry's answer gives the cleared endTime as -1 instead of leaving it out"),
    # RESP-METADATA
    _entry("metadata-stamped", "RESP-METADATA RESP-UNCHANGED",
           "The retry adds retriedBy to the stored metadata: 10 pairs become 11"),
    _entry("metadata-as-pairs", "RESP-METADATA RESP-UNCHANGED",
           'The retry\'s answer gives metadata as a list of {"key", "value"} objects'),
    _entry("empty-metadata-omitted", "RESP-METADATA RESP-200 RESP-UNCHANGED",
           "The retry's answer leaves metadata out when it is empty (a serializer that omits empty values)"),
    # RESP-REASON
    _entry("reason-null", "RESP-REASON",
           "The retry's answer sends reasonForIncompletion: null instead of leaving it out"),
    # RESP-UNCHANGED
    _entry("created-time-reset", "RESP-UNCHANGED",
           "The retry sets the stored createdTime to the time of the retry"),
    _entry("metadata-cleared", "RESP-UNCHANGED", "The retry drops the stored metadata"),
    _entry("metadata-stamped-when-room", "RESP-UNCHANGED",
           "The retry adds retriedAt to the stored metadata when it has fewer than 10 pairs"),
    _entry("metadata-utf8-double-encoded", "RESP-UNCHANGED RESP-METADATA",
           "The retry's answer double-encodes non-ASCII metadata (UTF-8 read as latin-1): 'ü' becomes 'Ã¼'"),
    # RESP-UNCHANGED: values only some run requests hold
    _entry("metadata-keys-lowercased", "RESP-UNCHANGED",
           "The retry saves metadata through a case-insensitive map: keys come back lower-cased"),
    _entry("empty-metadata-value-null", "RESP-METADATA RESP-UNCHANGED",
           "The retry's answer gives an empty-string metadata value as null"),
    _entry("metadata-values-trimmed", "RESP-UNCHANGED",
           "The retry saves metadata values stripped of surrounding whitespace"),
    _entry("metadata-normalised-to-nfc", "RESP-UNCHANGED",
           "The retry saves metadata normalised to NFC: decomposed (NFD) text comes back composed"),
    _entry("astral-chars-replaced", "RESP-UNCHANGED",
           "The retry saves metadata in 3-byte UTF-8: emoji and other astral characters become U+FFFD"),
    _entry("metadata-cut-at-limit-in-bytes", "RESP-UNCHANGED",
           "The retry saves metadata values in a column sized in bytes: long non-ASCII values lose the end"),
    _entry("version-percent-encoded-in-answer", "RESP-UNCHANGED",
           "The retry's answer gives the version percent-encoded as in its URL: 'v 1/2' becomes 'v%201%2F2'"),
    _entry("workflow-id-plus-as-space", "RESP-UNCHANGED",
           "The retry's answer form-decodes the workflow's external id: '+' becomes a space"),
    # SEM-*
    _entry("retry-starts-nothing", "SEM-TARGETED SEM-NESTED SEM-LIMIT SEM-CONCURRENT",
           "The retry answers RUNNING but starts no task, so the execution fails again at once"),
    _entry("second-retry-starts-nothing", "SEM-TARGETED SEM-LIMIT SEM-NESTED",
           "Only an execution's first retry starts tasks; later ones leave it RUNNING with nothing running"),
    _entry("terminated-retry-starts-nothing", "SEM-TARGETED",
           "A TERMINATED execution's retry answers 200 RUNNING but starts no task; it stays RUNNING"),
    _entry("retry-ignores-canceled", "SEM-TARGETED SEM-NESTED",
           "Tasks whose latest attempt was CANCELED are not retried"),
    _entry("retry-ignores-timed-out", "SEM-TARGETED",
           "Tasks whose latest attempt TIMED_OUT are not retried"),
    _entry("timed-out-started-twice", "SEM-TARGETED",
           "A task that TIMED_OUT gets two new attempts from one retry (its queued automatic one is kept)"),
    _entry("retry-first-target-only", "SEM-TARGETED SEM-NESTED SEM-LIMIT",
           "Only the first failed task gets a new attempt"),
    _entry("optional-retried", "SEM-OPTIONAL SEM-TARGETED",
           "Optional tasks (onFailure: skipTask) that failed or were canceled are retried"),
    _entry("completed-rerun", "SEM-COMPLETED SEM-TARGETED SEM-NESTED",
           "Every task that ran gets a new attempt, the completed ones included"),
    _entry("container-retried", "SEM-NESTED",
           "A subworkflow or dynamic container gets a new attempt of its own, besides its failed tasks"),
    _entry("nested-skipped", "SEM-NESTED SEM-TARGETED",
           "Failed tasks inside subworkflows and dynamic tasks are not retried; the container stays as is"),
    _entry("limit-reset", "SEM-LIMIT",
           "The retry resets attempt counters: a failed new attempt is retried automatically again"),
    _entry("canceled-forgotten-after-retry", "SEM-TARGETED",
           "After a retry, a cancel, then another retry: the failed tasks are restarted, the cancelled "
           "ones are not"),
    _entry("limit-not-retried", "SEM-LIMIT SEM-TARGETED",
           "A task that failed after using all its attempts is not retried"),
    _entry("concurrent-double-retry", "SEM-CONCURRENT",
           "Simultaneous retries all succeed (check and slow write are not atomic) and each adds attempts"),
)
# fmt: on

CATALOGUE: tuple[Defect, ...] = _ENTRIES
BY_NAME: Mapping[str, Defect] = MappingProxyType({defect.name: defect for defect in CATALOGUE})
_ORDER: Mapping[str, int] = MappingProxyType({defect.name: index for index, defect in enumerate(CATALOGUE)})


def _patches() -> Mapping[str, Patch]:
    """Every family's patches, each defect's exactly once, and none the catalogue does not list."""
    patches: dict[str, Patch] = {}
    for family in (auth, wire, state, responses, semantics, values):
        for name, patch in family.PATCHES.items():
            if name in patches:
                raise RuntimeError(f"defect {name} is made in two families")
            patches[name] = patch
    if set(patches) != set(BY_NAME):
        raise RuntimeError(
            "the catalogue and the families' patches disagree on "
            f"{', '.join(sorted(set(patches) ^ set(BY_NAME)))}"
        )
    return MappingProxyType(patches)


PATCHES: Mapping[str, Patch] = _patches()

# The class each slot's variants derive from: what two variants share below it, they both change.
_SLOTS: tuple[tuple[str, type], ...] = (
    ("dispatcher", DefectiveDispatcher),
    ("handlers", SteppedHandlers),
    ("store", SteppedStore),
    ("engine", TaskEngine),
)


def _changed_names(variant: type, base: type) -> set[str]:
    return {
        name
        for klass in variant.__mro__
        if klass not in base.__mro__
        for name in vars(klass)
        if not name.startswith("__")
    }


def check_combination(names: Iterable[str]) -> None:
    """Raise ValueError for an unknown defect, or for two defects that change the same thing."""
    chosen = sorted(set(names), key=lambda name: (_ORDER.get(name, len(_ORDER)), name))
    unknown = [name for name in chosen if name not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown mock defect(s): {', '.join(unknown)}; valid names: {', '.join(BY_NAME)}")
    for slot, base in _SLOTS:
        variants = [(name, getattr(PATCHES[name], slot)) for name in chosen]
        present = [(name, variant) for name, variant in variants if variant is not None]
        for (first, one), (second, other) in itertools.combinations(present, 2):
            shared = _changed_names(one, base) & _changed_names(other, base)
            if shared:
                raise ValueError(
                    f"mock defects {first} and {second} both change {', '.join(sorted(shared))}; "
                    "switch on one of them at a time"
                )
