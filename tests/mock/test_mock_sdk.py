"""The official Cognite SDK (cognite-sdk 8.22) against the embedded mock over HTTP.

If the SDK can drive the mock through a whole run/cancel/retry cycle, the mock speaks the API
the way CDF does: gzip bodies, sessions before each run and retry, the envelope, the 401 dance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cognite.client import CogniteClient
from cognite.client.data_classes import (
    FunctionTaskParameters,
    WorkflowDefinitionUpsert,
    WorkflowTask,
    WorkflowUpsert,
    WorkflowVersionUpsert,
)
from cognite.client.exceptions import CogniteAPIError, CogniteNotFoundError, CogniteProjectAccessError

from cdf_workflows_mock import DEFAULT_READONLY_TOKEN, DEFAULT_WRITE_TOKEN, EmbeddedMock, MockConfig
from support.mock_helpers import unique
from support.sdk import make_client


@pytest.fixture(scope="module")
def mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig()) as server:
        yield server


@pytest.fixture(scope="module")
def client(mock: EmbeddedMock) -> CogniteClient:
    return make_client(mock.base_url, DEFAULT_WRITE_TOKEN)


def create_workflow(client: CogniteClient, version: str = "1", task_ids: tuple[str, ...] = ("task",)) -> str:
    workflow = unique("sdk-wf")
    client.workflows.upsert(WorkflowUpsert(external_id=workflow, description="made by the SDK tests"))
    tasks = [
        WorkflowTask(
            external_id=xid, parameters=FunctionTaskParameters(external_id="fn", is_async_complete=True)
        )
        for xid in task_ids
    ]
    upserted = client.workflows.versions.upsert(
        WorkflowVersionUpsert(
            workflow_external_id=workflow,
            version=version,
            workflow_definition=WorkflowDefinitionUpsert(tasks=tasks),
        )
    )
    assert upserted.workflow_definition.hash_
    assert [task.external_id for task in upserted.workflow_definition.tasks] == list(task_ids)
    return workflow


def test_run_cancel_retry_update_cycle(client: CogniteClient) -> None:
    workflow = create_workflow(client)
    execution = client.workflows.executions.run(workflow, "1", input={"a": 1}, metadata={"origin": "sdk"})
    assert execution.status == "running" and execution.metadata == {"origin": "sdk"}

    detailed = client.workflows.executions.retrieve_detailed(execution.id)
    assert detailed is not None
    assert [task.status for task in detailed.executed_tasks] == ["in_progress"]
    task_input = detailed.executed_tasks[0].input
    assert isinstance(task_input, FunctionTaskParameters) and task_input.is_async_complete is True

    cancelled = client.workflows.executions.cancel(execution.id, reason="test")
    assert cancelled.status == "terminated" and cancelled.reason_for_incompletion == "test"

    retried = client.workflows.executions.retry(execution.id)
    assert retried.status == "running" and retried.id == execution.id
    assert retried.reason_for_incompletion is None and retried.end_time is None

    detailed = client.workflows.executions.retrieve_detailed(execution.id)
    assert detailed is not None
    # The SDK lower-cases what the API spells CANCELED.
    assert [task.status for task in detailed.executed_tasks] == ["canceled", "in_progress"]

    updated = client.workflows.tasks.update(
        detailed.executed_tasks[-1].id, "completed", output={"response": {}}
    )
    assert updated.status == "completed"
    final = client.workflows.executions.retrieve_detailed(execution.id)
    assert final is not None and final.status == "completed" and final.end_time is not None


def test_retry_after_terminal_failure(client: CogniteClient) -> None:
    workflow = create_workflow(client, version="v/1", task_ids=("first", "second"))
    execution = client.workflows.executions.run(workflow, "v/1")
    detailed = client.workflows.executions.retrieve_detailed(execution.id)
    assert detailed is not None and detailed.version == "v/1"
    client.workflows.tasks.update(detailed.executed_tasks[0].id, "failed_with_terminal_error")

    failed = client.workflows.executions.retrieve_detailed(execution.id)
    assert failed is not None and failed.status == "failed"
    assert [task.status for task in failed.executed_tasks] == ["failed_with_terminal_error", "canceled"]

    assert client.workflows.executions.retry(execution.id).status == "running"
    after = client.workflows.executions.retrieve_detailed(execution.id)
    assert after is not None
    assert [(t.external_id, t.status) for t in after.executed_tasks[2:]] == [
        ("first", "in_progress"),
        ("second", "in_progress"),
    ]


def test_retry_of_running_execution_is_refused(client: CogniteClient) -> None:
    execution = client.workflows.executions.run(create_workflow(client), "1")
    with pytest.raises(CogniteAPIError) as caught:
        client.workflows.executions.retry(execution.id)
    assert caught.value.code == 409 and caught.value.x_request_id


def test_unknown_execution_is_not_found(client: CogniteClient) -> None:
    with pytest.raises(CogniteNotFoundError):
        client.workflows.executions.retrieve_detailed("3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60")
    with pytest.raises(CogniteNotFoundError):
        client.workflows.executions.retry("3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60")


def test_read_only_token_gets_403(mock: EmbeddedMock, client: CogniteClient) -> None:
    execution = client.workflows.executions.run(create_workflow(client), "1")
    client.workflows.executions.cancel(execution.id, reason=None)
    reader = make_client(mock.base_url, DEFAULT_READONLY_TOKEN)
    with pytest.raises(CogniteAPIError) as caught:
        reader.workflows.executions.retry(execution.id)
    assert caught.value.code == 403
    still = reader.workflows.executions.retrieve_detailed(execution.id)
    assert still is not None and still.status == "terminated"


def test_bad_token_raises_access_error_quickly(mock: EmbeddedMock) -> None:
    stranger = make_client(mock.base_url, "not-a-known-token")
    started = time.monotonic()
    with pytest.raises(CogniteProjectAccessError) as caught:
        stranger.workflows.executions.retry("3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60")
    assert time.monotonic() - started < 5
    assert caught.value.x_request_id


def test_delete_workflow(client: CogniteClient) -> None:
    workflow = create_workflow(client)
    client.workflows.delete(workflow)
    client.workflows.delete(unique("never-existed"), ignore_unknown_ids=True)
    with pytest.raises(CogniteNotFoundError):
        client.workflows.executions.run(workflow, "1")
