"""What a defect's probe works with: a running mock, a client of its real endpoints, and the
provisioning a probe needs. A probe is a short function beside its defect (`Defect.probe`) that shows the
change its description promises, only through the API, as a test suite would see it: it raises
AssertionError unless the mock in front of it has the defect.

Nothing here depends on a test framework; the mock's tests run every probe against a mock with its
defect on (`tests/mock/test_mock_defects.py`). httpx, the client, is imported only when a probe runs.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cdf_workflows_mock.cdf import METADATA_LIMITS
from cdf_workflows_mock.config import DEFAULT_PROJECT, DEFAULT_WRITE_TOKEN

if TYPE_CHECKING:
    import httpx

JSON = dict[str, Any]

# The request forms real clients send: extra fields are open; the faithful mock accepts them, so only
# the encoding can explain a refusal.
NON_ASCII_EXTRA = {"comment": "retried by J\u00fcrgen"}
NON_ASCII_METADATA = {"owner": "J\u00fcrgen", "team": "data"}


def function_task(external_id: str, *, timeout: int | None = None) -> JSON:
    """An asynchronous function task, completed only when a probe reports it."""
    task: JSON = {
        "externalId": external_id,
        "type": "function",
        "parameters": {"function": {"externalId": "mock-function"}, "isAsyncComplete": True},
    }
    if timeout is not None:
        task["timeout"] = timeout
    return task


def attempts(detail: JSON, external_id: str) -> list[JSON]:
    return [task for task in detail["executedTasks"] if task["externalId"] == external_id]


def latest(detail: JSON, external_id: str) -> JSON:
    found = attempts(detail, external_id)
    assert found, f"task {external_id!r} has no attempt in {detail['executedTasks']}"
    return found[-1]


def attempt_counts(detail: JSON) -> Counter[str]:
    return Counter(str(task["externalId"]) for task in detail["executedTasks"])


def new_attempts(before: JSON, after: JSON) -> Counter[str]:
    """How many attempts each task gained between two readings (by attempt id)."""
    known = {task["id"] for task in before["executedTasks"]}
    return Counter(str(task["externalId"]) for task in after["executedTasks"] if task["id"] not in known)


def boundary_metadata() -> dict[str, str]:
    """Run metadata exactly at the documented limits: ten pairs, keys and values at their longest."""
    limits = METADATA_LIMITS
    return {
        f"probe-{index:02d}".ljust(limits.max_key_length, "k"): f"value {index} ".ljust(
            limits.max_value_length, "v"
        )
        for index in range(limits.max_pairs)
    }


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


@contextmanager
def drops_connection() -> Iterator[None]:
    """The request in the block gets no complete answer: the server closes the connection mid-answer."""
    import httpx

    try:
        yield
    except httpx.RemoteProtocolError:
        return
    raise AssertionError("the answer was complete; the connection was expected to drop")


class MockApi:
    """A thin client of the workflow endpoints of one project."""

    def __init__(
        self, base_url: str, token: str | None = DEFAULT_WRITE_TOKEN, project: str = DEFAULT_PROJECT
    ) -> None:
        import httpx

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
        workflow = workflow or f"wf-{uuid.uuid4().hex[:12]}"
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


class Clock(Protocol):
    """The mock's clock, which only the probe moves (epoch milliseconds)."""

    def __call__(self) -> int: ...

    def advance(self, seconds: float) -> None: ...


class Shapes(Protocol):
    """The execution of every task shape that a suite's task-semantics checks observe: the name of the
    task in each role, and the tasks themselves (the suite's `provisioning.SHAPES`)."""

    @property
    def completed(self) -> str: ...
    @property
    def optional_failed(self) -> str: ...
    @property
    def optional_canceled(self) -> str: ...
    @property
    def canceled(self) -> str: ...
    @property
    def container(self) -> str: ...
    @property
    def nested_completed(self) -> str: ...
    @property
    def nested_canceled(self) -> str: ...
    @property
    def at_limit(self) -> str: ...
    @property
    def at_limit_retries(self) -> int: ...
    @property
    def never_started(self) -> str: ...

    def tasks(self, function_external_id: str) -> list[dict[str, Any]]: ...


@dataclass
class Prober:
    """A running mock (at `base_url`, on `clock`), a client of it, and the provisioning a probe needs,
    through the real endpoints."""

    base_url: str
    api: MockApi
    clock: Clock
    shapes: Shapes

    def client(self, token: str | None) -> httpx.Client:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.api.http.base_url, headers=headers, timeout=10)

    def retry_url(self, execution_id: str) -> str:
        return f"/workflows/executions/{execution_id}/retry"

    def body(self, nonce: Any = None) -> JSON:
        return {"authentication": {"nonce": self.api.nonce() if nonce is None else nonce}}

    def post_retry(self, execution_id: str, **kwargs: Any) -> httpx.Response:
        return self.api.http.post(self.retry_url(execution_id), **kwargs)

    def running(self, metadata: dict[str, str] | None = None) -> str:
        return self.api.start([function_task("step")], metadata=metadata or {})

    def failed(self, metadata: dict[str, str] | None = None) -> str:
        execution_id = self.running(metadata)
        self.api.finish(execution_id, "step", "FAILED_WITH_TERMINAL_ERROR")
        return execution_id

    def completed(self) -> str:
        execution_id = self.running()
        assert self.api.finish(execution_id, "step", "COMPLETED")["status"] == "COMPLETED"
        return execution_id

    def terminated(self) -> str:
        execution_id = self.running()
        assert self.api.cancel(execution_id).status_code == 200
        return execution_id

    def shapes_execution(self) -> str:
        """The FAILED execution of every task shape."""
        shapes = self.shapes
        execution_id = self.api.start(shapes.tasks("mock-function"))
        for name in (shapes.completed, shapes.nested_completed):
            self.api.finish(execution_id, name, "COMPLETED")
        self.api.finish(execution_id, shapes.optional_failed, "FAILED")
        for _ in range(shapes.at_limit_retries + 1):
            detail = self.api.finish(execution_id, shapes.at_limit, "FAILED")
        assert detail["status"] == "FAILED"
        return execution_id

    def shape_tasks(self) -> tuple[str, ...]:
        s = self.shapes
        return (
            s.completed,
            s.optional_failed,
            s.optional_canceled,
            s.canceled,
            s.container,
            s.nested_completed,
            s.nested_canceled,
            s.at_limit,
            s.never_started,
        )

    def faithful_gains(self) -> dict[str, int]:
        """What the faithful mock does to the shapes execution (workflow-model.md point 8)."""
        s = self.shapes
        return {name: 0 for name in self.shape_tasks()} | {s.canceled: 1, s.nested_canceled: 1, s.at_limit: 1}

    def retry_shapes(self) -> tuple[JSON, JSON, dict[str, int]]:
        """Retry the shapes execution: the detail before, the detail after, the attempts each task gained."""
        execution_id = self.shapes_execution()
        before = self.api.detail(execution_id)
        assert self.api.retry(execution_id).status_code == 200
        after = self.api.detail(execution_id)
        gained = new_attempts(before, after)
        return before, after, {name: gained[name] for name in self.shape_tasks()}


# --- what several probes do -------------------------------------------------------------------


def send_retry(
    p: Prober,
    execution_id: str,
    body: JSON | None = None,
    *,
    content_type: str = "application/json",
    gzipped: bool = False,
    chunked: bool = False,
    raw_utf8: bool = False,
) -> httpx.Response:
    """A retry with its body encoded and framed as a given client sends it."""
    content = json.dumps(p.body() if body is None else body, ensure_ascii=not raw_utf8).encode()
    headers = {"content-type": content_type}
    if gzipped:
        content = gzip.compress(content)
        headers["content-encoding"] = "gzip"
    answer = p.post_retry(execution_id, content=iter([content]) if chunked else content, headers=headers)
    assert ("chunked" in answer.request.headers.get("transfer-encoding", "")) is chunked
    return answer


def error_body(p: Prober) -> tuple[httpx.Response, Any]:
    """The answer to a retry of an unknown execution, and its JSON body."""
    answer = p.post_retry(str(uuid.uuid4()), json=p.body())
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"
    return answer, answer.json()


def retry_answer(p: Prober, execution_id: str | None = None) -> tuple[str, JSON]:
    """Retry a FAILED execution (a new one unless given): its id, and the retry's answer."""
    execution_id = execution_id or p.failed()
    answer = p.api.retry(execution_id)
    assert answer.status_code == 200, answer.text
    return execution_id, dict(answer.json())


def gains_differ(p: Prober, **changed: int) -> tuple[JSON, JSON]:
    """Retry the shapes execution: the tasks gain what the faithful mock gives them, but `changed`."""
    before, after, gained = p.retry_shapes()
    assert gained == p.faithful_gains() | changed, gained
    return before, after


def timed_out_execution(p: Prober) -> str:
    execution_id = p.api.start([function_task("step", timeout=1)])
    p.clock.advance(2)
    assert p.api.detail(execution_id)["status"] == "TIMED_OUT"
    return execution_id


def gained_on_retry(p: Prober, execution_id: str) -> tuple[int, JSON]:
    """The new attempts of "step" on a retry of the execution, and its detail after the retry."""
    before = p.api.detail(execution_id)
    answer = p.api.retry(execution_id)
    assert answer.status_code == 200 and answer.json()["status"] == "RUNNING"
    after = p.api.detail(execution_id)
    return new_attempts(before, after)["step"], after


def retry_twice(p: Prober) -> tuple[str, JSON, JSON]:
    """Retry a FAILED execution, fail the retried task again and retry it a second time: the execution,
    and its detail after each retry."""
    execution_id = p.failed()
    assert p.api.retry(execution_id).status_code == 200
    first = p.api.detail(execution_id)
    assert p.api.finish(execution_id, "step", "FAILED_WITH_TERMINAL_ERROR")["status"] == "FAILED"
    answer = p.api.retry(execution_id)
    assert answer.status_code == 200 and answer.json()["status"] == "RUNNING"
    return execution_id, first, p.api.detail(execution_id)


def fail_the_limit_task_again(p: Prober) -> tuple[JSON, int]:
    """Retry the shapes execution, fail the new attempt of the task at its limit, and return the
    execution then and how many attempts that task gained after its retried attempt."""
    before, after, _ = p.retry_shapes()
    execution_id = str(after["id"])
    final = p.api.finish(execution_id, p.shapes.at_limit, "FAILED")
    used = attempt_counts(before)[p.shapes.at_limit]
    return final, attempt_counts(final)[p.shapes.at_limit] - used - 1


def cancel_then_retry_gains(p: Prober, execution_id: str) -> int:
    """Cancel the running execution, retry it: the attempts its task gained by the retry."""
    assert p.api.cancel(execution_id).status_code == 200
    before = p.api.detail(execution_id)
    assert before["status"] == "TERMINATED"
    assert p.api.retry(execution_id).status_code == 200
    return new_attempts(before, p.api.detail(execution_id))["step"]


def simultaneous_retries(p: Prober, count: int = 4) -> tuple[list[int], int]:
    """`count` retries of one FAILED execution at once: their statuses, and the attempts its task gained."""
    execution_id = p.failed()
    before = p.api.detail(execution_id)
    bodies = [p.body() for _ in range(count)]
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(body: JSON) -> None:
        with p.client(DEFAULT_WRITE_TOKEN) as client:
            barrier.wait()
            status = client.post(p.retry_url(execution_id), json=body).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gained = new_attempts(before, p.api.detail(execution_id))["step"]
    return sorted(statuses), gained


def retried_metadata(p: Prober, metadata: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The retry's answer and the detail after it, of an execution run with `metadata`."""
    execution_id, answer = retry_answer(p, p.failed(metadata))
    return answer["metadata"], p.api.detail(execution_id)["metadata"]


def retried_in(p: Prober, workflow: str, version: str, **body: Any) -> JSON:
    """The retry's answer for an execution of `workflow` at `version`, both sent percent-encoded."""
    from urllib.parse import quote

    p.api.create_version([function_task("step")], workflow=workflow, version=version)
    path = f"/workflows/{quote(workflow, safe='')}/versions/{quote(version, safe='')}/run"
    run = p.api.http.post(path, json={"authentication": {"nonce": p.api.nonce()}, **body})
    assert run.status_code == 200, run.text
    execution_id = str(run.json()["id"])
    p.api.finish(execution_id, "step", "FAILED_WITH_TERMINAL_ERROR")
    return retry_answer(p, execution_id)[1]


Probe = Callable[[Prober], None]
