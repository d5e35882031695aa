"""The official SDK's everyday calls around the retry endpoint, against the embedded mock over HTTP.

Each test drives one SDK call (cognite-sdk 8.22) the way a user would, on a mock of its own with a
manual clock, so that what a list answers is exact and its order deterministic. A recorder in front of
the mock shows what the SDK really sent (how many pages it asked for, the 401 dance). The raw-HTTP
tests at the end cover what the SDK never sends: bad limits and cursors, wrong methods, other tokens.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cognite.client import AsyncCogniteClient, ClientConfig, CogniteClient, global_config
from cognite.client.credentials import Token
from cognite.client.data_classes import (
    FunctionTaskParameters,
    WorkflowDefinitionUpsert,
    WorkflowTask,
    WorkflowUpsert,
    WorkflowVersionId,
    WorkflowVersionUpsert,
)
from cognite.client.data_classes.capabilities import ProjectsScope, SessionsAcl, WorkflowOrchestrationAcl
from cognite.client.exceptions import CogniteAPIError, CogniteNotFoundError, CogniteProjectAccessError
from cognite.client.utils import _async_helpers as cognite_async_helpers

from cdf_workflows_mock import (
    DEFAULT_PROJECT,
    DEFAULT_READONLY_TOKEN,
    DEFAULT_WRITE_TOKEN,
    MockConfig,
    TokenGrant,
    create_app,
)
from cdf_workflows_mock.cdf import SESSIONS_CREATE, WORKFLOW_READ, WORKFLOW_WRITE
from cdf_workflows_mock.loopback import InProcessServer
from support.mock_helpers import ManualClock, assert_envelope

# A token the mock knows, without sessionsAcl:LIST (what listing sessions needs).
NO_SESSION_LIST_TOKEN = "no-session-list-token"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Recorder:
    """An ASGI app in front of the mock that notes every request's method, path and answer status."""

    app: Any
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, noting)

    def calls(self, method: str, path_end: str) -> list[int]:
        """The statuses answered to `method` on paths ending with `path_end`, in order."""
        return [status for m, path, status in self.seen if m == method and path.endswith(path_end)]


@dataclass
class Served:
    base_url: str
    clock: ManualClock
    recorder: Recorder

    def client(self, token: str = DEFAULT_WRITE_TOKEN) -> CogniteClient:
        return CogniteClient(self.config(token))

    def config(self, token: str = DEFAULT_WRITE_TOKEN) -> ClientConfig:
        return ClientConfig(
            client_name="retry-contract-tests",
            project=DEFAULT_PROJECT,
            credentials=Token(token),
            base_url=self.base_url,
        )

    def http(self, token: str | None = DEFAULT_WRITE_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(
            base_url=f"{self.base_url}/api/v1/projects/{DEFAULT_PROJECT}", headers=headers, timeout=10
        )


@pytest.fixture
def served() -> Iterator[Served]:
    # Otherwise constructing a client starts a thread that asks PyPI for the latest version.
    global_config.disable_pypi_version_check = True
    clock = ManualClock(start=1_700_000_000_000)
    config = MockConfig.with_tokens(DEFAULT_PROJECT, DEFAULT_WRITE_TOKEN, DEFAULT_READONLY_TOKEN, clock=clock)
    tokens = dict(config.tokens)
    tokens[NO_SESSION_LIST_TOKEN] = TokenGrant(
        frozenset({WORKFLOW_READ, WORKFLOW_WRITE, SESSIONS_CREATE}), frozenset({DEFAULT_PROJECT})
    )
    recorder = Recorder(create_app(replace(config, tokens=tokens)))
    with InProcessServer(recorder, name="recorded mock") as server:
        yield Served(server.base_url, clock, recorder)


def make_workflow(client: CogniteClient, xid: str, versions: tuple[str, ...] = ("1",)) -> str:
    client.workflows.upsert(WorkflowUpsert(external_id=xid, description=f"{xid} for the SDK tests"))
    task = WorkflowTask(
        external_id="task", parameters=FunctionTaskParameters(external_id="fn", is_async_complete=True)
    )
    for version in versions:
        client.workflows.versions.upsert(
            WorkflowVersionUpsert(
                workflow_external_id=xid,
                version=version,
                workflow_definition=WorkflowDefinitionUpsert(tasks=[task], description=f"v{version}"),
            )
        )
    return xid


def run_at(served: Served, client: CogniteClient, xid: str, version: str = "1") -> str:
    """Run a version a second after the previous event, so each execution has its own createdTime."""
    served.clock.advance(1)
    return client.workflows.executions.run(xid, version).id


# --- workflows ------------------------------------------------------------------------------------


def test_workflows_retrieve(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf-a")
    make_workflow(client, "wf/b")

    workflow = client.workflows.retrieve("wf-a")
    assert workflow is not None
    assert (workflow.external_id, workflow.description) == ("wf-a", "wf-a for the SDK tests")
    assert workflow.created_time == workflow.last_updated_time == served.clock()
    # The SDK answers None for one unknown id, which it learns from a 404.
    assert client.workflows.retrieve("never-made") is None
    assert served.recorder.calls("GET", "/workflows/never-made") == [404]
    # The SDK percent-encodes the "/", which stays one path segment.
    slashed = client.workflows.retrieve("wf/b")
    assert slashed is not None and slashed.external_id == "wf/b"
    # (Several ids at once cannot be tested: cognite-sdk 8.22 puts a one-element list into the path,
    # `/workflows/['wf-a']`, whatever the server.)


def test_workflows_list(served: Served) -> None:
    client = served.client()
    for xid in ("wf-c", "wf-a", "wf-b"):
        served.clock.advance(1)
        make_workflow(client, xid)

    # In creation order, with its limit; the SDK asks for one page of exactly that many.
    assert [w.external_id for w in client.workflows.list(limit=2)] == ["wf-c", "wf-a"]
    assert [w.external_id for w in client.workflows.list(limit=None)] == ["wf-c", "wf-a", "wf-b"]
    assert served.recorder.calls("GET", "/workflows") == [200, 200]


def test_workflows_delete_takes_its_versions_and_leaves_its_executions(served: Served) -> None:
    client = served.client()
    make_workflow(client, "doomed", versions=("1", "2"))
    make_workflow(client, "kept")
    execution_id = run_at(served, client, "doomed")

    client.workflows.delete("doomed")

    assert client.workflows.retrieve("doomed") is None
    assert client.workflows.versions.retrieve(("doomed", "1")) is None
    assert [v.workflow_external_id for v in client.workflows.versions.list()] == ["kept"]
    # The documentation says nothing of executions: the mock keeps them readable, and listed, as history.
    detailed = client.workflows.executions.retrieve_detailed(execution_id)
    assert detailed is not None and detailed.workflow_external_id == "doomed"
    assert [e.id for e in client.workflows.executions.list(WorkflowVersionId("doomed"))] == [execution_id]
    # The SDK sends ignoreUnknownIds=false by default: an unknown id is a 404, and nothing is deleted.
    with pytest.raises(CogniteNotFoundError) as caught:
        client.workflows.delete(["kept", "doomed"])
    assert caught.value.code == 404 and caught.value.not_found == [{"externalId": "doomed"}]
    assert client.workflows.retrieve("kept") is not None
    client.workflows.delete(["kept", "doomed"], ignore_unknown_ids=True)
    assert client.workflows.retrieve("kept") is None


# --- versions -------------------------------------------------------------------------------------


def test_versions_retrieve(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf", versions=("1", "v/2"))

    version = client.workflows.versions.retrieve(("wf", "v/2"))
    assert version is not None and (version.workflow_external_id, version.version) == ("wf", "v/2")
    assert version.workflow_definition.description == "vv/2"
    assert [task.external_id for task in version.workflow_definition.tasks] == ["task"]
    assert client.workflows.versions.retrieve(WorkflowVersionId("wf", "3")) is None
    assert client.workflows.versions.retrieve(("no-such-workflow", "1")) is None
    assert served.recorder.calls("GET", "/workflows/wf/versions/3") == [404]
    # (Not several at once: cognite-sdk 8.22 hands a one-element list where it expects an id.)


def test_versions_list_filters_by_workflow_and_version(served: Served) -> None:
    client = served.client()
    make_workflow(client, "first", versions=("1", "2"))
    served.clock.advance(1)
    make_workflow(client, "second", versions=("1",))

    def listed(*args: Any) -> list[tuple[str, str]]:
        return [(v.workflow_external_id, v.version) for v in client.workflows.versions.list(*args)]

    # Ordered by createdTime, as the API documents (ties by workflow and version).
    assert listed() == [("first", "1"), ("first", "2"), ("second", "1")]
    assert listed("second") == [("second", "1")]
    assert listed([("first", "2"), ("second", "1")]) == [("first", "2"), ("second", "1")]
    assert listed(WorkflowVersionId("first", "9")) == []


def test_versions_delete(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf", versions=("1", "2"))
    execution_id = run_at(served, client, "wf", "1")

    client.workflows.versions.delete(("wf", "1"))

    assert client.workflows.versions.retrieve(("wf", "1")) is None
    assert [v.version for v in client.workflows.versions.list("wf")] == ["2"]
    assert client.workflows.retrieve("wf") is not None
    detailed = client.workflows.executions.retrieve_detailed(execution_id)
    assert detailed is not None and detailed.version == "1"
    with pytest.raises(CogniteNotFoundError) as caught:
        client.workflows.versions.delete([("wf", "2"), ("wf", "1")])
    assert caught.value.not_found == [{"workflowExternalId": "wf", "version": "1"}]
    client.workflows.versions.delete([("wf", "2"), ("wf", "1")], ignore_unknown_ids=True)
    assert client.workflows.versions.list("wf") == []


# --- executions -----------------------------------------------------------------------------------


def test_executions_list_by_status(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf")
    running, cancelled, failed = (run_at(served, client, "wf") for _ in range(3))
    client.workflows.executions.cancel(cancelled, reason="for the list")
    task = client.workflows.executions.retrieve_detailed(failed)
    assert task is not None
    client.workflows.tasks.update(task.executed_tasks[0].id, "failed_with_terminal_error")

    def ids(statuses: Any) -> list[str]:
        return [e.id for e in client.workflows.executions.list(statuses=statuses)]

    assert ids("running") == [running]
    assert ids(["terminated", "failed"]) == [cancelled, failed]
    assert ids(["completed", "timed_out"]) == []
    (listed,) = client.workflows.executions.list(statuses="terminated")
    assert (listed.status, listed.reason_for_incompletion, listed.version) == (
        "terminated",
        "for the list",
        "1",
    )


def test_executions_list_by_workflow_version_and_created_time(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf", versions=("1", "2"))
    make_workflow(client, "other")
    first = run_at(served, client, "wf", "1")
    second = run_at(served, client, "wf", "2")
    other = run_at(served, client, "other")
    middle = served.clock() - 1000  # the createdTime of `second`

    def ids(*args: Any, **kwargs: Any) -> list[str]:
        return [e.id for e in client.workflows.executions.list(*args, **kwargs)]

    assert ids("wf") == [first, second]
    assert ids(("wf", "2")) == [second]
    assert ids(["other", ("wf", "1")]) == [first, other]
    # Both bounds are inclusive: "created before" start and "created after" end are what is left out.
    assert ids(created_time_start=middle) == [second, other]
    assert ids(created_time_end=middle) == [first, second]
    assert ids("wf", created_time_start=middle, created_time_end=middle, statuses="running") == [second]


def test_executions_list_pages_through_cursors(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf")
    expected = [run_at(served, client, "wf") for _ in range(5)]

    async def list_in_pages_of_two() -> list[str]:
        async_client = AsyncCogniteClient(served.config())
        # The SDK's own page size (1000) would fetch five executions at once; two makes it follow cursors.
        async_client.workflows.executions._LIST_LIMIT = 2
        return [
            e.id for e in await async_client.workflows.executions.list(WorkflowVersionId("wf"), limit=None)
        ]

    assert asyncio.run(list_in_pages_of_two()) == expected
    assert served.recorder.calls("POST", "/workflows/executions/list") == [200, 200, 200]


def test_executions_retrieve_detailed_of_a_listed_execution(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf")
    execution_id = run_at(served, client, "wf")

    (listed,) = client.workflows.executions.list(WorkflowVersionId("wf"))
    detailed = client.workflows.executions.retrieve_detailed(listed.id)
    assert detailed is not None and detailed.id == execution_id
    assert (detailed.status, detailed.created_time) == (listed.status, listed.created_time)
    assert [(t.external_id, t.status) for t in detailed.executed_tasks] == [("task", "in_progress")]
    assert served.recorder.calls("GET", f"/workflows/executions/{execution_id}") == [200]


# --- sessions, triggers, token --------------------------------------------------------------------


def test_sessions_list_and_revoke(served: Served) -> None:
    client = served.client()
    make_workflow(client, "wf")
    used = client.iam.sessions.create()
    served.clock.advance(1)
    unused = client.iam.sessions.create()
    client.workflows.executions.run("wf", "1", nonce=used.nonce)

    def listed(status: Any = None) -> list[tuple[int, str]]:
        return [(s.id, s.status) for s in client.iam.sessions.list(status=status)]

    assert listed() == [(used.id, "ACTIVE"), (unused.id, "READY")]
    assert listed("ready") == [(unused.id, "READY")]
    assert listed("revoked") == []
    (session,) = client.iam.sessions.list(status="ACTIVE")
    assert (session.type, session.creation_time) == ("TOKEN_EXCHANGE", served.clock() - 1000)

    revoked = client.iam.sessions.revoke(unused.id)
    assert (revoked.id, revoked.status) == (unused.id, "REVOKED")
    assert listed("revoked") == [(unused.id, "REVOKED")]
    assert client.iam.sessions.retrieve(unused.id).status == "REVOKED"
    # A revoked session's nonce binds nothing any more.
    with pytest.raises(CogniteAPIError) as caught:
        client.workflows.executions.run("wf", "1", nonce=unused.nonce)
    assert caught.value.code == 400 and "revoked" in caught.value.message


def test_sessions_are_listed_without_their_nonces(served: Served) -> None:
    client = served.client()
    nonces = [client.iam.sessions.create().nonce for _ in range(2)]
    with served.http() as http:
        answers = [
            # The document spells the statuses lower-case, the SDK upper-case: both are understood.
            http.get("/sessions", params={"status": "ready"}),
            http.post("/sessions/byids", json={"items": [{"id": 1}, {"id": 2}]}),
            http.post("/sessions/revoke", json={"items": [{"id": 1}]}),
        ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert not any(nonce in answer.text for nonce in nonces)
        assert all("nonce" not in item for item in answer.json()["items"])


def test_triggers_list_is_empty_and_run_history_unknown(served: Served) -> None:
    client = served.client()
    assert list(client.workflows.triggers.list()) == []
    assert served.recorder.calls("GET", "/workflows/triggers") == [200]
    with pytest.raises(CogniteNotFoundError):
        client.workflows.triggers.list_runs("no-such-trigger")


def test_token_inspect_states_the_grants(served: Served) -> None:
    def acls(token: str) -> dict[type, list[str]]:
        inspection = served.client(token).iam.token.inspect()
        assert [p.url_name for p in inspection.projects] == [DEFAULT_PROJECT]
        found = {}
        for capability in inspection.capabilities:
            scope = capability.project_scope
            assert isinstance(scope, ProjectsScope) and scope.projects == [DEFAULT_PROJECT]
            found[type(capability.capability)] = sorted(a.value for a in capability.capability.actions)
        return found

    assert acls(DEFAULT_WRITE_TOKEN) == {
        WorkflowOrchestrationAcl: ["READ", "WRITE"],
        SessionsAcl: ["CREATE", "DELETE", "LIST"],
    }
    assert acls(DEFAULT_READONLY_TOKEN) == {
        WorkflowOrchestrationAcl: ["READ"],
        SessionsAcl: ["CREATE", "LIST"],
    }


def test_unknown_token_makes_the_sdk_inspect_it_then_raise_access_error(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK keeps one inspection for 5 s for the whole process, whoever asked: another test's would
    # stand in for this one's. Its clock moves on an hour at every look here, so it never does.
    hours = itertools.count(time.time() + 3600, 3600)
    monkeypatch.setattr(cognite_async_helpers, "time", SimpleNamespace(time=lambda: next(hours)))
    stranger = served.client("not-a-known-token")
    with pytest.raises(CogniteProjectAccessError) as caught:
        stranger.workflows.list()
    # After the 401 the SDK asks token/inspect (not project-scoped), which refuses the token too.
    assert served.recorder.seen == [
        ("GET", f"/api/v1/projects/{DEFAULT_PROJECT}/workflows", 401),
        ("GET", "/api/v1/token/inspect", 401),
    ]
    assert caught.value.x_request_id and caught.value.maybe_projects is None


# --- what the SDK never sends ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/workflows", {"params": {"limit": "0"}}),
        ("GET", "/workflows", {"params": {"limit": "1001"}}),
        ("GET", "/workflows", {"params": {"limit": "ten"}}),
        ("GET", "/workflows", {"params": {"limit": "-1"}}),
        ("GET", "/workflows", {"params": [("limit", "1"), ("limit", "2")]}),
        ("GET", "/workflows", {"params": {"cursor": "not a cursor"}}),
        ("GET", "/workflows", {"params": {"cursor": ""}}),
        ("GET", "/sessions", {"params": {"limit": "1001"}}),
        ("GET", "/sessions", {"params": {"status": "expired-ish"}}),
        ("GET", "/workflows/triggers", {"params": {"limit": "0"}}),
        ("GET", "/workflows/triggers", {"params": {"cursor": "x"}}),
        ("POST", "/workflows/executions/list", {"json": {"limit": 0}}),
        ("POST", "/workflows/executions/list", {"json": {"limit": 1001}}),
        ("POST", "/workflows/executions/list", {"json": {"limit": "5"}}),
        ("POST", "/workflows/executions/list", {"json": {"limit": True}}),
        ("POST", "/workflows/executions/list", {"json": {"cursor": 7}}),
        ("POST", "/workflows/executions/list", {"json": {"filter": {"workflowFilters": []}}}),
        ("POST", "/workflows/executions/list", {"json": {"filter": {"status": ["RUNNING", "RUNNING"]}}}),
        ("POST", "/workflows/executions/list", {"json": {"filter": {"status": ["running"]}}}),
        ("POST", "/workflows/executions/list", {"json": {"filter": {"createdTimeStart": -1}}}),
        ("POST", "/workflows/executions/list", {"json": {"filter": {"statuses": ["RUNNING"]}}}),
        ("POST", "/workflows/executions/list", {}),
        ("POST", "/workflows/versions/list", {"json": {"limit": 1001}}),
        ("POST", "/workflows/versions/list", {"json": {"filter": {"workflowFilters": [{"version": "1"}]}}}),
        ("POST", "/workflows/versions/delete", {"json": {"items": [{"workflowExternalId": "wf"}]}}),
        ("POST", "/workflows/delete", {"params": {"ignoreUnknownIds": "yes"}, "json": {"items": []}}),
        ("POST", "/sessions/byids", {"json": {"items": [{"id": "1"}]}}),
        ("POST", "/sessions/revoke", {"json": {"items": []}}),
    ],
)
def test_bad_limits_cursors_and_filters_are_400(
    served: Served, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    with served.http() as http:
        assert_envelope(http.request(method, path, **kwargs), 400)


def _cursor_of(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    cursor = answer.json().get("nextCursor")
    assert isinstance(cursor, str)
    return cursor


def test_cursors_are_stable_and_bound_to_their_list_and_filter(served: Served) -> None:
    client = served.client()
    for xid in ("wf-1", "wf-2", "wf-3", "wf-4"):
        served.clock.advance(1)
        make_workflow(client, xid)
        run_at(served, client, xid)
    with served.http() as http:
        first = http.get("/workflows", params={"limit": 2})
        assert [w["externalId"] for w in first.json()["items"]] == ["wf-1", "wf-2"]
        cursor = _cursor_of(first)
        # Deleting what was already read neither repeats nor skips anything; the same cursor, the same page.
        http.post("/workflows/delete", json={"items": [{"externalId": "wf-1"}]}).raise_for_status()
        pages = [http.get("/workflows", params={"limit": 2, "cursor": cursor}) for _ in range(2)]
        assert pages[0].json() == pages[1].json() == {"items": pages[0].json()["items"]}
        assert [w["externalId"] for w in pages[0].json()["items"]] == ["wf-3", "wf-4"]

        # A cursor is the server's to read: a workflows cursor means nothing to another list...
        assert_envelope(http.get("/workflows/triggers", params={"cursor": cursor}), 400)
        assert_envelope(http.post("/workflows/executions/list", json={"cursor": cursor}), 400)
        # ... nor to the same list with another filter, nor once edited.
        running = {"filter": {"status": ["RUNNING"]}, "limit": 1}
        executions_cursor = _cursor_of(http.post("/workflows/executions/list", json=running))
        assert http.post("/workflows/executions/list", json={**running, "cursor": executions_cursor}).json()
        other_filter = {"filter": {"status": ["FAILED"]}, "cursor": executions_cursor}
        assert_envelope(http.post("/workflows/executions/list", json=other_filter), 400)
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        payload["after"] = [True, "wf-2"]
        edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
        assert_envelope(http.get("/workflows", params={"cursor": edited}), 400)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # Never an execution called "list": the fixed segment takes the path.
        ("GET", "/workflows/executions/list", "POST"),
        ("DELETE", "/workflows", "GET, POST"),
        ("PUT", "/sessions", "GET, POST"),
        ("GET", "/sessions/revoke", "POST"),
        ("GET", "/workflows/versions/list", "POST"),
        ("POST", "/workflows/wf/versions/1", "GET"),
        ("DELETE", "/workflows/wf", "GET"),
        ("POST", "/workflows/triggers/t/history", "GET"),
    ],
)
def test_wrong_methods_are_405_with_allow(served: Served, method: str, path: str, allow: str) -> None:
    with served.http() as http:
        answer = http.request(method, path)
    assert_envelope(answer, 405)
    assert answer.headers["allow"] == allow


def test_new_routes_follow_the_auth_rules(served: Served) -> None:
    make_workflow(served.client(), "wf")
    with served.http(DEFAULT_READONLY_TOKEN) as reader:
        # READ is enough to read ...
        assert reader.get("/workflows/wf").status_code == 200
        assert reader.post("/workflows/executions/list", json={}).status_code == 200
        assert reader.get("/sessions").status_code == 200
        # ... and WRITE needed to delete, checked before the body is.
        assert_envelope(reader.post("/workflows/versions/delete", json={"items": "?"}), 403)
        assert_envelope(reader.post("/workflows/delete", json={"items": [{"externalId": "wf"}]}), 403)
        assert_envelope(reader.post("/sessions/revoke", json={"items": [{"id": 1}]}), 403)
    with served.http(NO_SESSION_LIST_TOKEN) as lister:
        assert_envelope(lister.get("/sessions"), 403)
    with served.http(None) as anonymous:
        assert_envelope(anonymous.get("/workflows"), 401)
        assert_envelope(anonymous.post("/workflows/executions/list", json={}), 401)
    assert served.client().workflows.retrieve("wf") is not None
