"""A run request whose answer was lost may still have created an execution: cleanup finds it by listing
the executions of the workflows the run created (`POST /workflows/executions/list`) and cancels it, and
only warns on a server that cannot list them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cdf_workflows_mock import DEFAULT_PROJECT, MockConfig, create_app
from cdf_workflows_mock.loopback import InProcessServer
from retry_contract.cdf_client import CdfClient, UnexpectedAnswer
from retry_contract.credentials import StaticToken
from retry_contract.provisioning import Provisioner
from retry_contract.resilience import RetryPolicy
from retry_contract.secrets_registry import SecretRegistry
from support.fault_proxy import Fault, fault_proxy

WRITE, READONLY = "lost-runs-write-token", "lost-runs-readonly-token"
QUICK = RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.05)
# What provisioning sends for the first execution of a run: the workflow, its version, a session for
# the nonce, then the run itself, whose answer the proxy cuts short once it has reached the server.
LOST_RUN_ANSWER = {4: Fault.TRUNCATE}
LIST_PATH = f"/api/v1/projects/{DEFAULT_PROJECT}/workflows/executions/list"

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class WithoutExecutionList:
    """A CDF-compatible server that has no execution list: 404 there, the mock everywhere else."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == LIST_PATH:
            body = json.dumps({"error": {"code": 404, "message": "No such endpoint"}}).encode()
            headers = [(b"content-type", b"application/json"), (b"x-request-id", b"without-list")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def serve(wrap: Callable[[Any], Any] = lambda app: app) -> InProcessServer:
    return InProcessServer(wrap(create_app(MockConfig.with_tokens(DEFAULT_PROJECT, WRITE, READONLY))))


def executions_by_status(base_url: str) -> dict[str, str]:
    """Every execution on the server (read past any proxy) and its status."""
    with httpx.Client(
        base_url=f"{base_url}/api/v1/projects/{DEFAULT_PROJECT}", headers={"Authorization": f"Bearer {WRITE}"}
    ) as http:
        # The mock's own list (its tests are elsewhere); an execution's status read from its detail.
        listed = http.post("/workflows/executions/list", json={"limit": 1000}).json()["items"]
        return {e["id"]: http.get(f"/workflows/executions/{e['id']}").json()["status"] for e in listed}


@pytest.fixture
def mock() -> Iterator[InProcessServer]:
    with serve() as server:
        yield server


def _client(base_url: str, transport: httpx.BaseTransport | None = None) -> CdfClient:
    return CdfClient(
        base_url,
        DEFAULT_PROJECT,
        StaticToken(WRITE),
        SecretRegistry(),
        retry_policy=QUICK,
        transport=transport,
    )


def test_a_run_whose_answer_was_lost_leaves_nothing_running(mock: InProcessServer) -> None:
    with fault_proxy(mock.base_url, LOST_RUN_ANSWER.get) as (url, proxy), _client(url) as client:
        provisioner = Provisioner(client)
        known = provisioner.running_execution()
        assert proxy.injected[Fault.TRUNCATE] == 1
        assert [r.rsplit("/", 1)[-1] for r in client.replayed] == ["run"], client.replayed
        # The first attempt created an execution too: two run, and the suite knows of one.
        assert sorted(executions_by_status(mock.base_url).values()) == ["RUNNING", "RUNNING"]

        problems = provisioner.cleanup()

    after = executions_by_status(mock.base_url)
    assert problems == []
    assert sorted(after.values()) == ["TERMINATED", "TERMINATED"]
    (lost,) = set(after) - {known}
    assert provisioner.created_executions == [known, lost]


def test_a_run_whose_answer_came_too_late_leaves_nothing_running(mock: InProcessServer) -> None:
    # The proxy forwards the run at once and answers after 0.3 s; the client waits 0.1 s.
    with (
        fault_proxy(mock.base_url, {4: Fault.SLOW_ANSWER}.get) as (url, proxy),
        CdfClient(
            url, DEFAULT_PROJECT, StaticToken(WRITE), SecretRegistry(), retry_policy=QUICK, timeout=0.1
        ) as client,
    ):
        provisioner = Provisioner(client)
        known = provisioner.running_execution()
        assert proxy.injected[Fault.SLOW_ANSWER] == 1
        assert [r.rsplit("/", 1)[-1] for r in client.replayed] == ["run"], client.replayed
        problems = provisioner.cleanup()
    after = executions_by_status(mock.base_url)
    assert problems == []
    assert sorted(after.values()) == ["TERMINATED", "TERMINATED"]
    assert known in after


def test_without_the_list_endpoint_the_lost_run_is_only_warned_of() -> None:
    app = create_app(MockConfig.with_tokens(DEFAULT_PROJECT, WRITE, READONLY))
    # One app served twice: the suite meets it without the list, the test reads its state through it.
    with (
        InProcessServer(app) as inspector,
        InProcessServer(WithoutExecutionList(app)) as server,
        fault_proxy(server.base_url, LOST_RUN_ANSWER.get) as (url, _),
        _client(url) as client,
    ):
        provisioner = Provisioner(client)
        known = provisioner.running_execution()
        problems = provisioner.cleanup()
        statuses = executions_by_status(inspector.base_url)
    (warning,) = problems
    assert warning.startswith("POST ") and "/run was re-sent after its answer was lost" in warning
    assert "does not list executions" in warning
    # Honest about it: the execution nobody could find is still running.
    assert statuses.pop(known) == "TERMINATED" and list(statuses.values()) == ["RUNNING"]


def test_without_a_lost_answer_cleanup_lists_nothing(mock: InProcessServer) -> None:
    listed: list[str] = []

    def counting(app: Any) -> Any:
        async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] == LIST_PATH:
                listed.append(scope["path"])
            await app(scope, receive, send)

        return wrapper

    with serve(counting) as server, _client(server.base_url) as client:
        provisioner = Provisioner(client)
        provisioner.running_execution()
        assert provisioner.cleanup() == []
    assert listed == []


# --- CdfClient.list_executions on a scripted server --------------------------------------------------


def _scripted(pages: dict[str | None, httpx.Response]) -> tuple[httpx.MockTransport, list[dict[str, Any]]]:
    """A server answering each list request by the cursor it carries; the bodies it received."""
    received: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        received.append(body)
        return pages[body.get("cursor")]

    return httpx.MockTransport(answer), received


def test_list_executions_follows_cursors_and_filters_by_workflow_and_status() -> None:
    transport, received = _scripted(
        {
            None: httpx.Response(200, json={"items": [{"id": "a"}], "nextCursor": "page-2"}),
            "page-2": httpx.Response(200, json={"items": [{"id": "b"}, {"id": "c"}]}),
        }
    )
    with _client("http://cdf.test", transport) as client:
        assert client.list_executions(["wf-1", "wf-2"], ("RUNNING",)) == [
            {"id": "a"},
            {"id": "b"},
            {"id": "c"},
        ]
    expected_filter = {
        "workflowFilters": [{"externalId": "wf-1"}, {"externalId": "wf-2"}],
        "status": ["RUNNING"],
    }
    assert received == [
        {"filter": expected_filter, "limit": 1000},
        {"filter": expected_filter, "limit": 1000, "cursor": "page-2"},
    ]


def test_list_executions_asks_for_at_most_100_workflows_at_once() -> None:
    transport, received = _scripted({None: httpx.Response(200, json={"items": []})})
    with _client("http://cdf.test", transport) as client:
        assert client.list_executions([f"wf-{i}" for i in range(150)]) == []
    assert [len(body["filter"]["workflowFilters"]) for body in received] == [100, 50]


@pytest.mark.parametrize("status", [404, 405])
def test_list_executions_is_none_where_the_server_has_no_such_endpoint(status: int) -> None:
    error = {"error": {"code": status, "message": "no"}}
    transport, _ = _scripted({None: httpx.Response(status, json=error)})
    with _client("http://cdf.test", transport) as client:
        assert client.list_executions(["wf"]) is None


def test_list_executions_refuses_a_cursor_that_leads_back() -> None:
    transport, received = _scripted(
        {
            None: httpx.Response(200, json={"items": [], "nextCursor": "again"}),
            "again": httpx.Response(200, json={"items": [], "nextCursor": "again"}),
        }
    )
    with _client("http://cdf.test", transport) as client, pytest.raises(UnexpectedAnswer, match="nextCursor"):
        client.list_executions(["wf"])
    assert len(received) == 2
