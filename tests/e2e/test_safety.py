"""Safe against live projects: bounded requests and rate, a dry run that sends nothing, cleanup on
interruption, and executions the run did not create are never retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig, create_app
from retry_contract.budget import BudgetExhausted, RequestBudget
from retry_contract.credentials import StaticToken
from retry_contract.domain import ExecutionStatus
from retry_contract.runner import RunOptions, run
from support.project import CLI, PROJECT
from support.servers import serve_asgi

WRITE, READONLY = "safety-write-token-0001", "safety-readonly-token-0001"


def test_rate_spaces_requests_without_real_sleeping() -> None:
    now = [0.0]
    slept: list[float] = []
    budget = RequestBudget(max_requests=3, rate=2.0, clock=lambda: now[0], sleep=slept.append)
    for _ in range(3):
        budget.spend()
    assert slept == [0.5, 1.0]
    with pytest.raises(BudgetExhausted):
        budget.spend()
    budget.spend(exempt=True)
    assert budget.spent == 4


def _store_state(mock: EmbeddedMock) -> Any:
    # A peek at the mock's own state: the test checks what the suite left behind on the server.
    return mock.app.state.store._projects.get(PROJECT)


@pytest.fixture
def mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, WRITE, READONLY)) as server:
        yield server


def _options(mock: EmbeddedMock, **overrides: Any) -> RunOptions:
    settings: dict[str, Any] = {
        "base_url": mock.base_url,
        "project": PROJECT,
        "credentials": StaticToken(WRITE),
        "readonly_token": READONLY,
        "max_examples": 5,
    }
    return RunOptions(**{**settings, **overrides})


def test_the_request_budget_bounds_the_run_and_cleanup_still_happens(mock: EmbeddedMock) -> None:
    result = run(_options(mock, max_requests=60))
    assert "budget" in result.stop_reason
    # Over the budget: only cleanup (a read and at most a cancel per execution, one delete), and the
    # one generated case that goes out after the budget ran dry (a hook cannot withdraw it).
    assert result.requests_sent <= 60 + 1 + 2 * result.created_executions + 1
    state = _store_state(mock)
    assert not state.workflows
    assert all(e.status is not ExecutionStatus.RUNNING for e in state.executions.values())


def _foreign_failed_execution(http: httpx.Client) -> str:
    """An execution of the user's own, FAILED, created behind the suite's back."""
    http.post("/workflows", json={"items": [{"externalId": "users-own-workflow"}]}).raise_for_status()
    task = {
        "externalId": "t",
        "type": "function",
        "parameters": {"function": {"externalId": "f"}, "isAsyncComplete": True},
    }
    version = {
        "workflowExternalId": "users-own-workflow",
        "version": "1",
        "workflowDefinition": {"tasks": [task]},
    }
    http.post("/workflows/versions", json={"items": [version]}).raise_for_status()
    nonce = http.post("/sessions", json={"items": [{"tokenExchange": True}]}).json()["items"][0]["nonce"]
    execution = http.post(
        "/workflows/users-own-workflow/versions/1/run", json={"authentication": {"nonce": nonce}}
    ).json()
    detailed = http.get(f"/workflows/executions/{execution['id']}").json()
    task_id = detailed["executedTasks"][0]["id"]
    http.post(
        f"/workflows/tasks/{task_id}/update", json={"status": "FAILED_WITH_TERMINAL_ERROR"}
    ).raise_for_status()
    return str(execution["id"])


@pytest.fixture
def user_api(mock: EmbeddedMock) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{mock.base_url}/api/v1/projects/{PROJECT}", headers={"Authorization": f"Bearer {WRITE}"}
    ) as http:
        yield http


def test_executions_it_did_not_create_are_never_retried(mock: EmbeddedMock, user_api: httpx.Client) -> None:
    execution_id = _foreign_failed_execution(user_api)
    before = user_api.get(f"/workflows/executions/{execution_id}").json()
    result = run(_options(mock))
    after = user_api.get(f"/workflows/executions/{execution_id}").json()
    assert result.exit_code == 0
    assert before == after, "the suite touched an execution it did not create"
    assert set(_store_state(mock).workflows) == {"users-own-workflow"}


def test_a_named_execution_is_retried_once_and_judged(mock: EmbeddedMock, user_api: httpx.Client) -> None:
    execution_id = _foreign_failed_execution(user_api)
    result = run(_options(mock, named_executions=(execution_id,), fuzz=False))
    after = user_api.get(f"/workflows/executions/{execution_id}").json()
    assert result.exit_code == 0
    assert after["status"] == "RUNNING"
    assert [t["externalId"] for t in after["executedTasks"]] == ["t", "t"]


def test_dry_run_sends_nothing_to_the_target(tmp_path: Path) -> None:
    received: list[str] = []

    async def recorder(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        received.append(scope["path"])
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with serve_asgi(recorder) as url:
        completed = subprocess.run(
            [
                *CLI,
                "run",
                "--dry-run",
                "--base-url",
                url,
                "--project",
                "p",
                "--max-examples",
                "5",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "CDF_TOKEN": "dry-run-token-0001"},
            timeout=120,
        )
    assert completed.returncode == 0, completed.stderr
    assert "nothing was sent" in completed.stdout
    assert "workflows" in completed.stdout and "requests" in completed.stdout
    assert received == []


@pytest.mark.slow
@pytest.mark.parametrize("interruption", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_a_run_cleans_up_what_it_created_and_reports_what_it_judged(
    tmp_path: Path, interruption: signal.Signals
) -> None:
    started = threading.Event()

    def interrupt_when_provisioning(app: Any) -> Any:
        async def watch(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].endswith("/run"):
                started.set()
            await app(scope, receive, send)

        return watch

    app = create_app(MockConfig.with_tokens(PROJECT, WRITE, READONLY))
    with serve_asgi(interrupt_when_provisioning(app)) as url:
        process = subprocess.Popen(
            [
                *CLI,
                "run",
                "--base-url",
                url,
                "--project",
                PROJECT,
                "--report-dir",
                str(tmp_path),
                "--rate",
                "50",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CDF_TOKEN": WRITE},
        )
        assert started.wait(timeout=120), "the run never started provisioning"
        process.send_signal(interruption)
        _, stderr = process.communicate(timeout=120)
        state = app.state.store._projects[PROJECT]
        assert process.returncode == 2
        assert "interrupted" in stderr and "Traceback" not in stderr
        assert not state.workflows, f"left behind: {list(state.workflows)}"
        assert all(e.status is not ExecutionStatus.RUNNING for e in state.executions.values())
        report = json.loads((tmp_path / "retry-contract.json").read_text())
        assert report["incomplete"].startswith("interrupted")
        assert report["verdict"].startswith("inconclusive: the run could not finish")
