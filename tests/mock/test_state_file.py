"""Initial state from a YAML file (`cdf_workflows_mock.state_file`): loaded through the store's own
operations, so what a client then sees over HTTP is what the API itself would have produced; every
problem in a file is one line naming the file, the entry and the field."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdf_workflows_mock import (
    DEFAULT_PROJECT,
    DEFAULT_WRITE_TOKEN,
    EmbeddedMock,
    MockConfig,
    NotFound,
    Profile,
    StateFileError,
    create_app,
    create_seeded_app,
    load_state_file,
)
from cdf_workflows_mock.state_file import InitialState, TravellingClock, apply_state, parse_state
from support.mock_helpers import JSON, ManualClock, MockApi, attempts, function_task, statuses
from support.project import CLI, EXAMPLE_FAILED_ID, EXAMPLE_STATE, readme_block

# A fixed clock: the loader's timestamps are compared exactly.
NOW = 1_750_000_000_000


@pytest.fixture(scope="module")
def example() -> InitialState:
    return load_state_file(EXAMPLE_STATE)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def serve(state: InitialState, clock: ManualClock, profile: str = "classic") -> EmbeddedMock:
    return EmbeddedMock(MockConfig(clock=clock, profile=Profile.parse(profile)), state=state)


@pytest.fixture
def api_of() -> Iterator[Any]:
    """Opens a MockApi on a running mock, closed after the test."""
    opened: list[MockApi] = []

    def open_api(mock: EmbeddedMock) -> MockApi:
        api = MockApi(mock.base_url)
        opened.append(api)
        return api

    yield open_api
    for api in opened:
        api.close()


# --- the example file --------------------------------------------------------------------------------


def test_the_readme_shows_the_example_file_as_it_is() -> None:
    assert readme_block("fake-cdf-state") == EXAMPLE_STATE.read_text(encoding="utf-8")


@pytest.mark.parametrize("profile", ["classic", "recorded"])
def test_the_example_file_gives_each_execution_its_status_through_the_model(
    example: InitialState, clock: ManualClock, api_of: Any, profile: str
) -> None:
    with serve(example, clock, profile) as mock:
        api = api_of(mock)
        ids = mock.app.state.loaded_state.execution_ids
        assert len(ids) == 5 and ids[0] == EXAMPLE_FAILED_ID and len(set(ids)) == 5
        failed, running, completed, terminated, timed_out = (api.detail(execution) for execution in ids)

    assert failed["status"] == "FAILED"
    assert failed["metadata"] == {"origin": "state-file"} and failed["input"] == {"day": "2024-05-01"}
    # load has retries: 1, so FAILED was reported on two attempts before the execution failed.
    assert statuses(failed) == [("extract", "COMPLETED"), ("load", "FAILED"), ("load", "FAILED")]
    assert failed["reasonForIncompletion"].startswith("Task 'load' ended FAILED")

    assert running["status"] == "RUNNING" and [s for _, s in statuses(running)] in (
        ["IN_PROGRESS"],
        ["SCHEDULED"],
    )
    assert completed["status"] == "COMPLETED"
    assert statuses(completed) == [("extract", "COMPLETED"), ("load", "COMPLETED")]
    assert terminated["status"] == "TERMINATED" and terminated["reasonForIncompletion"] == "stopped by hand"
    assert statuses(terminated) == [("extract", "CANCELED")]
    assert timed_out["status"] == "TIMED_OUT"
    assert statuses(timed_out) == [("extract", "COMPLETED"), ("load", "TIMED_OUT")]


def test_every_execution_ends_when_the_mock_starts_and_a_timed_out_one_began_its_timeout_before(
    example: InitialState, clock: ManualClock, api_of: Any
) -> None:
    with serve(example, clock) as mock:
        api = api_of(mock)
        details = [api.detail(execution) for execution in mock.app.state.loaded_state.execution_ids]
        # The mock's clock is the real one again: a new execution starts at the clock's time.
        fresh = api.detail(api.start([function_task("t")]))
    for detail in details:
        assert detail["createdTime"] <= NOW and detail.get("endTime", NOW) == NOW
    timed_out = details[4]
    load = attempts(timed_out, "load")[0]
    # The 600 s timeout of `load` ran out exactly now, so it started 600 s ago.
    assert load["startTime"] == NOW - 600_000 and load["endTime"] == NOW
    assert timed_out["createdTime"] == NOW - 600_000
    assert fresh["createdTime"] == NOW


def test_a_loaded_execution_equals_one_a_client_built_over_http(
    example: InitialState, clock: ManualClock, api_of: Any
) -> None:
    with serve(example, clock) as loaded, EmbeddedMock(MockConfig(clock=clock)) as empty:
        from_file = api_of(loaded).detail(EXAMPLE_FAILED_ID)
        api = api_of(empty)
        # The example file's version, as a client would send it.
        function = {"function": {"externalId": "extract-files"}, "isAsyncComplete": True}
        load = {"function": {"externalId": "load-files"}, "isAsyncComplete": True}
        tasks = [
            {"externalId": "extract", "type": "function", "parameters": function},
            {
                "externalId": "load",
                "type": "function",
                "retries": 1,
                "timeout": 600,
                "parameters": load,
                "dependsOn": [{"externalId": "extract"}],
            },
        ]
        version = {
            "workflowExternalId": "nightly-ingest",
            "version": "1",
            "workflowDefinition": {"tasks": tasks},
        }
        body = {"items": [version]}
        assert api.http.post("/workflows", json={"items": [{"externalId": "nightly-ingest"}]}).is_success
        assert api.http.post("/workflows/versions", json=body).is_success
        execution = api.run("nightly-ingest", input={"day": "2024-05-01"}, metadata={"origin": "state-file"})
        api.finish(execution["id"], "extract", "COMPLETED")
        api.finish(execution["id"], "load", "FAILED")
        by_hand = api.finish(execution["id"], "load", "FAILED")

    def comparable(detail: JSON) -> JSON:
        tasks = [
            {k: v for k, v in task.items() if k not in ("id", "output")} for task in detail["executedTasks"]
        ]
        kept = {k: v for k, v in detail.items() if k not in ("id", "engineExecutionId", "executedTasks")}
        return {**kept, "executedTasks": tasks}

    assert comparable(from_file) == comparable(by_hand)


def test_a_loaded_execution_is_retried_like_any_other(example: InitialState, api_of: Any) -> None:
    with EmbeddedMock(state=example) as mock:
        api = api_of(mock)
        assert api.retry(EXAMPLE_FAILED_ID).json()["status"] == "RUNNING"
        assert [task["status"] for task in attempts(api.detail(EXAMPLE_FAILED_ID), "load")] == [
            "FAILED",
            "FAILED",
            "IN_PROGRESS",
        ]
        # The TERMINATED one too.
        assert api.retry(mock.app.state.loaded_state.execution_ids[3]).status_code == 200


def test_a_mock_with_defects_loads_the_same_state(example: InitialState, api_of: Any) -> None:
    # Defects change the retry endpoint; provisioning through the other operations is untouched.
    config = MockConfig(defects=frozenset({"auth-any-bearer-token"}))
    with EmbeddedMock(config, state=example) as mock:
        assert api_of(mock).detail(EXAMPLE_FAILED_ID)["status"] == "FAILED"


def test_generated_ids_are_listed_in_file_order_and_differ_per_load(example: InitialState) -> None:
    first = create_seeded_app(MockConfig(), example).state.loaded_state.execution_ids
    second = create_seeded_app(MockConfig(), example).state.loaded_state.execution_ids
    assert first[0] == second[0] == EXAMPLE_FAILED_ID
    assert set(first[1:]).isdisjoint(second[1:])


def test_the_failure_status_can_be_terminal_and_an_optional_task_can_fail_in_any_status(
    clock: ManualClock, api_of: Any
) -> None:
    state = parse_state(
        {
            "workflows": [
                {
                    "externalId": "wf",
                    "versions": [
                        {
                            "version": "v1",
                            "workflowDefinition": {
                                "tasks": [
                                    function_task("a"),
                                    function_task("optional", on_failure="skipTask"),
                                ]
                            },
                        }
                    ],
                }
            ],
            "executions": [
                {
                    "workflowExternalId": "wf",
                    "version": "v1",
                    "status": "failed",  # any case, as the SDK spells it
                    "failedTasks": [{"externalId": "a", "status": "FAILED_WITH_TERMINAL_ERROR"}],
                },
                {
                    "workflowExternalId": "wf",
                    "version": "v1",
                    "status": "COMPLETED",
                    "failedTasks": ["optional"],
                },
            ],
        },
        "inline.yaml",
    )
    with serve(state, clock) as mock:
        api = api_of(mock)
        terminal, completed = (api.detail(i) for i in mock.app.state.loaded_state.execution_ids)
    assert terminal["status"] == "FAILED"
    assert statuses(terminal) == [("a", "FAILED_WITH_TERMINAL_ERROR"), ("optional", "CANCELED")]
    assert completed["status"] == "COMPLETED"
    # Three retries by default: four attempts, the last one COMPLETED_WITH_ERRORS (skipTask).
    assert [status for xid, status in statuses(completed) if xid == "optional"] == [
        "FAILED",
        "FAILED",
        "FAILED",
        "COMPLETED_WITH_ERRORS",
    ]


def test_an_empty_file_is_an_empty_state(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    state = load_state_file(path)
    assert state.workflows == () and state.executions == ()
    assert create_seeded_app(MockConfig(), state).state.loaded_state.execution_ids == ()


# --- what a broken file says ----------------------------------------------------------------------------

VERSION = "workflows:\n  - externalId: wf\n    versions:\n      - version: '1'\n        workflowDefinition:\n"
ASYNC = "parameters: {function: {externalId: f}, isAsyncComplete: true}"
TWO_TASKS = (
    VERSION
    + "          tasks:\n"
    + f"            - {{externalId: a, type: function, {ASYNC}}}\n"
    + f"            - {{externalId: b, type: function, {ASYNC}, dependsOn: [{{externalId: a}}]}}\n"
    + "            - {externalId: quick, type: function, parameters: {function: {externalId: f}}}\n"
)
ID = "0b6f6a4e-8a51-4c1e-9d8e-3f1c2a7b9d10"


def execution(fields: str) -> str:
    return TWO_TASKS + "executions:\n  - {workflowExternalId: wf, version: '1', " + fields + "}\n"


# (file content, what the one line must say after the file's name)
BROKEN = {
    "yaml": ("workflows: [\n", "not valid YAML"),
    "top-level": ("workflow: []\n", "the document, workflow: unknown field; known: executions, workflows"),
    "not-a-mapping": ("- 1\n", "the document: must be a mapping"),
    "version-number": (
        "workflows:\n  - externalId: wf\n    versions:\n"
        + "      - {version: 1, workflowDefinition: {tasks: []}}\n",
        'workflows[0].versions[0], version: must be a string, got int; quote it: version: "1"',
    ),
    "task-type": (
        VERSION + "          tasks: [{externalId: a, type: lambda, parameters: {}}]\n",
        "workflows[0].versions[0] (version '1' of 'wf'): workflowDefinition.tasks[0].type must be one of",
    ),
    "unknown-workflow-field": (
        "workflows:\n  - {externalId: wf, verisons: []}\n",
        "workflows[0], verisons: unknown field",
    ),
    "status": (
        execution("status: DONE"),
        "executions[0] (version '1' of 'wf'), status: must be one of RUNNING",
    ),
    "id": (execution("status: RUNNING, id: 1234"), "executions[0] (version '1' of 'wf'), id: 1234 is not a"),
    "duplicate-id": (
        TWO_TASKS
        + "executions:\n"
        + f"  - {{workflowExternalId: wf, version: '1', status: RUNNING, id: {ID}}}\n"
        + f"  - {{workflowExternalId: wf, version: '1', status: RUNNING, id: {ID}}}\n",
        f"executions[1] (version '1' of 'wf'), id: {ID} is also the id of executions[0]",
    ),
    "failed-without-tasks": (
        execution("status: FAILED"),
        "failedTasks: a FAILED execution needs the task(s)",
    ),
    "metadata": (
        execution("status: RUNNING, metadata: {n: 1}"),
        "metadata: 'metadata' value of \"n\" must be",
    ),
    "date": (execution("status: RUNNING, input: {day: 2024-05-01}"), "executions[0].input.day: a YAML date"),
    "reason": (execution("status: FAILED, failedTasks: [a], reason: x"), "reason: is the cancel reason"),
    "failure-status": (
        execution("status: FAILED, failedTasks: [{externalId: a, status: TIMED_OUT}]"),
        "failedTasks[0].status: must be FAILED, FAILED_WITH_TERMINAL_ERROR",
    ),
    "not-started": (
        execution("status: FAILED, failedTasks: [b]"),
        "executions[0] (version '1' of 'wf'), failedTasks[0]: task 'b' has not started at this point; "
        "list the tasks it waits for in completedTasks before it",
    ),
    "no-such-task": (
        execution("status: RUNNING, completedTasks: [c]"),
        "completedTasks[0]: the workflow version has no task 'c'",
    ),
    "not-async": (
        execution("status: RUNNING, completedTasks: [quick]"),
        "completedTasks[0]: task 'quick' does not have isAsyncComplete: it ends by itself",
    ),
    "status-not-reached": (
        execution("status: RUNNING, failedTasks: [{externalId: a, status: FAILED_WITH_TERMINAL_ERROR}]"),
        "status: its steps leave the execution FAILED, not RUNNING",
    ),
    "unknown-version": (
        TWO_TASKS + "executions:\n  - {workflowExternalId: wf, version: '2', status: RUNNING}\n",
        "executions[0] (version '2' of 'wf'): Workflow \"wf\" version \"2\" not found",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_file_is_one_line_naming_the_file_the_entry_and_the_field(tmp_path: Path, case: str) -> None:
    content, expected = BROKEN[case]
    path = tmp_path / "state.yaml"
    path.write_text(content)
    with pytest.raises(StateFileError) as caught:
        create_seeded_app(MockConfig(), load_state_file(path))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match=r"missing\.yaml: cannot read the state file: No such file"):
        load_state_file(tmp_path / "missing.yaml")


def test_a_broken_file_changes_nothing_in_the_real_store(tmp_path: Path) -> None:
    # The rehearsal finds the problem of the second execution before the first one is built for real.
    path = tmp_path / "state.yaml"
    path.write_text(
        TWO_TASKS
        + "executions:\n"
        + f"  - {{workflowExternalId: wf, version: '1', status: RUNNING, id: {ID}}}\n"
        + "  - {workflowExternalId: wf, version: '1', status: FAILED, failedTasks: [b]}\n"
    )
    clock = TravellingClock(ManualClock(NOW))
    config = MockConfig(clock=clock)
    store = create_app(config).state.store
    with pytest.raises(StateFileError, match=r"executions\[1\]"):
        apply_state(store, config, load_state_file(path), clock)
    with pytest.raises(NotFound):
        store.get_execution(DEFAULT_PROJECT, ID)


# --- the command line -------------------------------------------------------------------------------------


def test_the_mock_command_refuses_a_broken_state_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(execution("status: FAILED"))
    result = subprocess.run(
        [*CLI, "mock", "--port", "0", "--state-file", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "failedTasks: a FAILED execution needs" in result.stderr and "Traceback" not in result.stderr


def test_the_standalone_mocks_default_token_reads_loaded_state(example: InitialState, api_of: Any) -> None:
    # What `retry-contract mock --state-file` serves: the documented default tokens and project.
    with EmbeddedMock(MockConfig(), state=example) as mock:
        api = MockApi(mock.base_url, DEFAULT_WRITE_TOKEN, DEFAULT_PROJECT)
        try:
            assert api.detail(EXAMPLE_FAILED_ID)["workflowExternalId"] == "nightly-ingest"
        finally:
            api.close()
