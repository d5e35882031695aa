"""What a person needs to see a failure again, and what `retry-contract replay` sends again.

A failing exchange becomes a curl command anyone can paste, with every secret replaced by the
placeholder of its role (`$CDF_TOKEN`, `$CDF_READONLY_TOKEN`, `$NONCE`, ...), the session request that
yields a fresh nonce, the state the execution must be in, and a machine-readable :class:`ReplayRecord`.
The execution the run used was cancelled by cleanup (and an embedded mock is gone with its port), so
sending the same request again would prove nothing: the precondition is what makes it reproducible.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from retry_contract import execution_view, request_forms
from retry_contract.domain import RETRYABLE_TASK_STATUSES, ExecutionStatus
from retry_contract.exchange import (
    RESENT_NOTE,
    Credential,
    Exchange,
    Expectation,
    brief,
    is_json,
    nonce_in,
)
from retry_contract.fixture_values import SUITE_WORKFLOW
from retry_contract.request_forms import RequestForm
from retry_contract.secrets_registry import REPLACEMENT, SecretRegistry, head

# Shown instead of the real values: the reader supplies their own credentials and a fresh nonce.
TOKEN_PLACEHOLDER = "$CDF_TOKEN"
READONLY_TOKEN_PLACEHOLDER = "$CDF_READONLY_TOKEN"
NONCE_PLACEHOLDER = "$NONCE"
EXECUTION_VARIABLE = "EXECUTION_ID"
# Braced: a derived id may go on with a letter or a digit right after it ("${EXECUTION_ID}0").
EXECUTION_PLACEHOLDER = "${" + EXECUTION_VARIABLE + "}"
CLIENT_ID_PLACEHOLDER = "$CDF_CLIENT_ID"
CLIENT_SECRET_PLACEHOLDER = "$CDF_CLIENT_SECRET"
_PLACEHOLDERS = (
    TOKEN_PLACEHOLDER,
    READONLY_TOKEN_PLACEHOLDER,
    NONCE_PLACEHOLDER,
    EXECUTION_PLACEHOLDER,
    CLIENT_ID_PLACEHOLDER,
    CLIENT_SECRET_PLACEHOLDER,
)
_UNESCAPE_PLACEHOLDER = re.compile(
    r"\\\$("
    + "|".join(
        re.escape(p[1:]) if p.endswith("}") else re.escape(p[1:]) + r"(?![A-Za-z0-9_])" for p in _PLACEHOLDERS
    )
    + ")"
)
# What the unknown-token role sends: well-formed, and plainly issued by no identity provider. The
# run's own made-up token was random and is a registered secret; this one says what it is.
INVALID_TOKEN = "retry-contract-made-up-token-issued-by-no-one"
# The field of the answer of `POST /sessions` that holds the nonce.
NONCE_FIELD = "items[0].nonce"
_SKIPPED_HEADERS = frozenset(
    {"content-length", "host", "user-agent", "accept-encoding", "connection", "accept"}
)
# Headers a client library sets from the body or the connection: never part of a replay record.
_TRANSPORT_HEADERS = frozenset({"authorization", "content-length", "host", "connection", "transfer-encoding"})
# Longer URLs and bodies (the oversized-value probes) are cut in reports; the origin says what they held.
MAX_SHOWN_CHARACTERS = 2048
# Longer strings go into a replay record as a repeated unit when they are one (the oversized probes
# are), else cut: a report must stay readable, and a 1 MB id is 36 characters repeated.
MAX_RECORDED_CHARACTERS = 4096
_LONGEST_UNIT = 256
_REPEAT, _LENGTH, _TRUNCATED = "retry-contract:repeat", "retry-contract:length", "retry-contract:truncated"
_RETRY_PATH = re.compile(
    r"^(?P<prefix>.*?)/api/v1/projects/(?P<project>[^/]+)/workflows/executions/(?P<id>.*)/retry$"
)
_FIXTURES = {
    "simple": "the suite's fixture of one asynchronous function task",
    "shapes": "the suite's fixture of every task shape",
    "timeout": "the suite's fixture whose task times out after a second",
}


def abbreviated(text: str, secrets: SecretRegistry, limit: int = MAX_SHOWN_CHARACTERS) -> str:
    """`text` redacted, and when longer than `limit` cut there (never through a secret), saying so."""
    return secrets.cut(text, limit, f"...({len(text)} characters in all)")


def request_form_named(name: str) -> RequestForm | None:
    """The RequestForm of that name (`request_forms`), None for one the suite does not own (e.g.
    "schemathesis": the body went out as the fuzzer encoded it)."""
    forms = (value for value in vars(request_forms).values() if isinstance(value, RequestForm))
    return next((form for form in forms if form.name == name), None)


# -- long strings in records ---------------------------------------------------------------------


def compact(text: str, secrets: SecretRegistry) -> str | dict[str, Any]:
    """`text`, or for a long one a repeated unit and a length (what `expand` reads back); a long
    string that is no repetition is kept cut, and cannot be replayed."""
    if len(text) <= MAX_RECORDED_CHARACTERS:
        return text
    for period in range(1, _LONGEST_UNIT + 1):
        if text[period:] == text[:-period]:
            return {_REPEAT: text[:period], _LENGTH: len(text)}
    return {_TRUNCATED: abbreviated(text, secrets), _LENGTH: len(text)}


def expand(value: Any) -> Any:
    """The inverse of `compact`, applied through JSON values; ValueError for a cut string."""
    if isinstance(value, dict):
        if set(value) == {_REPEAT, _LENGTH}:
            unit, length = value[_REPEAT], value[_LENGTH]
            if not isinstance(unit, str) or not unit or not isinstance(length, int):
                raise ValueError(f"malformed repeated string {value!r:.80}")
            return (unit * (length // len(unit) + 1))[:length]
        if set(value) == {_TRUNCATED, _LENGTH}:
            raise ValueError(f"a string of {value[_LENGTH]} characters was cut in the report")
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand(item) for item in value]
    return value


def _compact_json(value: Any, secrets: SecretRegistry) -> Any:
    if isinstance(value, str):
        return compact(value, secrets)
    if isinstance(value, dict):
        return {key: _compact_json(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_compact_json(item, secrets) for item in value]
    return value


# -- the state the execution must be in ----------------------------------------------------------


@dataclass(frozen=True)
class Precondition:
    """The state of the execution the path named, when the request went out."""

    # None: the run knew no execution by the path's id (an unknown or malformed id).
    status: str | None = None
    workflow_external_id: str | None = None
    version: str | None = None
    # The purpose of the suite's fixture workflow (simple, shapes, timeout); None: not the suite's.
    fixture: str | None = None
    metadata: Mapping[str, Any] | None = None
    workflow_input: Any = None
    # Tasks whose latest attempt ended so that a retry must run them again, with that status.
    rerun_tasks: tuple[tuple[str, str], ...] = ()
    # The path's id is the execution's with these around it (a malformed id made from a real one,
    # which a server that cuts or normalises ids may still find); empty when it is the id itself.
    id_prefix: str = ""
    id_suffix: str = ""

    @classmethod
    def of(cls, exchange: Exchange) -> Precondition:
        reading = exchange.before if exchange.before is not None else exchange.reading
        if reading is None:
            return cls()
        workflow = reading.get("workflowExternalId")
        match = SUITE_WORKFLOW.match(workflow) if isinstance(workflow, str) else None
        metadata = reading.get("metadata")
        known, path_id = reading.get("id"), exchange.execution_id
        prefix = suffix = ""
        if isinstance(known, str) and known and path_id is not None and known != path_id and known in path_id:
            prefix, _, suffix = path_id.partition(known)
        return cls(
            id_prefix=prefix,
            id_suffix=suffix,
            status=_shown(execution_view.text_at(reading, "status")) or brief(reading.get("status")),
            workflow_external_id=_shown(workflow if isinstance(workflow, str) else None),
            version=_shown(version) if isinstance(version := reading.get("version"), str) else None,
            fixture=match.group("purpose") if match else None,
            metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
            workflow_input=reading.get("input"),
            rerun_tasks=tuple(
                (brief(name) if len(name) > _LONGEST_UNIT else name, status)
                for name, attempt in execution_view.latest(reading).items()
                if (status := execution_view.text_at(attempt, "status")) in RETRYABLE_TASK_STATUSES
            ),
        )

    @property
    def exists(self) -> bool:
        return self.status is not None

    def describe(self) -> str:
        if not self.exists:
            return "no execution has the id in the path (an id the project never had)"
        kind = _FIXTURES.get(self.fixture or "") or (
            f"the suite's {self.fixture} fixture" if self.fixture else "not created by the suite"
        )
        version = f" version {self.version!r}" if self.version is not None else ""
        text = (
            f"an execution of workflow {self.workflow_external_id}{version} ({kind}) in status {self.status}"
        )
        if self.status == ExecutionStatus.RUNNING:
            text += ", an attempt still in progress"
        if self.rerun_tasks:
            tasks = ", ".join(f"{name} ({status})" for name, status in self.rerun_tasks)
            text += f", whose tasks a retry must run again are: {tasks}"
        if self.metadata:
            non_ascii = any(not str(item).isascii() for pair in self.metadata.items() for item in pair)
            text += f"; run with {len(self.metadata)} metadata pairs" + (", non-ASCII" if non_ascii else "")
        if self.workflow_input is not None:
            text += "; run with an input"
        if self.id_prefix or self.id_suffix:
            text += "; the path's id is its id" + (f" after {self.id_prefix!r}" if self.id_prefix else "")
            text += f" followed by {self.id_suffix!r}" if self.id_suffix else ""
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "status": self.status,
            "workflow_external_id": self.workflow_external_id,
            "version": self.version,
            "fixture": self.fixture,
            "metadata": self.metadata,
            "input": self.workflow_input,
            "rerun_tasks": [{"task": name, "status": status} for name, status in self.rerun_tasks],
            "id_prefix": self.id_prefix,
            "id_suffix": self.id_suffix,
            "description": self.describe(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Precondition:
        status = data.get("status")
        metadata = data.get("metadata")
        return cls(
            status=str(status) if status is not None else None,
            workflow_external_id=data.get("workflow_external_id"),
            version=data.get("version"),
            fixture=data.get("fixture"),
            metadata=dict(metadata) if isinstance(metadata, Mapping) else None,
            workflow_input=data.get("input"),
            rerun_tasks=tuple((str(t["task"]), str(t["status"])) for t in data.get("rerun_tasks", [])),
            id_prefix=str(data.get("id_prefix") or ""),
            id_suffix=str(data.get("id_suffix") or ""),
        )


def _shown(text: str | None) -> str | None:
    """A server's string as a precondition shows it: one far longer than any status or name is cut."""
    if text is None or len(text) <= _LONGEST_UNIT:
        return text
    # No registry here: cut where no secret can be cut short (the whole one is redacted on output).
    kept = head(text.encode("utf-8", "surrogatepass"), _LONGEST_UNIT).decode("utf-8", "ignore")
    return f"{kept}...({len(text)} characters in all)"


# -- the machine-readable record -----------------------------------------------------------------


class NonceUse(StrEnum):
    """How the body's nonce came to be, when a session issued it (a literal one stays in the body)."""

    # A nonce of a new session, used for the first time.
    FRESH = "fresh"
    # A session's nonce already accepted by an earlier request: spend a fresh one once, then send.
    SPENT = "spent"


@dataclass(frozen=True)
class RunFacts:
    """What a reproduction needs to know of the run that sent the request."""

    project: str
    seed: int
    # Where the target was: an embedded mock, an app served in-process, or a server at a URL; the
    # first two are gone with the run's process.
    embedded_mock: bool = False
    app: str | None = None
    mock_defects: tuple[str, ...] = ()
    mock_profile: str = "classic"
    fuzz: bool = True
    max_examples: int | None = None
    function_external_id: str | None = None
    # The item of `POST /sessions` for the write credentials, with placeholders for their secrets.
    session_item: Mapping[str, Any] = field(default_factory=lambda: {"tokenExchange": True})
    # The write credentials are OAuth2 client credentials (a token comes from CDF_TOKEN_URL).
    client_credentials: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "seed": self.seed,
            "embedded_mock": self.embedded_mock,
            "app": self.app,
            "mock_defects": list(self.mock_defects),
            "mock_profile": self.mock_profile,
            "function_external_id": self.function_external_id,
        }


def session_item_shown(item: Mapping[str, Any]) -> dict[str, Any]:
    """A session request item with the client credentials' values replaced by placeholders."""
    placeholders = {"clientId": CLIENT_ID_PLACEHOLDER, "clientSecret": CLIENT_SECRET_PLACEHOLDER}
    return {key: placeholders.get(key, value) for key, value in item.items()}


@dataclass(frozen=True)
class ReplayRecord:
    """One failing request as `retry-contract replay` sends it again (see `to_json` for the format)."""

    failure: int
    requirement: str
    # Which judge found the failure ("scenario": one that compares several requests).
    judge: str
    method: str
    # As sent (percent-encoded), cut when long; `project` and `execution_id` are what it named.
    path: str
    project: str | None
    execution_id: str | None
    request_form: str
    credential: str
    # The Authorization header itself, for the role "other" only (another scheme, a bare "Bearer").
    authorization: str | None
    headers: Mapping[str, str]
    # "json" (`body` is the value), "text" (`body` is the text as the server read it) or "none".
    body_kind: str
    body: Any
    nonce: NonceUse | None
    expectation: Expectation | None
    precondition: Precondition
    run: Mapping[str, Any]
    # The generated operation sequence the request was sent in (`exploration.sequence_record`), when
    # the failure was found by one: replay runs the whole sequence again.
    sequence: Mapping[str, Any] | None = None

    def body_with_nonce(self, nonce: str) -> Any:
        """The body to send, with `nonce` where the record holds the placeholder."""
        if self.body_kind != "json" or self.nonce is None or not isinstance(self.body, dict):
            return self.body
        authentication = self.body.get("authentication")
        if not isinstance(authentication, dict):
            return self.body
        return {**self.body, "authentication": {**authentication, "nonce": nonce}}

    def to_json(self, secrets: SecretRegistry) -> dict[str, Any]:
        """The record as a report holds it; a long string is cut (by `secrets`, never through one)."""
        return {
            "failure": self.failure,
            "requirement": self.requirement,
            "judge": self.judge,
            "method": self.method,
            "path": self.path,
            "project": self.project,
            "execution_id": compact(self.execution_id, secrets) if self.execution_id is not None else None,
            "request_form": self.request_form,
            "credential": self.credential,
            "authorization": self.authorization,
            "headers": dict(self.headers),
            "body_kind": self.body_kind,
            "body": _compact_json(self.body, secrets),
            "nonce": self.nonce.value if self.nonce is not None else None,
            "expectation": None
            if self.expectation is None
            else {
                "requirement": self.expectation.requirement,
                "statuses": sorted(self.expectation.statuses),
                "note": self.expectation.note,
            },
            "precondition": self.precondition.to_json(),
            "run": dict(self.run),
            "sequence": _sequence_shown(self.sequence, secrets),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReplayRecord:
        """The record `to_json` wrote; ValueError when it is not one (or holds a string cut short)."""
        try:
            expected = data["expectation"]
            nonce = data["nonce"]
            execution_id = expand(data["execution_id"])
            return cls(
                failure=int(data["failure"]),
                requirement=str(data["requirement"]),
                judge=str(data.get("judge") or ""),
                method=str(data["method"]),
                path=str(data["path"]),
                project=data["project"],
                execution_id=str(execution_id) if execution_id is not None else None,
                request_form=str(data["request_form"]),
                credential=Credential(data["credential"]).value,
                authorization=data["authorization"],
                headers={str(k): str(v) for k, v in dict(data["headers"]).items()},
                body_kind=str(data["body_kind"]),
                body=expand(data["body"]),
                nonce=NonceUse(nonce) if nonce is not None else None,
                expectation=None
                if expected is None
                else Expectation(
                    str(expected["requirement"]),
                    frozenset(int(s) for s in expected["statuses"]),
                    str(expected.get("note", "")),
                ),
                precondition=Precondition.from_json(data["precondition"]),
                run=dict(data.get("run") or {}),
                sequence=dict(data["sequence"]) if data.get("sequence") is not None else None,
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a replay record ({type(error).__name__}: {error})") from None


def _sequence_shown(sequence: Mapping[str, Any] | None, secrets: SecretRegistry) -> dict[str, Any] | None:
    """The sequence as a report holds it: its readable steps may quote a server's answer, redacted."""
    if sequence is None:
        return None
    return {**sequence, "steps": [secrets.redact(str(step)) for step in sequence.get("steps", [])]}


def _issued(nonce: str | None, secrets: SecretRegistry) -> bool:
    """A session issued it: every nonce the suite obtains is registered as a secret as it arrives;
    a made-up one (never issued, oversized, odd) is not, and is shown as it was."""
    return nonce is not None and secrets.redact(nonce) == REPLACEMENT


def _nonce_use(exchange: Exchange, secrets: SecretRegistry) -> NonceUse | None:
    if not _issued(nonce_in(exchange.request_json()), secrets):
        return None
    return NonceUse.SPENT if exchange.nonce_spent else NonceUse.FRESH


def _with_placeholder_nonce(body: Any) -> Any:
    return {**body, "authentication": {**body["authentication"], "nonce": NONCE_PLACEHOLDER}}


def record(
    exchange: Exchange,
    requirement: str,
    failure: int,
    facts: RunFacts,
    secrets: SecretRegistry,
    judge: str = "",
) -> ReplayRecord:
    """The replay record of a failing exchange (its secrets are placeholders; redact its JSON all the
    same, as everything that leaves the process)."""
    parts = urlsplit(exchange.url)
    match = _RETRY_PATH.match(parts.path)
    nonce = _nonce_use(exchange, secrets)
    body_kind, body = "none", None
    if exchange.request_body is not None:
        value = exchange.request_json()
        if is_json(value):
            body_kind, body = "json", _with_placeholder_nonce(value) if nonce is not None else value
        else:
            body_kind, body = "text", (exchange.request_content() or b"").decode("utf-8", "replace")
    return ReplayRecord(
        failure=failure,
        requirement=requirement,
        judge=judge,
        method=exchange.method,
        path=abbreviated(parts.path + (f"?{parts.query}" if parts.query else ""), secrets),
        project=unquote(match.group("project")) if match else None,
        execution_id=unquote(match.group("id")) if match else None,
        request_form=exchange.request_form,
        credential=role_of(exchange).value,
        authorization=_header(exchange.request_headers, "authorization")
        if role_of(exchange) is Credential.OTHER
        else None,
        headers={
            name.lower(): value
            for name, value in exchange.request_headers.items()
            if name.lower() not in _TRANSPORT_HEADERS
        },
        body_kind=body_kind,
        body=body,
        nonce=nonce,
        expectation=exchange.expectation,
        precondition=Precondition.of(exchange),
        run=facts.to_json(),
        sequence=exchange.sequence,
    )


# -- what a person reads -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reproduction:
    """A failure's reproduction: the request's curl, the precondition, and every step in order."""

    curl: str
    precondition: str
    steps: tuple[str, ...]
    record: ReplayRecord


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def role_of(exchange: Exchange) -> Credential:
    """The exchange's credential role; a value this version does not know is shown literally."""
    try:
        return Credential(exchange.credential)
    except ValueError:
        return Credential.OTHER


def authorization_shown(exchange: Exchange) -> str | None:
    """The Authorization header as a reader sends it: the placeholder of its credential's role."""
    header = _header(exchange.request_headers, "authorization")
    if header is None:
        return None
    shown = {
        Credential.WRITE: f"Bearer {TOKEN_PLACEHOLDER}",
        Credential.READONLY: f"Bearer {READONLY_TOKEN_PLACEHOLDER}",
        Credential.UNKNOWN_TOKEN: f"Bearer {INVALID_TOKEN}",
    }
    return shown.get(role_of(exchange), header)


def curl(exchange: Exchange, secrets: SecretRegistry, *, execution_placeholder: bool = False) -> str:
    """The request as a curl command; with `execution_placeholder`, the path's execution id is
    `$EXECUTION_ID` (the reader recreates an execution in the precondition's state)."""
    url = exchange.url
    if execution_placeholder:
        parts = urlsplit(url)
        match = _RETRY_PATH.match(parts.path)
        if match:
            # An id made from the execution's (a character added) keeps what was added around it.
            precondition = Precondition.of(exchange)
            segment = (
                quote(precondition.id_prefix, safe="")
                + EXECUTION_PLACEHOLDER
                + quote(precondition.id_suffix, safe="")
            )
            path = parts.path[: match.start("id")] + segment + parts.path[match.end("id") :]
            url = parts._replace(path=path).geturl()
    command = ["curl", "-i", "-X", exchange.method, _quote(abbreviated(url, secrets))]
    for name, value in exchange.request_headers.items():
        if name.lower() in _SKIPPED_HEADERS:
            continue
        if name.lower() == "authorization":
            value = authorization_shown(exchange) or value
        command += ["-H", _quote(f"{name}: {value}")]
    if exchange.request_body is None:
        return secrets.redact(" ".join(command))
    body = abbreviated(_body_text(exchange, secrets), secrets)
    if not exchange.request_gzipped:
        return secrets.redact(" ".join([*command, "--data-binary", _quote(body)]))
    # The body went out gzipped: compress it the same way on the reader's side.
    piped = f"printf '%s' {_quote(body)} | gzip -c | {' '.join([*command, '--data-binary', '@-'])}"
    return secrets.redact(piped)


def _body_text(exchange: Exchange, secrets: SecretRegistry) -> str:
    """The body as the server read it; an issued nonce becomes `$NONCE`, in the same wire form."""
    body = exchange.request_json()
    if _issued(nonce_in(body), secrets):
        form = request_form_named(exchange.request_form)
        dumps = form.dumps if form is not None else json.dumps
        return dumps(_with_placeholder_nonce(body))
    content = exchange.request_content()
    return content.decode("utf-8", "replace") if content else ""


def _quote(text: str) -> str:
    # Double quotes keep the placeholders expandable; everything else is escaped for the shell.
    if not any(placeholder in text for placeholder in _PLACEHOLDERS):
        return shlex.quote(text)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return '"' + _UNESCAPE_PLACEHOLDER.sub(r"$\1", escaped) + '"'


def session_curl(exchange: Exchange, facts: RunFacts) -> str:
    """The request that creates a session of the write credentials, and exports its nonce."""
    parts = urlsplit(exchange.url)
    match = _RETRY_PATH.match(parts.path)
    prefix = match.group("prefix") if match else ""
    url = f"{parts.scheme}://{parts.netloc}{prefix}/api/v1/projects/{quote(facts.project, safe='')}/sessions"
    body = json.dumps({"items": [session_item_shown(facts.session_item)]})
    command = " ".join(
        [
            "curl -s -X POST",
            _quote(url),
            "-H",
            _quote(f"Authorization: Bearer {TOKEN_PLACEHOLDER}"),
            "-H",
            _quote("Content-Type: application/json"),
            "--data-binary",
            _quote(body),
        ]
    )
    return f"export NONCE=\"$({command} | jq -r '.{NONCE_FIELD}')\""


def _credential_step(role: Credential, facts: RunFacts) -> str:
    if role is Credential.READONLY:
        return (
            f"Credential: {READONLY_TOKEN_PLACEHOLDER}, a valid token for project {facts.project} "
            "without workflowOrchestrationACL:WRITE."
        )
    if role is Credential.UNKNOWN_TOKEN:
        return "Credential: a made-up bearer token that no identity provider issued (as shown)."
    if role is Credential.NONE:
        return "Credential: none; the request has no Authorization header."
    if role is Credential.OTHER:
        return "Credential: the Authorization header exactly as shown."
    where = (
        " (with client credentials: an access token fetched from $CDF_TOKEN_URL with grant_type "
        "client_credentials)"
        if facts.client_credentials
        else ""
    )
    return (
        f"Credential: {TOKEN_PLACEHOLDER}, a token of the main credentials with "
        f"workflowOrchestrationACL:READ+WRITE in project {facts.project}{where}."
    )


def _rerun_note(failure: int, facts: RunFacts) -> str | None:
    """Where the target was gone with the run's process: how to get it back."""
    if facts.embedded_mock:
        options = [f"--seed {facts.seed}"]
        options += [f"--mock-defect {name}" for name in facts.mock_defects]
        options += [f"--mock-profile {facts.mock_profile}"] if facts.mock_profile != "classic" else []
        options += ["--no-fuzz"] if not facts.fuzz else []
        options += [f"--max-examples {facts.max_examples}"] if facts.max_examples else []
        defects = "".join(f" --mock-defect {name}" for name in facts.mock_defects)
        return (
            "The target was the run's embedded mock; its port is gone with it. See it again with "
            f"`retry-contract run {' '.join(options)}` or "
            f"`retry-contract replay <JSON report> --failure {failure}{defects}`."
        )
    if facts.app is not None:
        return (
            f"The target was {facts.app} served in-process on a port gone with the run. See it again with "
            f"`retry-contract run --app {facts.app} --project {facts.project} --seed {facts.seed}`."
        )
    return None


def _execution_of(exchange: Exchange) -> str | None:
    """The id of the execution whose state the precondition describes."""
    reading = exchange.before if exchange.before is not None else exchange.reading
    known = reading.get("id") if reading is not None else None
    return known if isinstance(known, str) else exchange.execution_id


def _long_id_command(execution_id: str | None, secrets: SecretRegistry) -> str | None:
    """A shell line that exports a long, repetitive path id (percent-encoded), or None."""
    compacted = compact(execution_id, secrets) if execution_id is not None else None
    if not isinstance(compacted, dict) or _REPEAT not in compacted:
        return None
    unit, length = compacted[_REPEAT], compacted[_LENGTH]
    program = (
        "import urllib.parse; "
        f"print(urllib.parse.quote(({unit!r} * {length // len(unit) + 1})[:{length}], safe=''), end='')"
    )
    return f'export {EXECUTION_VARIABLE}="$(python3 -c {shlex.quote(program)})"'


def reproduce(
    exchange: Exchange,
    requirement: str,
    failure: int,
    facts: RunFacts,
    secrets: SecretRegistry,
    judge: str = "",
) -> Reproduction:
    """Everything a person needs to see `exchange`'s failure of `requirement` (found by `judge`)
    again, redacted."""
    replay = record(exchange, requirement, failure, facts, secrets, judge)
    precondition = replay.precondition
    if replay.sequence is not None:
        return _reproduce_sequence(exchange, replay, failure, facts, secrets)
    steps = [f"Precondition: {precondition.describe()}."]
    long_id = _long_id_command(replay.execution_id, secrets) if not precondition.exists else None
    if precondition.exists:
        steps.append(
            f"Create such an execution through the API and `export {EXECUTION_VARIABLE}=<its id>` "
            f"(the run used {_execution_of(exchange)}, since cancelled by its cleanup)."
        )
    elif long_id is not None:
        steps.append(f"The path's id is too long to show: {long_id}")
    if replay.nonce is not None:
        steps.append(
            f"Nonce: create a session of the same write credentials; the nonce is {NONCE_FIELD} of "
            f"its answer: {session_curl(exchange, facts)}"
        )
    if replay.nonce is NonceUse.SPENT:
        steps.append(
            "Spend that nonce once first: a retry of another execution in status FAILED with it, "
            "answered 200; the request below uses it again."
        )
    if exchange.maybe_replayed:
        steps.append(
            f"The run's request was {RESENT_NOTE}"
            + (
                "; a reading showed it had. Retry the execution once first (answered 200): the request "
                "below met it already retried."
                if exchange.first_attempt_took_effect
                else "."
            )
        )
    steps.append(_credential_step(role_of(exchange), facts))
    command = curl(exchange, secrets, execution_placeholder=precondition.exists or long_id is not None)
    steps.append(f"Send: {command}")
    if exchange.expectation is not None:
        statuses = ", ".join(str(s) for s in sorted(exchange.expectation.statuses))
        note = f" ({exchange.expectation.note})" if exchange.expectation.note else ""
        steps.append(f"Expected: {exchange.expectation.requirement}: status {statuses}{note}.")
    if (rerun := _rerun_note(failure, facts)) is not None:
        steps.append(rerun)
    return Reproduction(
        curl=command,
        precondition=secrets.redact(precondition.describe()),
        steps=tuple(secrets.redact(step) for step in steps),
        record=replay,
    )


def _reproduce_sequence(
    exchange: Exchange, replay: ReplayRecord, failure: int, facts: RunFacts, secrets: SecretRegistry
) -> Reproduction:
    """A failure found by a generated sequence: the sequence, shrunk, step by step; then the request."""
    sequence = replay.sequence or {}
    shrunk_from = sequence.get("shrunk_from_steps")
    steps = [
        f"Generated operation sequence (seed {sequence.get('seed')}"
        + (f", shrunk from {shrunk_from} steps" if shrunk_from else "")
        + "): create a workflow version of this task graph, run it, then apply the steps in order "
        f"(`retry-contract replay <JSON report> --failure {failure}` does all of it):",
        *(f"  {step}" for step in sequence.get("steps", [])),
    ]
    command = curl(exchange, secrets, execution_placeholder=True)
    steps.append(f"The failing request, {exchange.origin}: {command}")
    if exchange.expectation is not None:
        statuses = ", ".join(str(s) for s in sorted(exchange.expectation.statuses))
        steps.append(f"Expected: {exchange.expectation.requirement}: status {statuses}.")
    if (rerun := _rerun_note(failure, facts)) is not None:
        steps.append(rerun)
    return Reproduction(
        curl=command,
        precondition=secrets.redact(replay.precondition.describe()),
        steps=tuple(secrets.redact(step) for step in steps),
        record=replay,
    )
