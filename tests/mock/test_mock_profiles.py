"""The mock's faithful profiles over real HTTP: `recorded` (the shape of the execution recorded from a
real CDF cluster, shared/reference/upstream/) point by point, beside `classic`.

Time moves only through the mock's injectable clock: a SCHEDULED attempt starts when a test advances
the clock past its due time, never because the test slept.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cognite.client import CogniteClient

from cdf_workflows_mock import DEFAULT_WRITE_TOKEN, EmbeddedMock, MockConfig, MockStore
from cdf_workflows_mock.app import Dispatcher, Handlers, assemble_app
from cdf_workflows_mock.config import (
    DEFAULT_SCHEDULE_DELAY_MILLIS,
    RECORDED_START_LEAD_MILLIS,
    Profile,
    ServerShape,
)
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
)
from support.sdk import make_client

T0 = 1_700_000_000_000
DELAY = DEFAULT_SCHEDULE_DELAY_MILLIS
GENERATOR = "${gen.output.response.tasks}"


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture(scope="module")
def mock(clock: ManualClock) -> Iterator[EmbeddedMock]:
    with EmbeddedMock(MockConfig(profile=Profile.RECORDED, clock=clock)) as server:
        yield server


@pytest.fixture(scope="module")
def api(mock: EmbeddedMock) -> Iterator[MockApi]:
    client = MockApi(mock.base_url)
    yield client
    client.close()


def pass_schedule(clock: ManualClock) -> None:
    """Move the clock just far enough for what is SCHEDULED now to start."""
    clock.advance(DELAY / 1000)


def started(api: MockApi, clock: ManualClock, execution_id: str) -> JSON:
    """Let what is SCHEDULED now start, and read the execution: the read is when the mock notices
    (what the started attempts let start is then SCHEDULED as of that moment)."""
    pass_schedule(clock)
    return api.detail(execution_id)


def ids(tasks: list[JSON]) -> set[str]:
    return {task["id"] for task in tasks}


def spawn(api: MockApi, clock: ManualClock, nested: list[JSON], after: bool = True, **dyn: str) -> str:
    """Run gen → dyn (whose nested tasks gen's output lists) [→ after] until dyn has spawned them:
    they are SCHEDULED as of the clock's time now."""
    tasks = [function_task("gen"), {**dynamic_task("dyn", GENERATOR, depends_on=("gen",)), **dyn}]
    if after:
        tasks.append(function_task("after", depends_on=("dyn",)))
    execution_id = api.start(tasks)
    pass_schedule(clock)
    api.finish(execution_id, "gen", "COMPLETED", output={"response": {"tasks": nested}})
    assert latest(started(api, clock, execution_id), "dyn")["status"] == "COMPLETED"
    return execution_id


# --- the registry ----------------------------------------------------------------------------------


def test_profiles_are_a_small_registry_with_classic_the_default() -> None:
    assert [profile.value for profile in Profile] == ["classic", "recorded", "proxied"]
    assert MockConfig().profile is Profile.CLASSIC and MockConfig().shape == ServerShape()
    assert MockConfig(profile="recorded").profile is Profile.RECORDED  # type: ignore[arg-type]
    config = MockConfig.with_tokens("p", "w", "r", profile="recorded")
    assert config.profile is Profile.RECORDED
    assert config.shape.schedule_delay_millis == DELAY and config.shape.start_lead_millis == 86
    assert MockConfig(profile=Profile.RECORDED, schedule_delay_millis=7).shape.schedule_delay_millis == 7
    assert MockConfig(schedule_delay_millis=7).shape == ServerShape(schedule_delay_millis=7)


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown mock profile 'replayed'.*classic, recorded, proxied"):
        MockConfig.with_tokens(profile="replayed")
    with pytest.raises(ValueError, match="classic, recorded"):
        MockConfig(profile="Recorded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="classic, recorded"):
        Profile.parse("")


@pytest.mark.parametrize("delay", [-1, 1.5, True])
def test_schedule_delay_must_be_non_negative_milliseconds(delay: object) -> None:
    with pytest.raises(ValueError, match="schedule_delay_millis"):
        MockConfig(schedule_delay_millis=delay)  # type: ignore[arg-type]


def test_an_app_refuses_a_store_of_another_shape() -> None:
    config = MockConfig(profile=Profile.RECORDED)
    store = MockStore(config.clock, config.nonce_ttl_millis)
    with pytest.raises(ValueError, match="'recorded'"):
        assemble_app(config, store, Dispatcher(config, Handlers(store)))


# --- the execution's times ---------------------------------------------------------------------------


def test_start_time_is_86_ms_before_created_time_and_a_retry_keeps_both(
    api: MockApi, clock: ManualClock
) -> None:
    answer = api.run(api.create_version([function_task("a")]))
    assert answer["startTime"] == answer["createdTime"] - RECORDED_START_LEAD_MILLIS == clock() - 86
    detail = api.detail(answer["id"])
    assert (detail["createdTime"], detail["startTime"]) == (answer["createdTime"], answer["startTime"])

    assert api.cancel(answer["id"]).status_code == 200
    retried = api.retry(answer["id"]).json()
    assert (retried["createdTime"], retried["startTime"]) == (answer["createdTime"], answer["startTime"])


# --- SCHEDULED attempts ----------------------------------------------------------------------------


def test_a_first_attempt_is_scheduled_without_start_time_then_in_progress(
    api: MockApi, clock: ManualClock
) -> None:
    execution_id = api.start([function_task("a")])
    queued_at = clock()
    scheduled = latest(api.detail(execution_id), "a")
    assert scheduled["status"] == "SCHEDULED"
    assert "startTime" not in scheduled and "endTime" not in scheduled

    # One millisecond short of its due time it still waits.
    clock.advance((DELAY - 1) / 1000)
    assert latest(api.detail(execution_id), "a")["status"] == "SCHEDULED"
    clock.advance(0.001)
    started = latest(api.detail(execution_id), "a")
    assert started["status"] == "IN_PROGRESS" and started["id"] == scheduled["id"]
    assert started["startTime"] == queued_at + DELAY


def test_a_scheduled_attempt_cannot_be_updated(api: MockApi, clock: ManualClock) -> None:
    execution_id = api.start([function_task("a")])
    before = api.detail(execution_id)
    task_id = latest(before, "a")["id"]

    error = assert_envelope(
        api.http.post(f"/workflows/tasks/{task_id}/update", json={"status": "COMPLETED"}), 400
    )
    assert "SCHEDULED" in error["message"]
    assert api.detail(execution_id) == before

    # The update itself brings the execution up to date: no read is needed for the attempt to start.
    pass_schedule(clock)
    assert api.update(task_id, "COMPLETED")["status"] == "COMPLETED"
    assert api.detail(execution_id)["status"] == "COMPLETED"


def test_automatic_re_attempts_are_scheduled_too(api: MockApi, clock: ManualClock) -> None:
    execution_id = api.start([function_task("a", retries=1)])
    pass_schedule(clock)
    detail = api.finish(execution_id, "a", "FAILED")
    assert [task["status"] for task in attempts(detail, "a")] == ["FAILED", "SCHEDULED"]
    assert detail["status"] == "RUNNING"

    assert [task["status"] for task in attempts(started(api, clock, execution_id), "a")] == [
        "FAILED",
        "IN_PROGRESS",
    ]


def test_tasks_without_async_complete_end_when_they_start(api: MockApi, clock: ManualClock) -> None:
    execution_id = api.start(
        [function_task("a", is_async=False), function_task("b", is_async=False, depends_on=("a",))]
    )
    assert statuses(api.detail(execution_id)) == [("a", "SCHEDULED")]

    detail = started(api, clock, execution_id)
    assert statuses(detail) == [("a", "COMPLETED"), ("b", "SCHEDULED")]
    assert latest(detail, "a")["startTime"] == latest(detail, "a")["endTime"]
    assert "callId" in latest(detail, "a")["output"] and latest(detail, "b")["output"] == {}

    detail = started(api, clock, execution_id)
    assert statuses(detail) == [("a", "COMPLETED"), ("b", "COMPLETED")]
    assert detail["status"] == "COMPLETED"


def test_timeout_counts_from_the_start_not_from_the_schedule(api: MockApi, clock: ManualClock) -> None:
    execution_id = api.start([function_task("slow", timeout=5)])
    clock.advance(5)
    # Due 50 ms after it was queued, it has run 4.95 s of its 5.
    assert latest(api.detail(execution_id), "slow")["status"] == "IN_PROGRESS"

    detail = started(api, clock, execution_id)
    slow = latest(detail, "slow")
    assert detail["status"] == "TIMED_OUT" and slow["status"] == "TIMED_OUT"
    assert slow["endTime"] == slow["startTime"] + 5000


def test_cancel_cancels_scheduled_attempts_which_never_started(api: MockApi, clock: ManualClock) -> None:
    execution_id = api.start([function_task("a")])
    assert api.cancel(execution_id, "stop").status_code == 200
    cancelled = latest(api.detail(execution_id), "a")
    assert cancelled["status"] == "CANCELED" and "startTime" not in cancelled
    assert cancelled["endTime"] == clock()

    assert api.retry(execution_id).status_code == 200
    assert statuses(api.detail(execution_id)) == [("a", "CANCELED"), ("a", "SCHEDULED")]
    assert statuses(started(api, clock, execution_id)) == [("a", "CANCELED"), ("a", "IN_PROGRESS")]


# --- dynamic containers ------------------------------------------------------------------------------


def test_dynamic_container_completes_on_spawn_and_its_dependant_waits_for_the_nested_tasks(
    api: MockApi, clock: ManualClock
) -> None:
    execution_id = spawn(api, clock, [function_task("d1"), function_task("d2", depends_on=("d1",))])
    detail = api.detail(execution_id)
    dyn = latest(detail, "dyn")
    assert statuses(detail) == [("gen", "COMPLETED"), ("dyn", "COMPLETED"), ("d1", "SCHEDULED")]
    assert dyn["startTime"] == dyn["endTime"] == clock()
    assert [task["externalId"] for task in dyn["input"]["dynamic"]["tasks"]] == ["d1", "d2"]

    pass_schedule(clock)
    detail = api.finish(execution_id, "d1", "COMPLETED")
    assert statuses(detail)[-1] == ("d2", "SCHEDULED") and detail["status"] == "RUNNING"
    pass_schedule(clock)
    detail = api.finish(execution_id, "d2", "COMPLETED")
    # Only now, with every nested task done, does the task that depends on the container start; it
    # is listed with the top-level attempts, before the nested ones that started earlier.
    assert statuses(detail) == [
        ("gen", "COMPLETED"),
        ("dyn", "COMPLETED"),
        ("after", "SCHEDULED"),
        ("d1", "COMPLETED"),
        ("d2", "COMPLETED"),
    ]
    assert latest(detail, "dyn") == dyn

    pass_schedule(clock)
    assert api.finish(execution_id, "after", "COMPLETED")["status"] == "COMPLETED"


def test_nested_attempts_carry_no_parent_and_are_listed_after_top_level_ones(
    api: MockApi, clock: ManualClock
) -> None:
    execution_id = api.start(
        [
            subworkflow_task("sub", [function_task("s1")]),
            function_task("gen"),
            dynamic_task("dyn", GENERATOR, depends_on=("gen",)),
            function_task("late", depends_on=("gen",)),
        ]
    )
    started(api, clock, execution_id)
    api.finish(execution_id, "gen", "COMPLETED", output={"response": {"tasks": [function_task("d1")]}})
    detail = started(api, clock, execution_id)
    listed = [task["externalId"] for task in detail["executedTasks"]]
    # Started in the order sub, gen, s1, dyn, late, d1.
    assert listed == ["sub", "gen", "dyn", "late", "s1", "d1"]
    assert all("parentTaskExternalId" not in task for task in detail["executedTasks"])


def test_full_cycle_nested_failure_fails_the_execution_and_a_retry_retries_only_that_task(
    api: MockApi, clock: ManualClock
) -> None:
    execution_id = spawn(api, clock, [function_task("d1"), function_task("d2"), function_task("d3")])
    pass_schedule(clock)
    api.finish(execution_id, "d1", "COMPLETED")
    before = api.finish(execution_id, "d2", "FAILED_WITH_TERMINAL_ERROR")

    assert before["status"] == "FAILED" and "d2" in before["reasonForIncompletion"]
    assert dict(statuses(before)) == {
        "gen": "COMPLETED",
        "dyn": "COMPLETED",
        "d1": "COMPLETED",
        "d2": "FAILED_WITH_TERMINAL_ERROR",
        "d3": "CANCELED",
    }
    assert not attempts(before, "after")

    response = api.retry(execution_id)
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"
    after = api.detail(execution_id)
    old = ids(before["executedTasks"])
    assert [task for task in after["executedTasks"] if task["id"] in old] == before["executedTasks"]
    new = [task for task in after["executedTasks"] if task["id"] not in old]
    # SEM-TARGETED: the failed nested task and the one its failure cancelled; the container none.
    assert [(task["externalId"], task["status"]) for task in new] == [
        ("d2", "SCHEDULED"),
        ("d3", "SCHEDULED"),
    ]
    assert latest(after, "dyn") == latest(before, "dyn")

    running = started(api, clock, execution_id)
    assert [latest(running, x)["status"] for x in ("d2", "d3")] == ["IN_PROGRESS"] * 2
    api.finish(execution_id, "d2", "COMPLETED")
    detail = api.finish(execution_id, "d3", "COMPLETED")
    assert latest(detail, "after")["status"] == "SCHEDULED"
    pass_schedule(clock)
    done = api.finish(execution_id, "after", "COMPLETED")
    assert done["status"] == "COMPLETED" and len(attempts(done, "dyn")) == 1


def test_a_retry_gives_one_attempt_to_a_nested_task_at_its_limit(api: MockApi, clock: ManualClock) -> None:
    execution_id = spawn(api, clock, [function_task("d1", retries=0)], after=False)
    pass_schedule(clock)
    assert api.finish(execution_id, "d1", "FAILED")["status"] == "FAILED"

    assert api.retry(execution_id).status_code == 200
    pass_schedule(clock)
    detail = api.finish(execution_id, "d1", "FAILED")
    # Its attempt count was not reset: the new attempt failing fails the execution again.
    assert detail["status"] == "FAILED" and len(attempts(detail, "d1")) == 2
    assert latest(detail, "dyn")["status"] == "COMPLETED"


def test_a_nested_timeout_times_out_the_execution(api: MockApi, clock: ManualClock) -> None:
    execution_id = spawn(api, clock, [function_task("d1", timeout=1), function_task("d2")])
    clock.advance(1 + DELAY / 1000)
    detail = api.detail(execution_id)
    assert detail["status"] == "TIMED_OUT"
    assert dict(statuses(detail)) == {
        "gen": "COMPLETED",
        "dyn": "COMPLETED",
        "d1": "TIMED_OUT",
        "d2": "CANCELED",
    }


def test_cancel_leaves_the_container_completed_and_a_retry_restarts_its_nested_tasks(
    api: MockApi, clock: ManualClock
) -> None:
    execution_id = spawn(api, clock, [function_task("d1"), function_task("d2")])
    assert api.cancel(execution_id).status_code == 200
    before = api.detail(execution_id)
    assert [latest(before, x)["status"] for x in ("dyn", "d1", "d2")] == ["COMPLETED", "CANCELED", "CANCELED"]

    assert api.retry(execution_id).status_code == 200
    after = api.detail(execution_id)
    gained = {x: len(attempts(after, x)) - len(attempts(before, x)) for x in ("gen", "dyn", "d1", "d2")}
    assert gained == {"gen": 0, "dyn": 0, "d1": 1, "d2": 1}


def test_an_optional_container_absorbs_a_nested_failure(api: MockApi, clock: ManualClock) -> None:
    execution_id = spawn(api, clock, [function_task("d1"), function_task("d2")], onFailure="skipTask")
    pass_schedule(clock)
    detail = api.finish(execution_id, "d1", "FAILED_WITH_TERMINAL_ERROR")
    # skipTask: the workflow goes on without the container, whose attempt says so.
    assert detail["status"] == "RUNNING"
    assert [latest(detail, x)["status"] for x in ("dyn", "d1", "d2", "after")] == [
        "COMPLETED_WITH_ERRORS",
        "FAILED_WITH_TERMINAL_ERROR",
        "CANCELED",
        "SCHEDULED",
    ]
    pass_schedule(clock)
    assert api.finish(execution_id, "after", "COMPLETED")["status"] == "COMPLETED"


def test_a_dynamic_container_that_never_started_is_scheduled_again_by_a_retry(
    api: MockApi, clock: ManualClock
) -> None:
    execution_id = api.start([function_task("gen"), dynamic_task("dyn", GENERATOR, depends_on=("gen",))])
    pass_schedule(clock)
    api.finish(execution_id, "gen", "COMPLETED", output={"response": {"tasks": [function_task("d1")]}})
    assert api.cancel(execution_id).status_code == 200
    assert latest(api.detail(execution_id), "dyn")["status"] == "CANCELED"

    assert api.retry(execution_id).status_code == 200
    detail = api.detail(execution_id)
    assert statuses(detail) == [("gen", "COMPLETED"), ("dyn", "SCHEDULED")]
    detail = started(api, clock, execution_id)
    assert statuses(detail) == [("gen", "COMPLETED"), ("dyn", "COMPLETED"), ("d1", "SCHEDULED")]
    assert "startTime" in latest(detail, "dyn")


def test_subworkflow_containers_keep_the_classic_shape(api: MockApi, clock: ManualClock) -> None:
    execution_id = api.start([subworkflow_task("sub", [function_task("n1"), function_task("n2")])])
    detail = started(api, clock, execution_id)
    assert statuses(detail) == [("sub", "IN_PROGRESS"), ("n1", "SCHEDULED"), ("n2", "SCHEDULED")]
    detail = started(api, clock, execution_id)
    assert statuses(detail) == [("sub", "IN_PROGRESS"), ("n1", "IN_PROGRESS"), ("n2", "IN_PROGRESS")]
    api.finish(execution_id, "n1", "COMPLETED")
    failed = api.finish(execution_id, "n2", "FAILED_WITH_TERMINAL_ERROR")
    assert failed["status"] == "FAILED" and latest(failed, "sub")["status"] == "FAILED"

    assert api.retry(execution_id).status_code == 200
    after = api.detail(execution_id)
    assert len(attempts(after, "sub")) == 1 and latest(after, "sub")["status"] == "IN_PROGRESS"
    assert [task["status"] for task in attempts(after, "n2")] == ["FAILED_WITH_TERMINAL_ERROR", "SCHEDULED"]
    pass_schedule(clock)
    done = api.finish(execution_id, "n2", "COMPLETED")
    assert done["status"] == "COMPLETED" and latest(done, "sub")["status"] == "COMPLETED"


def test_the_classic_profile_keeps_its_shape() -> None:
    clock = ManualClock(T0)
    with EmbeddedMock(MockConfig(clock=clock)) as server:
        api = MockApi(server.base_url)
        try:
            answer = api.run(
                api.create_version([function_task("gen"), dynamic_task("dyn", GENERATOR, ("gen",))])
            )
            assert answer["startTime"] == answer["createdTime"] == T0
            detail = api.finish(
                answer["id"], "gen", "COMPLETED", output={"response": {"tasks": [function_task("d1")]}}
            )
        finally:
            api.close()
    assert statuses(detail) == [("gen", "COMPLETED"), ("dyn", "IN_PROGRESS"), ("d1", "IN_PROGRESS")]
    assert latest(detail, "d1")["parentTaskExternalId"] == "dyn" and latest(detail, "gen")["startTime"] == T0


# --- the official SDK --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk(mock: EmbeddedMock) -> CogniteClient:
    return make_client(mock.base_url, DEFAULT_WRITE_TOKEN)


def test_the_sdk_reads_and_retries_an_execution_of_the_recorded_shape(
    api: MockApi, clock: ManualClock, sdk: CogniteClient
) -> None:
    execution_id = spawn(api, clock, [function_task("d1"), function_task("d2")])
    pass_schedule(clock)
    api.finish(execution_id, "d1", "FAILED_WITH_TERMINAL_ERROR")

    failed = sdk.workflows.executions.retrieve_detailed(execution_id)
    assert failed is not None and failed.status == "failed"
    assert failed.start_time is not None and failed.start_time < failed.created_time
    tasks = {task.external_id: task for task in failed.executed_tasks}
    assert tasks["dyn"].status == "completed"
    assert tasks["d1"].status == "failed_with_terminal_error" and tasks["d2"].status == "canceled"

    retried = sdk.workflows.executions.retry(execution_id)
    assert retried.status == "running" and retried.id == execution_id
    scheduled = sdk.workflows.executions.retrieve_detailed(execution_id)
    assert scheduled is not None
    new = scheduled.executed_tasks[len(failed.executed_tasks) :]
    assert [(task.external_id, task.status, task.start_time) for task in new] == [
        ("d1", "scheduled", None),
        ("d2", "scheduled", None),
    ]

    pass_schedule(clock)
    running = sdk.workflows.executions.retrieve_detailed(execution_id)
    assert running is not None
    d1 = running.executed_tasks[-2]
    assert (d1.external_id, d1.status) == ("d1", "in_progress")
    assert sdk.workflows.tasks.update(d1.id, "completed").status == "completed"
