"""The replay record: one failing request as a report keeps it, and what `retry-contract replay` and
a person's script read back to send it again.

Every secret is a placeholder of its role (`$CDF_TOKEN`, `$CDF_READONLY_TOKEN`, `$NONCE`, ...). The
execution the run used was cancelled by cleanup (and an embedded mock is gone with its port), so the
record keeps the precondition: the state the execution was in, its workflow's task graph, and the task
updates that drove it there, in the order its attempts ended.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

from retry_contract import execution_view, request_forms
from retry_contract.domain import (
    RETRYABLE_TASK_STATUSES,
    TASK_RETRIES_DEFAULT,
    ExecutionStatus,
    OnFailure,
    TaskStatus,
    TaskType,
)
from retry_contract.exchange import Credential, Exchange, Expectation, brief, is_json, nonce_in
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
# What the unknown-token role sends: well-formed, and plainly issued by no identity provider. The
# run's own made-up token was random and is a registered secret; this one says what it is.
INVALID_TOKEN = "retry-contract-made-up-token-issued-by-no-one"
# The field of the answer of `POST /sessions` that holds the nonce.
NONCE_FIELD = "items[0].nonce"
# Headers a client library sets from the body or the connection: never part of a replay record.
_TRANSPORT_HEADERS = frozenset({"authorization", "content-length", "host", "connection", "transfer-encoding"})
# Longer URLs and bodies (the oversized-value probes) are cut in reports; the origin says what they held.
MAX_SHOWN_CHARACTERS = 2048
# Longer strings go into a replay record as a repeated unit when they are one (the oversized probes
# are), else cut: a report must stay readable, and a 1 MB id is 36 characters repeated.
MAX_RECORDED_CHARACTERS = 4096
_LONGEST_UNIT = 256
_REPEAT, _LENGTH, _TRUNCATED = "retry-contract:repeat", "retry-contract:length", "retry-contract:truncated"
RETRY_PATH = re.compile(
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


def repeated_unit(text: str, secrets: SecretRegistry) -> tuple[str, int] | None:
    """The unit and length of a long string `compact` records as a repetition, else None."""
    compacted = compact(text, secrets)
    if not isinstance(compacted, dict) or _REPEAT not in compacted:
        return None
    return str(compacted[_REPEAT]), int(compacted[_LENGTH])


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
    # The task graph of the workflow version (its definition's `tasks`, as the server showed them);
    # None when the reading had none.
    tasks: list[Any] | None = None
    # The task updates that drove the execution to its state, in the order its attempts ended.
    drive: tuple[TaskUpdate, ...] = ()

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
            tasks=_task_graph(reading),
            drive=driving_updates(reading),
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
            "tasks": self.tasks,
            "drive": [update.to_json() for update in self.drive],
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
            tasks=list(tasks) if isinstance(tasks := data.get("tasks"), list) else None,
            drive=tuple(TaskUpdate.from_json(update) for update in data.get("drive") or ()),
        )


# -- how the execution got to its state ----------------------------------------------------------

# The update a client sends to end an attempt the way the reading shows it ended (a task that skips
# on failure shows a reported failure as COMPLETED_WITH_ERRORS); other ends are consequences.
_UPDATE_FOR_END = {
    TaskStatus.COMPLETED: TaskStatus.COMPLETED,
    TaskStatus.FAILED: TaskStatus.FAILED,
    TaskStatus.COMPLETED_WITH_ERRORS: TaskStatus.FAILED,
    TaskStatus.FAILED_WITH_TERMINAL_ERROR: TaskStatus.FAILED_WITH_TERMINAL_ERROR,
}


@dataclass(frozen=True)
class TaskUpdate:
    """One `POST /workflows/tasks/{taskId}/update` on the running attempt of `task`."""

    task: str
    status: str
    # The update's output (the function's `response`), None when the attempt showed none.
    output: Mapping[str, Any] | None = None
    # The execution had failed before this attempt started: a retry came first.
    retry_first: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "status": self.status,
            "output": self.output,
            "retry_first": self.retry_first,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskUpdate:
        output = data.get("output")
        return cls(
            str(data["task"]),
            str(data["status"]),
            dict(output) if isinstance(output, Mapping) else None,
            bool(data.get("retry_first")),
        )


def _task_graph(reading: Mapping[str, Any]) -> list[Any] | None:
    definition = reading.get("workflowDefinition")
    tasks = definition.get("tasks") if isinstance(definition, Mapping) else None
    return list(tasks) if isinstance(tasks, list) else None


def _definitions(tasks: list[Any] | None) -> dict[str, Mapping[str, Any]]:
    """Every task definition by external id, those of subworkflows included."""
    found: dict[str, Mapping[str, Any]] = {}
    for task in tasks or ():
        if not isinstance(task, Mapping):
            continue
        found[str(task.get("externalId"))] = task
        parameters = task.get("parameters")
        nested = parameters.get("subworkflow") if isinstance(parameters, Mapping) else None
        if isinstance(nested, Mapping) and isinstance(nested.get("tasks"), list):
            found.update(_definitions(nested["tasks"]))
    return found


def _aborts(definition: Mapping[str, Any], failures: int) -> bool:
    """A reported FAILED that ends the execution: its last allowed attempt, on abortWorkflow."""
    retries = definition.get("retries")
    allowed = retries if isinstance(retries, int) else TASK_RETRIES_DEFAULT
    return (
        definition.get("onFailure", OnFailure.ABORT_WORKFLOW) == OnFailure.ABORT_WORKFLOW
        and failures > allowed
    )


def driving_updates(reading: Mapping[str, Any]) -> tuple[TaskUpdate, ...]:
    """The task updates that bring a new execution of the same version to the reading's state: each
    attempt of a function task that a client ended, in the order the attempts ended, with a retry
    before an attempt that started after the execution had failed (a pooled execution's history)."""
    definitions = _definitions(_task_graph(reading))
    ended = [
        attempt
        for attempt in execution_view.attempts(reading)
        if isinstance(attempt.get("endTime"), int)
        and execution_view.text_at(attempt, "status") in _UPDATE_FOR_END
        and execution_view.text_at(attempt, "taskType") in (None, TaskType.FUNCTION)
    ]
    ended.sort(key=lambda attempt: int(attempt["endTime"]))
    failures: Counter[str] = Counter()
    updates: list[TaskUpdate] = []
    failed_at: int | None = None
    for attempt in ended:
        task = str(attempt.get("externalId"))
        status = _UPDATE_FOR_END[TaskStatus(str(attempt["status"]))]
        started = attempt.get("startTime")
        retry_first = failed_at is not None and isinstance(started, int) and started >= failed_at
        if retry_first:
            failed_at = None
        output = attempt.get("output")
        response = output.get("response") if isinstance(output, Mapping) else None
        updates.append(
            TaskUpdate(task, status.value, {"response": response} if response else None, retry_first)
        )
        if status is TaskStatus.COMPLETED:
            continue
        failures[task] += 1
        if status is TaskStatus.FAILED_WITH_TERMINAL_ERROR or _aborts(
            definitions.get(task, {}), failures[task]
        ):
            failed_at = int(attempt["endTime"])
    return tuple(updates)


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
    # Where the target was: an embedded mock, an app served in-process, or a server at `base_url`;
    # the first two are gone with the run's process. A replay goes there by default.
    embedded_mock: bool = False
    base_url: str | None = None
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
            "base_url": self.base_url,
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


def issued(nonce: str | None, secrets: SecretRegistry) -> bool:
    """A session issued it: every nonce the suite obtains is registered as a secret as it arrives;
    a made-up one (never issued, oversized, odd) is not, and is shown as it was."""
    return nonce is not None and secrets.redact(nonce) == REPLACEMENT


def _nonce_use(exchange: Exchange, secrets: SecretRegistry) -> NonceUse | None:
    if not issued(nonce_in(exchange.request_json()), secrets):
        return None
    return NonceUse.SPENT if exchange.nonce_spent else NonceUse.FRESH


def with_placeholder_nonce(body: Any) -> Any:
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
    match = RETRY_PATH.match(parts.path)
    nonce = _nonce_use(exchange, secrets)
    body_kind, body = "none", None
    if exchange.request_body is not None:
        value = exchange.request_json()
        if is_json(value):
            body_kind, body = "json", with_placeholder_nonce(value) if nonce is not None else value
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
        authorization=header_value(exchange.request_headers, "authorization")
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


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def role_of(exchange: Exchange) -> Credential:
    """The exchange's credential role; a value this version does not know is shown literally."""
    try:
        return Credential(exchange.credential)
    except ValueError:
        return Credential.OTHER


def _sequence_shown(sequence: Mapping[str, Any] | None, secrets: SecretRegistry) -> dict[str, Any] | None:
    """The sequence as a report holds it: its readable steps may quote a server's answer, redacted."""
    if sequence is None:
        return None
    return {**sequence, "steps": [secrets.redact(str(step)) for step in sequence.get("steps", [])]}
