"""The JSON the API answers with, built from the mock's records.

Optional fields are left out when absent, never sent as null: the contract allows absence and
the SDK reads absence, while a null would be a type error for a strict client.
"""

from __future__ import annotations

import copy

from cdf_workflows_mock.config import ServerShape
from cdf_workflows_mock.model import Attempt, Execution, JSONObject, VersionRecord, WorkflowRecord


def workflow_json(workflow: WorkflowRecord) -> JSONObject:
    out: JSONObject = {
        "externalId": workflow.external_id,
        "createdTime": workflow.created_time,
        "lastUpdatedTime": workflow.last_updated_time,
    }
    if workflow.description is not None:
        out["description"] = workflow.description
    if workflow.data_set_id is not None:
        out["dataSetId"] = workflow.data_set_id
    if workflow.max_concurrent_executions is not None:
        out["maxConcurrentExecutions"] = workflow.max_concurrent_executions
    return out


def version_json(version: VersionRecord) -> JSONObject:
    return {
        "workflowExternalId": version.workflow_external_id,
        "version": version.version,
        "workflowDefinition": version.definition.to_json(),
        "createdTime": version.created_time,
        "lastUpdatedTime": version.last_updated_time,
    }


def execution_json(execution: Execution) -> JSONObject:
    """A WorkflowExecution, the answer of run, cancel and retry."""
    out: JSONObject = {
        "id": execution.id,
        "workflowExternalId": execution.workflow_external_id,
        "version": execution.version,
        "status": execution.status.value,
        "engineExecutionId": execution.engine_execution_id,
        "createdTime": execution.created_time,
        "startTime": execution.start_time,
        "metadata": dict(execution.metadata),
    }
    if execution.end_time is not None:
        out["endTime"] = execution.end_time
    if execution.reason is not None:
        out["reasonForIncompletion"] = execution.reason
    return out


def execution_detailed_json(execution: Execution) -> JSONObject:
    """The answer of `GET /workflows/executions/{id}`: the execution with its definition and tasks."""
    out = execution_json(execution)
    out["workflowDefinition"] = execution.definition.to_json()
    if execution.input is not None:
        out["input"] = copy.deepcopy(execution.input)
    listed = execution.attempts
    if execution.shape.top_level_first:
        # A stable sort: each group keeps the order the attempts were queued in, which is the order
        # they start in, since every attempt waits the same delay.
        listed = sorted(listed, key=lambda attempt: attempt.parent is not None)
    out["executedTasks"] = [attempt_json(attempt, execution.shape) for attempt in listed]
    return out


def attempt_json(attempt: Attempt, shape: ServerShape) -> JSONObject:
    out: JSONObject = {
        "id": attempt.id,
        "externalId": attempt.external_id,
        "status": attempt.status.value,
        "taskType": attempt.task.task_type.value,
        "input": copy.deepcopy(attempt.input),
        "output": copy.deepcopy(attempt.output),
    }
    # An attempt that never started (SCHEDULED, or cancelled while it was) has no startTime: the
    # field says when the task started, and a planned time would read as a start that did not
    # happen (and could come after the endTime of a cancelled one). The SDK reads it as optional.
    if attempt.start_time is not None:
        out["startTime"] = attempt.start_time
    if attempt.parent is not None and shape.names_parent:
        out["parentTaskExternalId"] = attempt.parent
    if attempt.end_time is not None:
        out["endTime"] = attempt.end_time
    if attempt.reason is not None:
        out["reasonForIncompletion"] = attempt.reason
    return out


def list_json(items: list[JSONObject], next_cursor: str | None) -> JSONObject:
    """The answer of a list endpoint: its page of items, and `nextCursor` only when more follow."""
    out: JSONObject = {"items": items}
    if next_cursor is not None:
        out["nextCursor"] = next_cursor
    return out
