"""The embedded mock over real HTTP, scenario by scenario of workflow-model.md and requirements.md."""

from __future__ import annotations

import gzip
import json
import logging
import random
import re
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from cdf_workflows_mock import (
    DEFAULT_READONLY_TOKEN,
    DEFAULT_WRITE_TOKEN,
    EmbeddedMock,
    MockConfig,
    TokenGrant,
    create_app,
    serve_forever,
)
from retry_contract.contract import IDENTIFIER_MAX_LENGTH, METADATA_LIMITS
from retry_contract.domain import SESSIONS_CREATE, WORKFLOW_READ, WORKFLOW_WRITE
from support.mock_helpers import (
    JSON,
    ManualClock,
    MockApi,
    assert_envelope,
    attempts,
    dynamic_task,
    function_task,
    latest,
    statuses,
    subworkflow_task,
    unique,
)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
OTHER_PROJECT = "other-project"


@pytest.fixture(scope="module")
def mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig()) as server:
        yield server


@pytest.fixture(scope="module")
def api(mock: EmbeddedMock) -> Iterator[MockApi]:
    client = MockApi(mock.base_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def clocked_mock(clock: ManualClock) -> Iterator[EmbeddedMock]:
    """A mock whose time moves by hand, with a token valid for two projects."""
    grant = TokenGrant(
        frozenset({WORKFLOW_READ, WORKFLOW_WRITE, SESSIONS_CREATE}),
        frozenset({"contract-test", OTHER_PROJECT}),
    )
    config = MockConfig(tokens={DEFAULT_WRITE_TOKEN: grant}, nonce_ttl_seconds=60, clock=clock)
    with EmbeddedMock(config) as server:
        yield server


@pytest.fixture(scope="module")
def clocked_api(clocked_mock: EmbeddedMock) -> Iterator[MockApi]:
    client = MockApi(clocked_mock.base_url)
    yield client
    client.close()


def failed_execution(api: MockApi, tasks: list[JSON], failing: str) -> str:
    """Run the tasks and fail `failing` terminally; the execution is then FAILED."""
    execution_id = api.start(tasks)
    detail = api.finish(execution_id, failing, "FAILED_WITH_TERMINAL_ERROR")
    assert detail["status"] == "FAILED", statuses(detail)
    return execution_id


# --- 1, 2: running a version -----------------------------------------------------------------------


def test_run_creates_running_execution_with_async_tasks_in_progress(api: MockApi) -> None:
    workflow = api.create_version([function_task("a"), function_task("b")])
    execution = api.run(workflow, metadata={"team": "retry"}, input={"x": 1})

    assert execution["status"] == "RUNNING"
    assert UUID4.match(execution["id"]) and UUID4.match(execution["engineExecutionId"])
    assert execution["id"] != execution["engineExecutionId"]
    assert execution["workflowExternalId"] == workflow and execution["version"] == "1"
    assert execution["metadata"] == {"team": "retry"}
    assert isinstance(execution["createdTime"], int) and execution["createdTime"] <= execution["startTime"]
    assert "endTime" not in execution and "reasonForIncompletion" not in execution

    detail = api.detail(execution["id"])
    assert statuses(detail) == [("a", "IN_PROGRESS"), ("b", "IN_PROGRESS")]
    assert detail["input"] == {"x": 1}
    assert detail["workflowDefinition"]["hash"]
    for task in detail["executedTasks"]:
        assert UUID4.match(task["id"]) and task["taskType"] == "function"
        assert "endTime" not in task and "parentTaskExternalId" not in task


def test_execution_without_metadata_has_empty_metadata_object(api: MockApi) -> None:
    execution = api.run(api.create_version([function_task("a")]))
    assert execution["metadata"] == {}


def test_tasks_without_async_complete_at_once_with_plausible_output(api: MockApi) -> None:
    execution_id = api.start([function_task("a", is_async=False), function_task("b", is_async=False)])
    detail = api.detail(execution_id)

    assert statuses(detail) == [("a", "COMPLETED"), ("b", "COMPLETED")]
    output = latest(detail, "a")["output"]
    assert isinstance(output["callId"], int) and isinstance(output["functionId"], int)
    assert output["response"] == {}
    assert detail["status"] == "COMPLETED" and isinstance(detail["endTime"], int)


def test_dependencies_start_in_order(api: MockApi) -> None:
    execution_id = api.start(
        [
            function_task("c", depends_on=("b",)),
            function_task("b", is_async=False, depends_on=("a",)),
            function_task("a"),
        ]
    )
    assert statuses(api.detail(execution_id)) == [("a", "IN_PROGRESS")]

    detail = api.finish(execution_id, "a", "COMPLETED")
    assert statuses(detail) == [("a", "COMPLETED"), ("b", "COMPLETED"), ("c", "IN_PROGRESS")]
    assert detail["status"] == "RUNNING"

    detail = api.finish(execution_id, "c", "COMPLETED")
    assert detail["status"] == "COMPLETED"


# --- 3, 4, 5: failures -----------------------------------------------------------------------------


def test_failed_attempt_is_retried_automatically_up_to_one_plus_retries(api: MockApi) -> None:
    execution_id = api.start([function_task("a", retries=2)])
    for round_ in range(1, 3):
        detail = api.finish(execution_id, "a", "FAILED")
        assert [t["status"] for t in attempts(detail, "a")] == ["FAILED"] * round_ + ["IN_PROGRESS"]
        assert detail["status"] == "RUNNING"

    detail = api.finish(execution_id, "a", "FAILED")
    assert [t["status"] for t in attempts(detail, "a")] == ["FAILED"] * 3
    assert len({t["id"] for t in attempts(detail, "a")}) == 3
    assert detail["status"] == "FAILED"
    assert detail["reasonForIncompletion"] and isinstance(detail["endTime"], int)


def test_terminal_failure_starts_no_new_attempt(api: MockApi) -> None:
    detail = api.detail(failed_execution(api, [function_task("a", retries=3)], "a"))
    assert statuses(detail) == [("a", "FAILED_WITH_TERMINAL_ERROR")]


def test_optional_task_ends_completed_with_errors_and_workflow_goes_on(api: MockApi) -> None:
    execution_id = api.start(
        [function_task("opt", retries=0, on_failure="skipTask"), function_task("next", depends_on=("opt",))]
    )
    detail = api.finish(execution_id, "opt", "FAILED")
    assert statuses(detail) == [("opt", "COMPLETED_WITH_ERRORS"), ("next", "IN_PROGRESS")]
    assert detail["status"] == "RUNNING"

    detail = api.finish(execution_id, "next", "COMPLETED")
    assert detail["status"] == "COMPLETED"


def test_abort_fails_execution_and_cancels_other_running_tasks(api: MockApi) -> None:
    detail = api.detail(failed_execution(api, [function_task("a"), function_task("b")], "a"))
    assert statuses(detail) == [("a", "FAILED_WITH_TERMINAL_ERROR"), ("b", "CANCELED")]
    assert "a" in detail["reasonForIncompletion"]


def test_update_output_is_merged_into_the_task_output(api: MockApi) -> None:
    execution_id = api.start([function_task("a")])
    detail = api.finish(execution_id, "a", "COMPLETED", output={"response": {"n": 1}, "extra": True})
    output = latest(detail, "a")["output"]
    assert output["response"] == {"n": 1} and output["extra"] is True and "callId" in output


def test_task_update_refusals(api: MockApi) -> None:
    execution_id = api.start([function_task("sync", is_async=False), function_task("async")])
    detail = api.detail(execution_id)
    sync_id, async_id = latest(detail, "sync")["id"], latest(detail, "async")["id"]

    assert_envelope(api.http.post(f"/workflows/tasks/{sync_id}/update", json={"status": "COMPLETED"}), 400)
    assert_envelope(api.http.post(f"/workflows/tasks/{async_id}/update", json={"status": "RUNNING"}), 400)
    assert_envelope(api.http.post(f"/workflows/tasks/{async_id}/update", json={"status": "SKIPPED"}), 400)
    assert_envelope(api.http.post("/workflows/tasks/not-a-uuid/update", json={"status": "COMPLETED"}), 400)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_envelope(api.http.post(f"/workflows/tasks/{unknown}/update", json={"status": "COMPLETED"}), 404)

    api.update(async_id, "COMPLETED")
    assert_envelope(api.http.post(f"/workflows/tasks/{async_id}/update", json={"status": "FAILED"}), 400)


# --- 6: containers ---------------------------------------------------------------------------------


def test_subworkflow_nested_tasks_carry_their_parent(api: MockApi) -> None:
    execution_id = api.start(
        [
            subworkflow_task(
                "sub", [function_task("n1"), function_task("n2", is_async=False, depends_on=("n1",))]
            )
        ]
    )
    detail = api.detail(execution_id)
    assert statuses(detail) == [("sub", "IN_PROGRESS"), ("n1", "IN_PROGRESS")]
    assert latest(detail, "n1")["parentTaskExternalId"] == "sub"

    detail = api.finish(execution_id, "n1", "COMPLETED")
    assert statuses(detail) == [("sub", "COMPLETED"), ("n1", "COMPLETED"), ("n2", "COMPLETED")]
    assert detail["status"] == "COMPLETED"


# --- 7: cancel -------------------------------------------------------------------------------------


def test_cancel_terminates_with_reason_and_cancels_running_tasks(api: MockApi) -> None:
    execution_id = api.start([function_task("a"), function_task("b", is_async=False)])
    response = api.cancel(execution_id, "operator said so")

    assert response.status_code == 200
    assert response.json()["status"] == "TERMINATED"
    assert response.json()["reasonForIncompletion"] == "operator said so"
    detail = api.detail(execution_id)
    assert statuses(detail) == [("a", "CANCELED"), ("b", "COMPLETED")]
    assert isinstance(detail["endTime"], int)

    assert_envelope(api.cancel(execution_id), 409)


def test_cancel_refusals(api: MockApi) -> None:
    execution_id = api.start([function_task("a")])
    assert_envelope(api.cancel(execution_id, "x" * 501), 400)
    assert_envelope(api.http.post(f"/workflows/executions/{execution_id}/cancel", json=[1]), 400)
    assert_envelope(api.cancel("00000000-0000-4000-8000-000000000000"), 404)
    # An empty body is a cancel without a reason.
    response = api.http.post(f"/workflows/executions/{execution_id}/cancel")
    assert response.status_code == 200 and response.json()["reasonForIncompletion"]


# --- 8: retry semantics ----------------------------------------------------------------------------


def test_retry_targets_exactly_the_failed_and_cancelled_tasks(api: MockApi) -> None:
    execution_id = api.start(
        [
            function_task("done"),
            function_task("fail"),
            function_task("running"),
            function_task("opt_running", on_failure="skipTask"),
            function_task("opt_failed", retries=0, on_failure="skipTask"),
            function_task("later", is_async=False, depends_on=("fail",)),
        ]
    )
    api.finish(execution_id, "done", "COMPLETED")
    api.finish(execution_id, "opt_failed", "FAILED")
    before = api.finish(execution_id, "fail", "FAILED_WITH_TERMINAL_ERROR")
    assert before["status"] == "FAILED"
    assert dict(statuses(before)) == {
        "done": "COMPLETED",
        "fail": "FAILED_WITH_TERMINAL_ERROR",
        "running": "CANCELED",
        "opt_running": "CANCELED",
        "opt_failed": "COMPLETED_WITH_ERRORS",
    }

    response = api.retry(execution_id)
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"

    after = api.detail(execution_id)
    assert after["executedTasks"][: len(before["executedTasks"])] == before["executedTasks"]
    new = after["executedTasks"][len(before["executedTasks"]) :]
    assert [(t["externalId"], t["status"]) for t in new] == [
        ("fail", "IN_PROGRESS"),
        ("running", "IN_PROGRESS"),
    ]

    detail = api.finish(execution_id, "fail", "COMPLETED")
    assert latest(detail, "later")["status"] == "COMPLETED"
    detail = api.finish(execution_id, "running", "COMPLETED")
    assert detail["status"] == "COMPLETED"


def test_retry_of_the_suites_task_shapes(api: MockApi) -> None:
    """The layout `provisioning.ShapesPlan` builds, driven the same way, retried once."""
    execution_id = api.start(
        [
            function_task("done", retries=0),
            function_task("optional-failed", retries=0, on_failure="skipTask"),
            function_task("optional-canceled", retries=0, on_failure="skipTask"),
            function_task("waiting", retries=0),
            subworkflow_task(
                "sub",
                [function_task("sub-ok", retries=0), function_task("sub-waiting", retries=0)],
                retries=0,
            ),
            function_task("limit", retries=1),
            function_task("never", retries=0, depends_on=("limit",)),
        ]
    )
    for name, status in [("done", "COMPLETED"), ("sub-ok", "COMPLETED"), ("optional-failed", "FAILED")]:
        api.finish(execution_id, name, status)
    api.finish(execution_id, "limit", "FAILED")
    before = api.finish(execution_id, "limit", "FAILED")
    assert before["status"] == "FAILED"
    assert {
        x: latest(before, x)["status"] for x in ("optional-failed", "optional-canceled", "sub", "waiting")
    } == {
        "optional-failed": "COMPLETED_WITH_ERRORS",
        "optional-canceled": "CANCELED",
        "sub": "CANCELED",
        "waiting": "CANCELED",
    }

    assert api.retry(execution_id).status_code == 200
    after = api.detail(execution_id)
    gained = {x: len(attempts(after, x)) - len(attempts(before, x)) for x, _ in statuses(after)}
    assert {x for x, n in gained.items() if n} == {"waiting", "sub-waiting", "limit"}
    assert all(n <= 1 for n in gained.values()) and "never" not in gained
    assert latest(after, "sub")["status"] == "IN_PROGRESS"


def test_retry_changes_only_status_end_time_and_reason(api: MockApi) -> None:
    workflow = api.create_version([function_task("a")])
    execution_id = api.run(workflow, metadata={"k": "v"}, input={"i": 2})["id"]
    before = api.finish(execution_id, "a", "FAILED_WITH_TERMINAL_ERROR")
    assert "endTime" in before and "reasonForIncompletion" in before

    response = api.retry(execution_id)
    assert response.status_code == 200
    answer = response.json()
    after = api.detail(execution_id)
    for field in (
        "id",
        "workflowExternalId",
        "version",
        "createdTime",
        "metadata",
        "startTime",
        "engineExecutionId",
    ):
        assert answer[field] == before[field] == after[field], field
    assert after["input"] == before["input"] and after["workflowDefinition"] == before["workflowDefinition"]
    for body in (answer, after):
        assert body["status"] == "RUNNING"
        assert "endTime" not in body and "reasonForIncompletion" not in body


def test_retry_inside_subworkflow_retries_only_failed_nested_tasks(api: MockApi) -> None:
    execution_id = api.start(
        [
            subworkflow_task(
                "sub",
                [
                    function_task("n1"),
                    function_task("n2"),
                    function_task("n3", is_async=False, depends_on=("n2",)),
                ],
            )
        ]
    )
    api.finish(execution_id, "n1", "COMPLETED")
    before = api.finish(execution_id, "n2", "FAILED_WITH_TERMINAL_ERROR")
    assert before["status"] == "FAILED" and latest(before, "sub")["status"] == "FAILED"

    assert api.retry(execution_id).status_code == 200
    after = api.detail(execution_id)
    assert len(attempts(after, "sub")) == 1 and latest(after, "sub")["status"] == "IN_PROGRESS"
    assert len(attempts(after, "n1")) == 1
    assert [t["status"] for t in attempts(after, "n2")] == ["FAILED_WITH_TERMINAL_ERROR", "IN_PROGRESS"]
    assert latest(after, "n2")["parentTaskExternalId"] == "sub"

    done = api.finish(execution_id, "n2", "COMPLETED")
    assert latest(done, "n3")["status"] == "COMPLETED" and latest(done, "sub")["status"] == "COMPLETED"
    assert done["status"] == "COMPLETED"


def test_dynamic_tasks_resolve_from_output_and_retry_only_failed_nested(api: MockApi) -> None:
    execution_id = api.start(
        [function_task("gen"), dynamic_task("dyn", "${gen.output.response.tasks}", depends_on=("gen",))]
    )
    nested = [function_task("d1"), function_task("d2")]
    detail = api.finish(execution_id, "gen", "COMPLETED", output={"response": {"tasks": nested}})
    assert statuses(detail) == [
        ("gen", "COMPLETED"),
        ("dyn", "IN_PROGRESS"),
        ("d1", "IN_PROGRESS"),
        ("d2", "IN_PROGRESS"),
    ]
    dyn_input = latest(detail, "dyn")["input"]["dynamic"]["tasks"]
    assert [task["externalId"] for task in dyn_input] == ["d1", "d2"]
    assert {latest(detail, x)["parentTaskExternalId"] for x in ("d1", "d2")} == {"dyn"}

    api.finish(execution_id, "d1", "COMPLETED")
    failed = api.finish(execution_id, "d2", "FAILED_WITH_TERMINAL_ERROR")
    assert failed["status"] == "FAILED" and latest(failed, "dyn")["status"] == "FAILED"

    assert api.retry(execution_id).status_code == 200
    after = api.detail(execution_id)
    assert (
        len(attempts(after, "gen")) == 1
        and len(attempts(after, "dyn")) == 1
        and len(attempts(after, "d1")) == 1
    )
    assert [t["status"] for t in attempts(after, "d2")] == ["FAILED_WITH_TERMINAL_ERROR", "IN_PROGRESS"]
    assert latest(after, "dyn")["status"] == "IN_PROGRESS"

    assert api.finish(execution_id, "d2", "COMPLETED")["status"] == "COMPLETED"


def test_unresolvable_dynamic_reference_fails_the_container(api: MockApi) -> None:
    execution_id = api.start(
        [function_task("gen"), dynamic_task("dyn", "${gen.output.nothing}", depends_on=("gen",))]
    )
    detail = api.finish(execution_id, "gen", "COMPLETED")
    assert latest(detail, "dyn")["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert "dynamic" in latest(detail, "dyn")["reasonForIncompletion"]
    assert detail["status"] == "FAILED"


def test_task_at_its_limit_gets_exactly_one_attempt_per_retry(api: MockApi) -> None:
    execution_id = api.start([function_task("a", retries=1)])
    api.finish(execution_id, "a", "FAILED")
    detail = api.finish(execution_id, "a", "FAILED")
    assert detail["status"] == "FAILED" and len(attempts(detail, "a")) == 2

    assert api.retry(execution_id).status_code == 200
    assert [t["status"] for t in attempts(api.detail(execution_id), "a")] == [
        "FAILED",
        "FAILED",
        "IN_PROGRESS",
    ]
    detail = api.finish(execution_id, "a", "FAILED")
    assert detail["status"] == "FAILED"
    assert [t["status"] for t in attempts(detail, "a")] == ["FAILED"] * 3

    assert api.retry(execution_id).status_code == 200
    assert len(attempts(api.detail(execution_id), "a")) == 4


def test_retry_below_the_limit_keeps_counting_attempts(api: MockApi) -> None:
    execution_id = failed_execution(api, [function_task("a", retries=1)], "a")
    assert api.retry(execution_id).status_code == 200
    # Attempt 2 of 1 + retries: a FAILED now is final, the count was not reset by the retry.
    detail = api.finish(execution_id, "a", "FAILED")
    assert detail["status"] == "FAILED" and len(attempts(detail, "a")) == 2


def test_retry_of_cancelled_execution_restarts_cancelled_tasks(api: MockApi) -> None:
    execution_id = api.start([function_task("a"), function_task("b", depends_on=("a",))])
    assert api.cancel(execution_id, "stop").status_code == 200

    response = api.retry(execution_id)
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"
    assert statuses(api.detail(execution_id)) == [("a", "CANCELED"), ("a", "IN_PROGRESS")]
    detail = api.finish(execution_id, "a", "COMPLETED")
    assert latest(detail, "b")["status"] == "IN_PROGRESS"


def test_timed_out_task_times_out_execution_which_can_be_retried(
    clocked_api: MockApi, clock: ManualClock
) -> None:
    execution_id = clocked_api.start([function_task("slow", timeout=5), function_task("other")])
    clock.advance(6)
    detail = clocked_api.detail(execution_id)
    assert detail["status"] == "TIMED_OUT"
    assert statuses(detail) == [("slow", "TIMED_OUT"), ("other", "CANCELED")]
    assert latest(detail, "slow")["endTime"] == latest(detail, "slow")["startTime"] + 5000

    response = clocked_api.retry(execution_id)
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"
    assert [s for x, s in statuses(clocked_api.detail(execution_id)) if x == "slow"] == [
        "TIMED_OUT",
        "IN_PROGRESS",
    ]


# --- 9: refusals of the retry endpoint -------------------------------------------------------------


@pytest.mark.parametrize("state", ["RUNNING", "COMPLETED"])
def test_retry_of_running_or_completed_execution_is_409_and_changes_nothing(api: MockApi, state: str) -> None:
    execution_id = api.start([function_task("a")])
    if state == "COMPLETED":
        api.finish(execution_id, "a", "COMPLETED")
    before = api.detail(execution_id)
    assert before["status"] == state

    nonce = api.nonce()
    assert_envelope(api.retry(execution_id, nonce), 409)
    assert api.detail(execution_id) == before
    # A refused retry does not use up its nonce.
    other = failed_execution(api, [function_task("x")], "x")
    assert api.retry(other, nonce).status_code == 200


def test_unknown_execution_is_404(api: MockApi) -> None:
    unknown = "3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60"
    assert_envelope(api.retry(unknown), 404)
    assert_envelope(api.http.get(f"/workflows/executions/{unknown}"), 404)


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f600",
        "3f2c1a9e8b7d4c6e9f0a1b2c3d4e5f60",
        "{3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f}",
        "3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5fzz",
        "%00",
        "",
    ],
)
def test_malformed_execution_id_is_400(api: MockApi, bad_id: str) -> None:
    assert_envelope(api.retry(bad_id), 400)
    assert_envelope(api.http.get(f"/workflows/executions/{bad_id}"), 400)


def test_nonce_never_issued_is_400_and_nothing_is_retried(api: MockApi) -> None:
    execution_id = failed_execution(api, [function_task("a")], "a")
    before = api.detail(execution_id)
    error = assert_envelope(api.retry(execution_id, "never-issued-nonce"), 400)
    assert "nonce" in error["message"].lower()
    assert api.detail(execution_id) == before


def test_nonce_is_single_use(api: MockApi) -> None:
    first = failed_execution(api, [function_task("a")], "a")
    second = failed_execution(api, [function_task("a")], "a")
    nonce = api.nonce()
    assert api.retry(first, nonce).status_code == 200
    before = api.detail(second)
    assert_envelope(api.retry(second, nonce), 400)
    assert api.detail(second) == before

    workflow = api.create_version([function_task("a")])
    run_nonce = api.nonce()
    run = api.http.post(
        f"/workflows/{workflow}/versions/1/run", json={"authentication": {"nonce": run_nonce}}
    )
    assert run.status_code == 200
    assert_envelope(api.retry(second, run_nonce), 400)


def test_expired_nonce_is_400(clocked_api: MockApi, clock: ManualClock) -> None:
    execution_id = failed_execution(clocked_api, [function_task("a")], "a")
    nonce = clocked_api.nonce()
    clock.advance(61)
    assert "expired" in assert_envelope(clocked_api.retry(execution_id, nonce), 400)["message"]
    assert clocked_api.retry(execution_id).status_code == 200


def test_nonce_of_another_project_is_400(clocked_mock: EmbeddedMock, clocked_api: MockApi) -> None:
    execution_id = failed_execution(clocked_api, [function_task("a")], "a")
    other = MockApi(clocked_mock.base_url, project=OTHER_PROJECT)
    try:
        assert_envelope(clocked_api.retry(execution_id, other.nonce()), 400)
        # Executions belong to their project: the other project does not see this one.
        assert_envelope(other.retry(execution_id), 404)
    finally:
        other.close()


def test_concurrent_retries_exactly_one_succeeds(api: MockApi) -> None:
    execution_id = failed_execution(api, [function_task("a"), function_task("b")], "a")
    nonces = [api.nonce() for _ in range(8)]
    barrier = threading.Barrier(len(nonces))
    codes: list[int] = []
    lock = threading.Lock()

    def retry(nonce: str) -> None:
        with httpx.Client(base_url=api.http.base_url, headers=dict(api.http.headers)) as client:
            barrier.wait()
            response = client.post(
                f"/workflows/executions/{execution_id}/retry", json={"authentication": {"nonce": nonce}}
            )
        with lock:
            codes.append(response.status_code)

    threads = [threading.Thread(target=retry, args=(nonce,)) for nonce in nonces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(codes) == [200] + [409] * 7
    detail = api.detail(execution_id)
    assert [t["status"] for t in attempts(detail, "a")] == ["FAILED_WITH_TERMINAL_ERROR", "IN_PROGRESS"]
    assert [t["status"] for t in attempts(detail, "b")] == ["CANCELED", "IN_PROGRESS"]


# --- authentication and authorisation --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic bW9jazptb2Nr"},
        {"Authorization": "Bearer unknown-token"},
        {"Authorization": "Bearer"},
    ],
)
def test_unauthenticated_is_401_before_anything_else(
    mock: EmbeddedMock, api: MockApi, headers: dict[str, str]
) -> None:
    execution_id = failed_execution(api, [function_task("a")], "a")
    before = api.detail(execution_id)
    base = f"{mock.base_url}/api/v1/projects/contract-test/workflows/executions"
    with httpx.Client(headers=headers) as client:
        assert_envelope(
            client.post(f"{base}/{execution_id}/retry", json={"authentication": {"nonce": "n"}}), 401
        )
        assert_envelope(client.post(f"{base}/not-a-uuid/retry", content=b"garbage"), 401)
        assert_envelope(client.get(f"{base}/{execution_id}"), 401)
        assert_envelope(client.get(f"{mock.base_url}/api/v1/token/inspect"), 401)
    assert api.detail(execution_id) == before


def test_read_only_token_cannot_retry_and_nothing_changes(mock: EmbeddedMock, api: MockApi) -> None:
    execution_id = failed_execution(api, [function_task("a")], "a")
    before = api.detail(execution_id)
    reader = MockApi(mock.base_url, token=DEFAULT_READONLY_TOKEN)
    try:
        assert_envelope(reader.retry(execution_id, reader.nonce()), 403)
        assert_envelope(reader.retry(execution_id, "x"), 403)
        assert_envelope(reader.http.post("/workflows/executions/not-a-uuid/retry", content=b"[]"), 403)
        assert_envelope(reader.cancel(execution_id), 403)
        assert reader.detail(execution_id) == before
    finally:
        reader.close()
    assert api.detail(execution_id) == before


def test_other_project_is_403(mock: EmbeddedMock, api: MockApi) -> None:
    execution_id = failed_execution(api, [function_task("a")], "a")
    stranger = MockApi(mock.base_url, project="someone-elses-project")
    try:
        assert_envelope(stranger.http.post("/sessions", json={"items": [{"tokenExchange": True}]}), 403)
        assert_envelope(stranger.retry(execution_id, "x"), 403)
        assert_envelope(stranger.http.get(f"/workflows/executions/{execution_id}"), 403)
        assert_envelope(stranger.http.get("/no/such/route"), 403)
    finally:
        stranger.close()


def test_token_inspect(mock: EmbeddedMock) -> None:
    response = httpx.get(
        f"{mock.base_url}/api/v1/token/inspect", headers={"Authorization": f"Bearer {DEFAULT_WRITE_TOKEN}"}
    )
    assert response.status_code == 200 and response.headers["x-request-id"]
    body = response.json()
    assert body["projects"] == [{"projectUrlName": "contract-test", "groups": []}]
    assert DEFAULT_WRITE_TOKEN not in json.dumps(body)
    assert_envelope(
        httpx.post(f"{mock.base_url}/api/v1/token/inspect", headers=response.request.headers), 405
    )


# --- HTTP details ----------------------------------------------------------------------------------


def test_gzip_bodies_are_accepted(api: MockApi) -> None:
    execution_id = failed_execution(api, [function_task("a")], "a")
    body = gzip.compress(json.dumps({"authentication": {"nonce": api.nonce()}}).encode())
    response = api.http.post(
        f"/workflows/executions/{execution_id}/retry",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"

    bad = api.http.post(
        f"/workflows/executions/{execution_id}/retry",
        content=b"\x1f\x8bnot gzip",
        headers={"Content-Encoding": "gzip"},
    )
    assert_envelope(bad, 400)
    unsupported = api.http.post(
        f"/workflows/executions/{execution_id}/retry", content=b"{}", headers={"Content-Encoding": "br"}
    )
    assert_envelope(unsupported, 415)


def test_every_answer_has_json_and_a_fresh_request_id(mock: EmbeddedMock, api: MockApi) -> None:
    ok = api.http.post("/sessions", json={"items": [{"tokenExchange": True}]})
    assert ok.headers["content-type"] == "application/json"
    ids = {ok.headers["x-request-id"]}
    assert_envelope(api.http.get("/no/such/route"), 404)
    assert_envelope(httpx.get(f"{mock.base_url}/"), 404)
    assert_envelope(httpx.get(f"{mock.base_url}/api/v2/anything"), 404)
    for method in ("GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        response = api.http.request(
            method, "/workflows/executions/3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60/retry"
        )
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert response.headers["x-request-id"] not in ids
        ids.add(response.headers["x-request-id"])
        if method != "HEAD":
            assert_envelope(response, 405)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"a string"',
        b"null",
        b"{}",
        b'{"authentication": "x"}',
        b'{"authentication": null}',
        b'{"authentication": {}}',
        b'{"authentication": {"nonce": 5}}',
        b'{"authentication": {"nonce": ""}}',
        b'{"authentication": {"nonce": null}}',
        b'{"authentication": {"nonce": ["n"]}}',
        b'{"authentication": {"nonce": NaN}}',
        b"\xff\xfe\xfa",
        b"[" * 100 + b"]" * 100,
        b"[" * 5000 + b"]" * 5000,
        b'{"authentication": {"nonce": "\\ud800"}}',
    ],
)
def test_garbage_retry_bodies_are_400(api: MockApi, body: bytes) -> None:
    execution_id = failed_execution(api, [function_task("a")], "a")
    assert_envelope(api.http.post(f"/workflows/executions/{execution_id}/retry", content=body), 400)


def test_extra_fields_are_accepted(api: MockApi) -> None:
    execution_id = failed_execution(api, [function_task("a")], "a")
    body = {"authentication": {"nonce": api.nonce(), "extra": 1}, "unexpected": [1, 2]}
    assert api.http.post(f"/workflows/executions/{execution_id}/retry", json=body).status_code == 200


def test_too_large_body_is_413(api: MockApi) -> None:
    response = api.http.post(
        "/workflows/executions/3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60/retry", content=b" " * (2 * 1024 * 1024)
    )
    assert_envelope(response, 413)
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    response = api.http.post(
        "/workflows/executions/3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60/retry",
        content=bomb,
        headers={"Content-Encoding": "gzip"},
    )
    assert_envelope(response, 413)


def test_random_garbage_never_breaks_the_mock(api: MockApi, caplog: pytest.LogCaptureFixture) -> None:
    """A small seeded fuzz: whatever arrives, the answer is a 4xx envelope, never a 5xx."""
    caplog.set_level(logging.ERROR)
    rng = random.Random(20240601)
    execution_id = failed_execution(api, [function_task("a")], "a")
    paths = [
        f"/workflows/executions/{execution_id}/retry",
        f"/workflows/executions/{execution_id}/cancel",
        "/workflows/tasks/3f2c1a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60/update",
        "/workflows/versions",
        "/workflows",
        "/workflows/delete",
        "/sessions",
        "/workflows/wf/versions/1/run",
    ]
    values: list[object] = [
        None,
        True,
        0,
        -1,
        2**70,
        1.5,
        "",
        "x" * 300,
        [],
        {},
        [None],
        {"a": None},
        "\x00",
        "\ud800",
    ]
    keys = [
        "authentication",
        "nonce",
        "items",
        "tasks",
        "status",
        "reason",
        "externalId",
        "metadata",
        "input",
    ]

    def shape(depth: int) -> object:
        if depth > 3 or rng.random() < 0.3:
            return rng.choice(values)
        if rng.random() < 0.5:
            return [shape(depth + 1) for _ in range(rng.randrange(3))]
        return {rng.choice(keys): shape(depth + 1) for _ in range(rng.randrange(4))}

    for _ in range(150):
        body = json.dumps(shape(0)).encode()
        if rng.random() < 0.2:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        response = api.http.post(rng.choice(paths), content=body)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert_envelope(response, response.status_code)
    assert not [record for record in caplog.records if record.name.startswith("retry_contract")]


# --- definitions, runs and deletes -----------------------------------------------------------------


def test_run_metadata_limits(api: MockApi) -> None:
    workflow = api.create_version([function_task("a")])
    limits = METADATA_LIMITS
    at_limit = {
        f"k{i}".ljust(limits.max_key_length, "k"): "v" * limits.max_value_length
        for i in range(limits.max_pairs)
    }
    assert api.run(workflow, metadata=at_limit)["metadata"] == at_limit

    too_many = {f"k{i}": "v" for i in range(limits.max_pairs + 1)}
    long_key = {"k" * (limits.max_key_length + 1): "v"}
    long_value = {"k": "v" * (limits.max_value_length + 1)}
    for metadata in (too_many, long_key, long_value, {"k": 1}, ["k"]):
        body = {"authentication": {"nonce": api.nonce()}, "metadata": metadata}
        assert_envelope(api.http.post(f"/workflows/{workflow}/versions/1/run", json=body), 400)


def test_run_refusals(api: MockApi) -> None:
    workflow = api.create_version([function_task("a")])
    nonce = api.nonce()
    assert_envelope(
        api.http.post(f"/workflows/{workflow}/versions/2/run", json={"authentication": {"nonce": nonce}}), 404
    )
    assert_envelope(
        api.http.post(f"/workflows/{workflow}/versions/1/run", json={"authentication": {"nonce": "x"}}), 400
    )
    assert_envelope(
        api.http.post(
            f"/workflows/{workflow}/versions/1/run", json={"input": 1, "authentication": {"nonce": nonce}}
        ),
        400,
    )
    assert_envelope(
        api.http.post(f"/workflows/%20{workflow}/versions/1/run", json={"authentication": {"nonce": nonce}}),
        400,
    )
    # The refusals did not use the nonce up.
    assert (
        api.http.post(
            f"/workflows/{workflow}/versions/1/run", json={"authentication": {"nonce": nonce}}
        ).status_code
        == 200
    )


def test_identifiers_with_slashes_and_spaces_round_trip(api: MockApi) -> None:
    workflow = unique("wf with space")
    api.create_version([function_task("a")], workflow=workflow, version="v/1")
    execution = api.run(workflow.replace(" ", "%20"), version="v%2F1")
    assert execution["workflowExternalId"] == workflow and execution["version"] == "v/1"


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([function_task("a"), function_task("a")], "unique"),
        ([function_task("a", retries=11)], "retries"),
        ([function_task("a", depends_on=("b",)), function_task("b", depends_on=("a",))], "cycle"),
        ([function_task("a", depends_on=("nope",))], "nope"),
        ([{"externalId": "a", "type": "unknown", "parameters": {}}], "type"),
        ([{"externalId": "a", "type": "function", "parameters": {"function": {}}}], "externalId"),
        (
            [{"externalId": " a", "type": "function", "parameters": {"function": {"externalId": "f"}}}],
            "whitespace",
        ),
        ([function_task("x" * (IDENTIFIER_MAX_LENGTH + 1))], "characters"),
        ([dynamic_task("d", "not a reference")], "reference"),
        ([subworkflow_task("s", [function_task("s")])], "unique"),
    ],
)
def test_invalid_definitions_are_400(api: MockApi, tasks: list[JSON], message: str) -> None:
    body = {
        "items": [
            {"workflowExternalId": unique("wf"), "version": "1", "workflowDefinition": {"tasks": tasks}}
        ]
    }
    error = assert_envelope(api.http.post("/workflows/versions", json=body), 400)
    assert message in error["message"]


def test_duplicated_task_ids_are_reported(api: MockApi) -> None:
    body = {
        "items": [
            {
                "workflowExternalId": "w",
                "version": "1",
                "workflowDefinition": {"tasks": [function_task("a")] * 2},
            }
        ]
    }
    assert assert_envelope(api.http.post("/workflows/versions", json=body), 400)["duplicated"] == [
        {"externalId": "a"}
    ]


def test_delete_workflows(api: MockApi) -> None:
    workflow = api.create_version([function_task("a")])
    execution_id = api.run(workflow)["id"]
    missing = unique("missing")
    # Cognite's OpenAPI document: unknown ids are a 404 with ignoreUnknownIds=false, and nothing is deleted.
    only_missing = {"items": [{"externalId": missing}, {"externalId": workflow}]}
    error = assert_envelope(
        api.http.post("/workflows/delete", params={"ignoreUnknownIds": "false"}, json=only_missing), 404
    )
    assert error["missing"] == [{"externalId": missing}]
    assert api.http.get(f"/workflows/{workflow}").status_code == 200
    # ... and ignored when the flag says so, or says nothing (its documented default is true).
    assert api.http.post("/workflows/delete", json={"items": [{"externalId": missing}]}).json() == {}

    body = {"items": [{"externalId": workflow}, {"externalId": missing}], "ignoreUnknownIds": True}
    response = api.http.post("/workflows/delete", json=body)
    assert response.status_code == 200 and response.json() == {}
    nonce = api.nonce()
    assert_envelope(
        api.http.post(f"/workflows/{workflow}/versions/1/run", json={"authentication": {"nonce": nonce}}), 404
    )
    # Execution history outlives the workflow.
    assert api.detail(execution_id)["workflowExternalId"] == workflow


def test_sessions(api: MockApi) -> None:
    token = api.http.post("/sessions", json={"items": [{"tokenExchange": True}]}).json()["items"][0]
    assert token["status"] == "READY" and token["type"] == "TOKEN_EXCHANGE" and isinstance(token["id"], int)
    credentials = api.http.post("/sessions", json={"items": [{"clientId": "c", "clientSecret": "s"}]})
    assert credentials.json()["items"][0]["type"] == "CLIENT_CREDENTIALS"
    assert credentials.json()["items"][0]["nonce"] != token["nonce"]
    bodies: list[object] = [
        {},
        {"items": []},
        {"items": [{}]},
        {"items": [{"tokenExchange": True}] * 2},
        {"items": [1]},
    ]
    for body in bodies:
        assert_envelope(api.http.post("/sessions", json=body), 400)


def test_serve_forever_raises_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve_forever(MockConfig(), "127.0.0.1", taken.getsockname()[1])


def test_each_app_has_its_own_state() -> None:
    first, second = create_app(MockConfig()), create_app(MockConfig())
    assert first.state.store is not second.state.store


def test_config_defaults() -> None:
    config = MockConfig()
    assert config.project == "contract-test" and config.nonce_ttl_seconds == 3600
    assert set(config.tokens) == {DEFAULT_WRITE_TOKEN, DEFAULT_READONLY_TOKEN}
    custom = MockConfig.with_tokens("p", "w", "r")
    assert (
        custom.tokens["w"].projects == frozenset({"p"})
        and "workflowOrchestrationACL:WRITE" not in custom.tokens["r"].capabilities
    )
    with pytest.raises(ValueError):
        MockConfig.with_tokens("p", "same", "same")
