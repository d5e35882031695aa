"""Helpers for the tests of the embedded mock: a controllable clock, task builders, an HTTP client.

Everything goes through the mock's real HTTP API (no back door into its store), so these tests
exercise the same paths the suite and the SDK use.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx

from cdf_workflows_mock import DEFAULT_PROJECT, DEFAULT_WRITE_TOKEN, epoch_millis

JSON = dict[str, Any]


class ManualClock:
    """Epoch milliseconds that move only when a test says so."""

    def __init__(self, start: int | None = None) -> None:
        self._now = epoch_millis() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += int(seconds * 1000)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- task definitions ---------------------------------------------------------------------------


def function_task(
    external_id: str,
    *,
    is_async: bool = True,
    retries: int | None = None,
    on_failure: str | None = None,
    depends_on: tuple[str, ...] = (),
    timeout: int | None = None,
) -> JSON:
    parameters: JSON = {"function": {"externalId": "mock-function"}}
    if is_async:
        parameters["isAsyncComplete"] = True
    task: JSON = {"externalId": external_id, "type": "function", "parameters": parameters}
    if retries is not None:
        task["retries"] = retries
    if on_failure is not None:
        task["onFailure"] = on_failure
    if timeout is not None:
        task["timeout"] = timeout
    if depends_on:
        task["dependsOn"] = [{"externalId": dep} for dep in depends_on]
    return task


def subworkflow_task(external_id: str, tasks: list[JSON], **options: Any) -> JSON:
    task: JSON = {
        "externalId": external_id,
        "type": "subworkflow",
        "parameters": {"subworkflow": {"tasks": tasks}},
    }
    task.update(options)
    return task


def dynamic_task(external_id: str, reference: str, depends_on: tuple[str, ...] = ()) -> JSON:
    task: JSON = {
        "externalId": external_id,
        "type": "dynamic",
        "parameters": {"dynamic": {"tasks": reference}},
    }
    if depends_on:
        task["dependsOn"] = [{"externalId": dep} for dep in depends_on]
    return task


# --- executions as JSON ---------------------------------------------------------------------------


def attempts(detail: JSON, external_id: str) -> list[JSON]:
    return [task for task in detail["executedTasks"] if task["externalId"] == external_id]


def latest(detail: JSON, external_id: str) -> JSON:
    found = attempts(detail, external_id)
    assert found, f"task {external_id!r} has no attempt in {detail['executedTasks']}"
    return found[-1]


def statuses(detail: JSON) -> list[tuple[str, str]]:
    return [(task["externalId"], task["status"]) for task in detail["executedTasks"]]


def assert_envelope(response: httpx.Response, status: int) -> JSON:
    """The answer is the Cognite error envelope with the given status, as JSON, with a request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: JSON = body["error"]
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    for key in ("missing", "duplicated"):
        if key in error:
            assert isinstance(error[key], list)
    return error


# --- a client of the mock -------------------------------------------------------------------------


class MockApi:
    """Thin wrapper over httpx for the workflow endpoints of one project."""

    def __init__(
        self, base_url: str, token: str | None = DEFAULT_WRITE_TOKEN, project: str = DEFAULT_PROJECT
    ):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self.base_url = base_url
        self.project = project
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v1/projects/{project}", headers=headers, timeout=10
        )

    def close(self) -> None:
        self.http.close()

    def nonce(self) -> str:
        response = self.http.post("/sessions", json={"items": [{"tokenExchange": True}]})
        assert response.status_code == 200, response.text
        return str(response.json()["items"][0]["nonce"])

    def create_version(self, tasks: list[JSON], workflow: str | None = None, version: str = "1") -> str:
        workflow = workflow or unique("wf")
        response = self.http.post("/workflows", json={"items": [{"externalId": workflow}]})
        assert response.status_code == 200, response.text
        body = {
            "items": [
                {"workflowExternalId": workflow, "version": version, "workflowDefinition": {"tasks": tasks}}
            ]
        }
        response = self.http.post("/workflows/versions", json=body)
        assert response.status_code == 200, response.text
        return workflow

    def run(self, workflow: str, version: str = "1", **body: Any) -> JSON:
        response = self.http.post(
            f"/workflows/{workflow}/versions/{version}/run",
            json={"authentication": {"nonce": self.nonce()}, **body},
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def start(self, tasks: list[JSON], **body: Any) -> str:
        """Create a workflow with these tasks, run it, and return the execution id."""
        return str(self.run(self.create_version(tasks), **body)["id"])

    def detail(self, execution_id: str) -> JSON:
        response = self.http.get(f"/workflows/executions/{execution_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def update(self, task_id: str, status: str, output: JSON | None = None) -> JSON:
        body: JSON = {"status": status}
        if output is not None:
            body["output"] = output
        response = self.http.post(f"/workflows/tasks/{task_id}/update", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def finish(self, execution_id: str, external_id: str, status: str, output: JSON | None = None) -> JSON:
        """Report the latest attempt of a task, then return the execution's new detail."""
        task = latest(self.detail(execution_id), external_id)
        assert task["status"] == "IN_PROGRESS", task
        self.update(task["id"], status, output)
        return self.detail(execution_id)

    def cancel(self, execution_id: str, reason: str | None = None) -> httpx.Response:
        return self.http.post(
            f"/workflows/executions/{execution_id}/cancel", json={} if reason is None else {"reason": reason}
        )

    def retry(self, execution_id: str, nonce: str | None = None) -> httpx.Response:
        body = {"authentication": {"nonce": nonce if nonce is not None else self.nonce()}}
        return self.http.post(f"/workflows/executions/{execution_id}/retry", json=body)
