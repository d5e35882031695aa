"""Turning decoded JSON request bodies into checked values, or an `InvalidRequest` saying why not.

Fuzzers send anything, so every function here accepts `object` and checks types itself; a
message names the field and what was expected, so a 400 tells the caller what to fix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdf_workflows_mock.cdf import (
    IDENTIFIER_MAX_LENGTH,
    METADATA_LIMITS,
    TASK_RETRIES_DEFAULT,
    TASK_RETRIES_MAX,
    TASK_TIMEOUT_DEFAULT_SECONDS,
    UPDATABLE_TASK_STATUSES,
    ExecutionStatus,
    OnFailure,
    TaskStatus,
    TaskType,
)
from cdf_workflows_mock.errors import InvalidRequest
from cdf_workflows_mock.model import Execution, JSONObject, TaskDef, WorkflowDefinition
from cdf_workflows_mock.paging import DEFAULT_LIMIT, MAX_LIMIT, PageRequest

# Documented limits of the neighbouring endpoints.
INPUT_MAX_BYTES = 100 * 1024
CANCEL_REASON_MAX_LENGTH = 500
DESCRIPTION_MAX_LENGTH = 500
# The mock's own limits, so that no definition makes it slow or recurse deeply.
MAX_TASKS_PER_DEFINITION = 500
MAX_DEPENDENCIES_PER_DEFINITION = 2000
MAX_CONTAINER_DEPTH = 5
TIMEOUT_MAX_SECONDS = 2**31 - 1
MAX_DELETE_ITEMS = 100
# `workflowFilters` of the version and execution lists: at most 100 (Cognite's OpenAPI document).
MAX_WORKFLOW_FILTERS = 100
# Session ids per `sessions/byids` request (the document's `SessionReferenceIds`).
MAX_SESSION_IDS = 1000
# The largest id a JSON number carries exactly (`CogniteInternalId`).
MAX_INTERNAL_ID = 2**53 - 1
# Epoch milliseconds are int64.
MAX_EPOCH_MILLIS = 2**63 - 1
# What `GET /sessions?status=` accepts (the document lists them lower-case; the SDK sends upper-case).
SESSION_LIST_STATUSES = frozenset({"READY", "ACTIVE", "CANCELLED", "REVOKED", "ACCESS_LOST"})

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
REFERENCE_RE = re.compile(r"\$\{([^{}]+)\}")

_PARAMETER_KEYS: Mapping[TaskType, str] = {
    TaskType.FUNCTION: "function",
    TaskType.TRANSFORMATION: "transformation",
    TaskType.CDF: "cdfRequest",
    TaskType.DYNAMIC: "dynamic",
    TaskType.SUBWORKFLOW: "subworkflow",
    TaskType.SIMULATION: "simulation",
}
# Fields a task type's parameters cannot do without (the SDK's loaders index them).
_REQUIRED_PARAMETER_STRINGS: Mapping[TaskType, tuple[str, ...]] = {
    TaskType.FUNCTION: ("externalId",),
    TaskType.TRANSFORMATION: ("externalId",),
    TaskType.CDF: ("resourcePath", "method"),
    TaskType.SIMULATION: ("routineExternalId",),
}


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def show(value: object, limit: int = 60) -> str:
    """A value quoted for a message, cut short so a huge input does not make a huge answer."""
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expect_object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be a JSON object, got {json_type(value)}")
    return value


def _expect_string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be a string, got {json_type(value)}")
    return value


def _optional_string(
    obj: Mapping[str, Any], key: str, where: str, max_length: int | None = None
) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    text = _expect_string(value, f"{where}.{key}")
    if max_length is not None and len(text) > max_length:
        raise InvalidRequest(
            f"{where}.{key} is {len(text)} characters long; at most {max_length} are allowed"
        )
    return text


def _optional_int(obj: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{where}.{key} must be an integer, got {json_type(value)}")
    if not low <= value <= high:
        raise InvalidRequest(f"{where}.{key} must be between {low} and {high}, got {show(value)}")
    return value


def _required_int(obj: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = _optional_int(obj, key, where, low, high)
    if value is None:
        raise InvalidRequest(f"{where}.{key} is required")
    return value


def identifier_problem(value: str) -> str | None:
    """Why a string is not a valid workflow or version identifier, or None when it is."""
    if not value:
        return "must not be empty"
    if len(value) > IDENTIFIER_MAX_LENGTH:
        return f"is {len(value)} characters long; at most {IDENTIFIER_MAX_LENGTH} are allowed"
    if value != value.strip():
        return "must not start or end with whitespace"
    if "\x00" in value:
        return "must not contain a NUL character"
    return None


def parse_identifier(value: object, where: str) -> str:
    text = _expect_string(value, where)
    problem = identifier_problem(text)
    if problem is not None:
        raise InvalidRequest(f"{where} {problem}")
    return text


def parse_uuid(value: str, where: str) -> str:
    """A path id: a 36-character UUID (any version, any case), returned as given."""
    if len(value) != 36 or _UUID_RE.fullmatch(value) is None:
        raise InvalidRequest(f"{where} must be a 36-character UUID, got {show(value)}")
    return value


def _single_item(body: object, where: str) -> dict[str, Any]:
    obj = expect_object(body, "The request body")
    items = obj.get("items")
    if not isinstance(items, list):
        raise InvalidRequest(f"The request body must have an 'items' array, got {json_type(items)}")
    if len(items) != 1:
        raise InvalidRequest(f"'items' must hold exactly one {where}, got {len(items)}")
    return expect_object(items[0], "items[0]")


# --- sessions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRequest:
    session_type: str
    # Listed sessions name the client they were created for; the secret is never kept.
    client_id: str | None = None


def parse_session_request(body: object) -> SessionRequest:
    """The session a `POST /sessions` body asks for."""
    item = _single_item(body, "session")
    if item.get("tokenExchange") is True:
        return SessionRequest("TOKEN_EXCHANGE")
    if item.get("oneshotTokenExchange") is True:
        return SessionRequest("ONESHOT_TOKEN_EXCHANGE")
    client_id, client_secret = item.get("clientId"), item.get("clientSecret")
    if isinstance(client_id, str) and client_id and isinstance(client_secret, str) and client_secret:
        return SessionRequest("CLIENT_CREDENTIALS", client_id)
    raise InvalidRequest(
        "items[0] must be {'tokenExchange': true} or {'clientId': <string>, 'clientSecret': <string>}"
    )


def parse_session_status(values: Sequence[str]) -> str | None:
    """The `status` query parameter of `GET /sessions`, upper-cased; None when absent."""
    raw = _single_param(values, "status")
    if raw is None:
        return None
    if raw.upper() not in SESSION_LIST_STATUSES:
        names = ", ".join(sorted(status.lower() for status in SESSION_LIST_STATUSES))
        raise InvalidRequest(f"The query parameter 'status' must be one of {names}, got {show(raw)}")
    return raw.upper()


def parse_session_ids(body: object, max_items: int | None = MAX_SESSION_IDS) -> tuple[int, ...]:
    """The ids of `{"items": [{"id": <int>}, ...]}` (`sessions/byids`, `sessions/revoke`), once each."""
    obj = expect_object(body, "The request body")
    items = obj.get("items")
    if not isinstance(items, list) or not items:
        raise InvalidRequest("The request body must have a non-empty 'items' array of {'id': <integer>}")
    if max_items is not None and len(items) > max_items:
        raise InvalidRequest(f"'items' holds {len(items)} entries; at most {max_items} are allowed")
    ids = [
        _required_int(expect_object(item, f"items[{i}]"), "id", f"items[{i}]", 1, MAX_INTERNAL_ID)
        for i, item in enumerate(items)
    ]
    return tuple(dict.fromkeys(ids))


# --- executions -----------------------------------------------------------------------------------


def parse_nonce(body: object) -> str:
    """`authentication.nonce` of a run or retry body (BODY-SHAPE)."""
    obj = expect_object(body, "The request body")
    if "authentication" not in obj:
        raise InvalidRequest("The request body must have an 'authentication' object holding a 'nonce'")
    authentication = expect_object(obj["authentication"], "'authentication'")
    if "nonce" not in authentication:
        raise InvalidRequest("'authentication.nonce' is required: create one with POST /sessions")
    nonce = authentication["nonce"]
    if not isinstance(nonce, str):
        raise InvalidRequest(f"'authentication.nonce' must be a string, got {json_type(nonce)}")
    if not nonce:
        raise InvalidRequest("'authentication.nonce' must not be empty")
    return nonce


def parse_metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    metadata = expect_object(value, "'metadata'")
    limits = METADATA_LIMITS
    if len(metadata) > limits.max_pairs:
        raise InvalidRequest(f"'metadata' has {len(metadata)} pairs; at most {limits.max_pairs} are allowed")
    for key, item in metadata.items():
        if len(key) > limits.max_key_length:
            raise InvalidRequest(
                f"'metadata' key {show(key)} is {len(key)} characters long; "
                f"at most {limits.max_key_length} are allowed"
            )
        if not isinstance(item, str):
            raise InvalidRequest(f"'metadata' value of {show(key)} must be a string, got {json_type(item)}")
        if len(item) > limits.max_value_length:
            raise InvalidRequest(
                f"'metadata' value of {show(key)} is {len(item)} characters long; "
                f"at most {limits.max_value_length} are allowed"
            )
    return dict(metadata)


@dataclass(frozen=True, slots=True)
class RunRequest:
    nonce: str
    input: JSONObject | None
    metadata: dict[str, str]


def parse_run_request(body: object) -> RunRequest:
    nonce = parse_nonce(body)
    obj = expect_object(body, "The request body")
    run_input = obj.get("input")
    if run_input is not None:
        run_input = expect_object(run_input, "'input'")
        size = len(json.dumps(run_input).encode())
        if size > INPUT_MAX_BYTES:
            raise InvalidRequest(f"'input' is {size} bytes of JSON; at most {INPUT_MAX_BYTES} are allowed")
    return RunRequest(nonce=nonce, input=run_input, metadata=parse_metadata(obj.get("metadata")))


def parse_cancel_reason(body: object | None) -> str | None:
    if body is None:
        return None
    obj = expect_object(body, "The request body")
    return _optional_string(obj, "reason", "The request body", CANCEL_REASON_MAX_LENGTH)


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    status: TaskStatus
    output: JSONObject | None


def parse_task_update(body: object) -> TaskUpdate:
    obj = expect_object(body, "The request body")
    status = obj.get("status")
    allowed = sorted(UPDATABLE_TASK_STATUSES)
    if not isinstance(status, str) or status not in {s.value for s in UPDATABLE_TASK_STATUSES}:
        raise InvalidRequest(f"'status' must be one of {', '.join(allowed)}, got {show(status)}")
    output = obj.get("output")
    if output is not None:
        output = expect_object(output, "'output'")
        size = len(json.dumps(output).encode())
        if size > INPUT_MAX_BYTES:
            raise InvalidRequest(f"'output' is {size} bytes of JSON; at most {INPUT_MAX_BYTES} are allowed")
    return TaskUpdate(status=TaskStatus(status), output=output)


# --- workflows and versions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowUpsert:
    external_id: str
    description: str | None
    data_set_id: int | None
    max_concurrent_executions: int | None


def parse_workflow_upsert(body: object) -> WorkflowUpsert:
    item = _single_item(body, "workflow")
    return WorkflowUpsert(
        external_id=parse_identifier(item.get("externalId"), "items[0].externalId"),
        description=_optional_string(item, "description", "items[0]", DESCRIPTION_MAX_LENGTH),
        data_set_id=_optional_int(item, "dataSetId", "items[0]", 1, 2**53),
        max_concurrent_executions=_optional_int(item, "maxConcurrentExecutions", "items[0]", 1, 2**31 - 1),
    )


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    external_ids: tuple[str, ...]
    ignore_unknown_ids: bool


def parse_workflow_delete(body: object, ignore_unknown_query: Sequence[str]) -> DeleteRequest:
    obj = expect_object(body, "The request body")
    items = _delete_items(obj, "{'externalId': ...}")
    xids = tuple(
        parse_identifier(expect_object(item, f"items[{i}]").get("externalId"), f"items[{i}].externalId")
        for i, item in enumerate(items)
    )
    return DeleteRequest(
        external_ids=tuple(dict.fromkeys(xids)),
        ignore_unknown_ids=_ignore_unknown_ids(obj, ignore_unknown_query),
    )


@dataclass(frozen=True, slots=True)
class VersionDeleteRequest:
    # (workflowExternalId, version) pairs, once each.
    versions: tuple[tuple[str, str], ...]
    ignore_unknown_ids: bool


def parse_version_delete(body: object, ignore_unknown_query: Sequence[str]) -> VersionDeleteRequest:
    obj = expect_object(body, "The request body")
    items = _delete_items(obj, "{'workflowExternalId': ..., 'version': ...}")
    pairs = []
    for i, item in enumerate(items):
        entry = expect_object(item, f"items[{i}]")
        pairs.append(
            (
                parse_identifier(entry.get("workflowExternalId"), f"items[{i}].workflowExternalId"),
                parse_identifier(entry.get("version"), f"items[{i}].version"),
            )
        )
    ignore = _ignore_unknown_ids(obj, ignore_unknown_query)
    return VersionDeleteRequest(versions=tuple(dict.fromkeys(pairs)), ignore_unknown_ids=ignore)


def _delete_items(obj: Mapping[str, Any], shape: str) -> list[Any]:
    items = obj.get("items")
    if not isinstance(items, list) or not items:
        raise InvalidRequest(f"The request body must have a non-empty 'items' array of {shape}")
    if len(items) > MAX_DELETE_ITEMS:
        raise InvalidRequest(f"'items' holds {len(items)} entries; at most {MAX_DELETE_ITEMS} are allowed")
    return items


def _ignore_unknown_ids(obj: Mapping[str, Any], query_values: Sequence[str]) -> bool:
    """`ignoreUnknownIds` of a delete: true when the query parameter or the body says so.

    Cognite's OpenAPI document has it as a query parameter defaulting to true, which is where the SDK
    sends it (always, true or false); older references put it in the body. Said nowhere, it is true.
    """
    said: list[bool] = []
    raw = _single_param(query_values, "ignoreUnknownIds")
    if raw is not None:
        if raw.lower() not in ("true", "false"):
            raise InvalidRequest(
                f"The query parameter 'ignoreUnknownIds' must be true or false, got {show(raw)}"
            )
        said.append(raw.lower() == "true")
    if obj.get("ignoreUnknownIds") is not None:
        in_body = obj["ignoreUnknownIds"]
        if not isinstance(in_body, bool):
            raise InvalidRequest(f"'ignoreUnknownIds' must be a boolean, got {json_type(in_body)}")
        said.append(in_body)
    return any(said) if said else True


# --- lists ----------------------------------------------------------------------------------------


def _single_param(values: Sequence[str], name: str) -> str | None:
    if len(values) > 1:
        raise InvalidRequest(f"The query parameter {name!r} is given {len(values)} times; give it once")
    return values[0] if values else None


def _checked_limit(value: int, where: str) -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidRequest(f"{where} must be between 1 and {MAX_LIMIT}, got {show(value)}")
    return value


def parse_page_params(limits: Sequence[str], cursors: Sequence[str], default_limit: int) -> PageRequest:
    """`limit` and `cursor` of a list endpoint read with GET (their query parameters)."""
    raw_limit = _single_param(limits, "limit")
    limit = default_limit
    if raw_limit is not None:
        # Digits only: '+5', ' 5' and '5.0' are not integers on the wire; and a huge number is no limit.
        if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 10):
            raise InvalidRequest(
                f"The query parameter 'limit' must be an integer between 1 and {MAX_LIMIT}, "
                f"got {show(raw_limit)}"
            )
        limit = _checked_limit(int(raw_limit), "The query parameter 'limit'")
    return PageRequest(limit, _single_param(cursors, "cursor"))


def _page_in_body(obj: Mapping[str, Any]) -> PageRequest:
    """`limit` and `cursor` of a list endpoint read with POST (fields of its body)."""
    limit = obj.get("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    elif isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidRequest(f"'limit' must be an integer between 1 and {MAX_LIMIT}, got {json_type(limit)}")
    cursor = obj.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidRequest(f"'cursor' must be a string, got {json_type(cursor)}")
    return PageRequest(_checked_limit(limit, "'limit'"), cursor)


def _filter_object(obj: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The body's `filter`, {} when absent. A key it does not know is refused rather than ignored: a
    misspelt filter would otherwise silently widen the list to everything."""
    value = obj.get("filter")
    if value is None:
        return {}
    found = expect_object(value, "'filter'")
    unknown = sorted(set(found) - known)
    if unknown:
        raise InvalidRequest(
            f"'filter' has unknown field(s) {', '.join(map(show, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    return found


@dataclass(frozen=True, slots=True)
class WorkflowFilter:
    """One entry of `workflowFilters`: a workflow, and optionally one of its versions."""

    external_id: str
    version: str | None

    def matches(self, workflow_external_id: str, version: str | None) -> bool:
        return workflow_external_id == self.external_id and self.version in (None, version)


def _workflow_filters(value: object, min_items: int) -> tuple[WorkflowFilter, ...]:
    where = "'filter.workflowFilters'"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(
            f"{where} must be an array of {{'externalId', 'version'?}}, got {json_type(value)}"
        )
    if not min_items <= len(value) <= MAX_WORKFLOW_FILTERS:
        raise InvalidRequest(
            f"{where} must hold {min_items} to {MAX_WORKFLOW_FILTERS} entries, got {len(value)}"
        )
    filters = []
    for i, item in enumerate(value):
        where_item = f"filter.workflowFilters[{i}]"
        entry = expect_object(item, where_item)
        version = entry.get("version")
        filters.append(
            WorkflowFilter(
                parse_identifier(entry.get("externalId"), f"{where_item}.externalId"),
                None if version is None else parse_identifier(version, f"{where_item}.version"),
            )
        )
    return tuple(filters)


def matches_any(filters: Sequence[WorkflowFilter], workflow_external_id: str, version: str | None) -> bool:
    """Whether a version or an execution passes `workflowFilters` (none given: everything does)."""
    return not filters or any(f.matches(workflow_external_id, version) for f in filters)


@dataclass(frozen=True, slots=True)
class VersionListQuery:
    """`POST /workflows/versions/list`: which versions, and which page of them."""

    workflow_filters: tuple[WorkflowFilter, ...]
    page: PageRequest
    # The filter as sent: what a cursor of this list is bound to.
    filter_json: JSONObject


def parse_version_list(body: object) -> VersionListQuery:
    obj = expect_object(body, "The request body")
    found = _filter_object(obj, frozenset({"workflowFilters"}))
    # No minimum here, unlike the executions' filter: the SDK sends an empty array to mean all versions.
    filters = _workflow_filters(found.get("workflowFilters"), min_items=0)
    return VersionListQuery(filters, _page_in_body(obj), found)


@dataclass(frozen=True, slots=True)
class ExecutionListQuery:
    """`POST /workflows/executions/list`: which executions, and which page of them."""

    workflow_filters: tuple[WorkflowFilter, ...]
    # Inclusive bounds on createdTime (epoch milliseconds); None: unbounded.
    created_time_start: int | None
    created_time_end: int | None
    # None: any status.
    statuses: frozenset[ExecutionStatus] | None
    page: PageRequest
    filter_json: JSONObject

    def matches(self, execution: Execution) -> bool:
        created = execution.created_time
        return (
            matches_any(self.workflow_filters, execution.workflow_external_id, execution.version)
            and (self.created_time_start is None or created >= self.created_time_start)
            and (self.created_time_end is None or created <= self.created_time_end)
            and (self.statuses is None or execution.status in self.statuses)
        )


def parse_execution_list(body: object) -> ExecutionListQuery:
    obj = expect_object(body, "The request body")
    known = frozenset({"workflowFilters", "createdTimeStart", "createdTimeEnd", "status"})
    found = _filter_object(obj, known)
    return ExecutionListQuery(
        workflow_filters=_workflow_filters(found.get("workflowFilters"), min_items=1),
        created_time_start=_optional_int(found, "createdTimeStart", "'filter'", 0, MAX_EPOCH_MILLIS),
        created_time_end=_optional_int(found, "createdTimeEnd", "'filter'", 0, MAX_EPOCH_MILLIS),
        statuses=_execution_statuses(found.get("status")),
        page=_page_in_body(obj),
        filter_json=found,
    )


def _execution_statuses(value: object) -> frozenset[ExecutionStatus] | None:
    if value is None:
        return None
    names = ", ".join(status.value for status in ExecutionStatus)
    if not isinstance(value, list):
        raise InvalidRequest(f"'filter.status' must be an array of {names}, got {json_type(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or item not in {status.value for status in ExecutionStatus}:
            raise InvalidRequest(f"'filter.status[{i}]' must be one of {names}, got {show(item)}")
    if len(set(value)) != len(value):
        raise InvalidRequest("'filter.status' must not name a status twice")
    return frozenset(ExecutionStatus(item) for item in value)


@dataclass(frozen=True, slots=True)
class VersionUpsert:
    workflow_external_id: str
    version: str
    definition: WorkflowDefinition


def parse_version_upsert(body: object) -> VersionUpsert:
    item = _single_item(body, "workflow version")
    xid = parse_identifier(item.get("workflowExternalId"), "items[0].workflowExternalId")
    version = parse_identifier(item.get("version"), "items[0].version")
    definition = expect_object(item.get("workflowDefinition"), "items[0].workflowDefinition")
    description = _optional_string(
        definition, "description", "items[0].workflowDefinition", DESCRIPTION_MAX_LENGTH
    )
    tasks = parse_task_list(definition.get("tasks"), "items[0].workflowDefinition.tasks", _TaskBudget())
    return VersionUpsert(
        workflow_external_id=xid,
        version=version,
        definition=WorkflowDefinition(
            tasks=tasks, description=description, hash=definition_hash(tasks, description)
        ),
    )


def definition_hash(tasks: Sequence[TaskDef], description: str | None) -> str:
    canonical = json.dumps(
        {"tasks": [task.to_json() for task in tasks], "description": description}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest().upper()


class _TaskBudget:
    """What one definition has used so far: externalIds (unique across nesting) and a count."""

    def __init__(self, taken: Sequence[str] = ()) -> None:
        self.seen: set[str] = set(taken)
        self.count = 0
        self.dependencies = 0

    def claim(self, external_id: str, where: str) -> None:
        if external_id in self.seen:
            raise InvalidRequest(
                f"{where} {show(external_id)} is used by another task of this workflow; "
                "task externalIds must be unique, nested tasks included",
                duplicated=[{"externalId": external_id}],
            )
        self.seen.add(external_id)
        self.count += 1
        if self.count > MAX_TASKS_PER_DEFINITION:
            raise InvalidRequest(f"A workflow definition may hold at most {MAX_TASKS_PER_DEFINITION} tasks")

    def claim_dependencies(self, count: int) -> None:
        self.dependencies += count
        if self.dependencies > MAX_DEPENDENCIES_PER_DEFINITION:
            raise InvalidRequest(
                f"A workflow definition may hold at most {MAX_DEPENDENCIES_PER_DEFINITION} dependsOn entries"
            )


def parse_task_list(
    value: object,
    where: str,
    budget: _TaskBudget,
    depth: int = 0,
    allowed_types: frozenset[TaskType] = frozenset(TaskType),
) -> tuple[TaskDef, ...]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be an array of tasks, got {json_type(value)}")
    tasks = tuple(
        _parse_task(item, f"{where}[{i}]", budget, depth, allowed_types) for i, item in enumerate(value)
    )
    _check_dependencies(tasks, where)
    return tasks


def parse_dynamic_tasks(value: object, taken: Sequence[str]) -> tuple[TaskDef, ...]:
    """The tasks a dynamic reference resolved to; only leaf task types, as the API documents."""
    leaf_types = frozenset(TaskType) - {TaskType.DYNAMIC, TaskType.SUBWORKFLOW}
    return parse_task_list(value, "the resolved dynamic tasks", _TaskBudget(taken), 0, leaf_types)


def _parse_task(
    value: object, where: str, budget: _TaskBudget, depth: int, allowed_types: frozenset[TaskType]
) -> TaskDef:
    task = expect_object(value, where)
    xid = parse_identifier(task.get("externalId"), f"{where}.externalId")
    budget.claim(xid, f"{where}.externalId")
    raw_type = task.get("type")
    if not isinstance(raw_type, str) or raw_type not in {t.value for t in allowed_types}:
        names = ", ".join(sorted(t.value for t in allowed_types))
        raise InvalidRequest(f"{where}.type must be one of {names}, got {show(raw_type)}")
    task_type = TaskType(raw_type)
    retries = _optional_int(task, "retries", where, 0, TASK_RETRIES_MAX)
    timeout = _optional_int(task, "timeout", where, 1, TIMEOUT_MAX_SECONDS)
    on_failure = task.get("onFailure")
    if on_failure is not None and on_failure not in {f.value for f in OnFailure}:
        raise InvalidRequest(
            f"{where}.onFailure must be 'abortWorkflow' or 'skipTask', got {show(on_failure)}"
        )
    parameters = expect_object(task.get("parameters"), f"{where}.parameters")
    key = _PARAMETER_KEYS[task_type]
    inner = expect_object(parameters.get(key), f"{where}.parameters.{key}")
    for required in _REQUIRED_PARAMETER_STRINGS.get(task_type, ()):
        text = _expect_string(inner.get(required), f"{where}.parameters.{key}.{required}")
        if not text:
            raise InvalidRequest(f"{where}.parameters.{key}.{required} must not be empty")

    is_async = parameters.get("isAsyncComplete")
    if is_async is not None and not isinstance(is_async, bool):
        raise InvalidRequest(
            f"{where}.parameters.isAsyncComplete must be a boolean, got {json_type(is_async)}"
        )
    if is_async and task_type is not TaskType.FUNCTION:
        raise InvalidRequest(f"{where}.parameters.isAsyncComplete is only meaningful for function tasks")

    subtasks: tuple[TaskDef, ...] = ()
    dynamic_reference: str | None = None
    stored_parameters = dict(parameters)
    if task_type is TaskType.SUBWORKFLOW:
        if "workflowExternalId" in inner and "tasks" not in inner:
            raise InvalidRequest(
                f"{where}: the mock supports only inline subworkflows ({{'subworkflow': {{'tasks': [...]}}}})"
            )
        if depth >= MAX_CONTAINER_DEPTH:
            raise InvalidRequest(f"{where}: subworkflows may nest at most {MAX_CONTAINER_DEPTH} levels deep")
        subtasks = parse_task_list(
            inner.get("tasks"), f"{where}.parameters.subworkflow.tasks", budget, depth + 1
        )
        del stored_parameters["subworkflow"]
    elif task_type is TaskType.DYNAMIC:
        reference = _expect_string(inner.get("tasks"), f"{where}.parameters.dynamic.tasks")
        if REFERENCE_RE.fullmatch(reference) is None:
            raise InvalidRequest(
                f"{where}.parameters.dynamic.tasks must be a reference such as "
                f"'${{<taskExternalId>.output.response.tasks}}', got {show(reference)}"
            )
        dynamic_reference = reference

    depends_on = _parse_depends_on(task.get("dependsOn"), f"{where}.dependsOn")
    budget.claim_dependencies(len(depends_on))
    return TaskDef(
        external_id=xid,
        task_type=task_type,
        parameters=stored_parameters,
        retries=TASK_RETRIES_DEFAULT if retries is None else retries,
        timeout=TASK_TIMEOUT_DEFAULT_SECONDS if timeout is None else timeout,
        on_failure=OnFailure.ABORT_WORKFLOW if on_failure is None else OnFailure(on_failure),
        depends_on=depends_on,
        name=_optional_string(task, "name", where, IDENTIFIER_MAX_LENGTH),
        description=_optional_string(task, "description", where, DESCRIPTION_MAX_LENGTH),
        is_async_complete=bool(is_async),
        subtasks=subtasks,
        dynamic_reference=dynamic_reference,
    )


def _parse_depends_on(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be an array of {{'externalId': ...}}, got {json_type(value)}")
    deps = [
        parse_identifier(expect_object(item, f"{where}[{i}]").get("externalId"), f"{where}[{i}].externalId")
        for i, item in enumerate(value)
    ]
    return tuple(dict.fromkeys(deps))


def _check_dependencies(tasks: tuple[TaskDef, ...], where: str) -> None:
    """Dependencies name siblings and form no cycle, so every task can eventually start."""
    names = {task.external_id for task in tasks}
    for task in tasks:
        for dep in task.depends_on:
            if dep == task.external_id:
                raise InvalidRequest(f"{where}: task {show(dep)} depends on itself")
            if dep not in names:
                raise InvalidRequest(
                    f"{where}: task {show(task.external_id)} depends on {show(dep)}, "
                    "which is not a task of the same list",
                    missing=[{"externalId": dep}],
                )
    # Kahn's algorithm: whatever cannot be ordered sits on a cycle.
    remaining = {task.external_id: set(task.depends_on) for task in tasks}
    ready = [xid for xid, deps in remaining.items() if not deps]
    while ready:
        done = ready.pop()
        del remaining[done]
        for xid, deps in remaining.items():
            if done in deps:
                deps.discard(done)
                if not deps:
                    ready.append(xid)
    if remaining:
        raise InvalidRequest(
            f"{where}: the dependencies of {', '.join(sorted(map(show, remaining)))} form a cycle"
        )
