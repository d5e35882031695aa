"""The judges against real evidence: an execution recorded from a CDF cluster (spec/upstream/).

The recording shows a faithful server that differs from the mock: startTime before createdTime,
dynamic containers COMPLETED while their nested tasks run, nested attempts without
parentTaskExternalId, executedTasks not in start order. The judges must raise no false alarm on it
or on retries shaped like it, and still catch what a wrong retry would do to it.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from retry_contract import contract, execution_view
from retry_contract.checks.openapi import SpecIndex
from retry_contract.checks.retry_effects import retry_effects, took_effect
from retry_contract.checks.success import success_response
from retry_contract.exchange import Exchange
from support.project import ROOT

RECORDING = ROOT / "spec" / "upstream" / "recorded-workflow-execution.json"
MATRIX = "testMatrixCalculation"  # a dynamic container, abortWorkflow
APPLICATION = "applicationExecution"  # a dynamic container, optional (skipTask)
AT_LIMIT = "generate_test_matrix_03d5de1e-01a7-4de9-9f70-302b85d682a3"  # retries 1
CANCELED = "generate_test_matrix_77e0ba96-9d52-4fc3-b2e2-63e12d581c3b"
COMPLETED_NESTED = "generate_test_matrix_df17612f-cdca-479b-9589-a348d6dfaf5b"
OPTIONAL_NESTED = "preprocessor_b0b3d8e1-e3a2-4529-a178-24b2b430886c"
NEVER_STARTED = "totalTestMatrixCalculation"
EXECUTION_FIELDS = (
    "id",
    "workflowExternalId",
    "version",
    "status",
    "engineExecutionId",
    "createdTime",
    "startTime",
    "endTime",
    "metadata",
    "reasonForIncompletion",
)

Detailed = dict[str, Any]


def recording() -> Detailed:
    loaded: Detailed = json.loads(RECORDING.read_text())
    return loaded


def _attempt(detailed: Detailed, name: str) -> dict[str, Any]:
    return next(a for a in detailed["executedTasks"] if a["externalId"] == name)


def _new_attempt(template: dict[str, Any], number: int, status: str, start: int | None) -> dict[str, Any]:
    attempt = {**copy.deepcopy(template), "id": f"00000000-0000-4000-8000-{number:012d}", "status": status}
    for field in ("endTime", "output", "reasonForIncompletion"):
        attempt.pop(field, None)
    if start is None:
        attempt.pop("startTime", None)  # SCHEDULED: not started yet
    else:
        attempt["startTime"] = start
    return attempt


def failed_execution() -> Detailed:
    """The recording as it would read had one nested task of the matrix container failed at its
    limit: the workflow FAILED, a sibling CANCELED, the container's own attempt still COMPLETED."""
    before = recording()
    before.update(status="FAILED", reasonForIncompletion="Task failed", endTime=1696240800000)
    tasks = before["executedTasks"]
    before["executedTasks"] = [a for a in tasks if a["externalId"] != NEVER_STARTED]
    first = _attempt(before, AT_LIMIT)
    first.update(status="FAILED", endTime=first["startTime"] + 1000)
    second = _new_attempt(first, 1, "FAILED", first["startTime"] + 2000)
    second["endTime"] = second["startTime"] + 1000
    before["executedTasks"].append(second)
    _attempt(before, CANCELED).update(status="CANCELED", endTime=1696240800000)
    return before


def retried(before: Detailed) -> Detailed:
    """A faithful answer to a retry: one new attempt each for the failed and the cancelled nested
    task (one still SCHEDULED), nothing for the container, the execution RUNNING."""
    after = copy.deepcopy(before)
    after.update(status="RUNNING", endTime=None, reasonForIncompletion=None)
    after["executedTasks"] += [
        _new_attempt(_attempt(before, AT_LIMIT), 2, "SCHEDULED", None),
        _new_attempt(_attempt(before, CANCELED), 3, "IN_PROGRESS", 1696240900000),
    ]
    return after


def _with_parents(detailed: Detailed) -> Detailed:
    """The same execution from a newer server that names each nested attempt's container."""
    shaped = copy.deepcopy(detailed)
    for container in (MATRIX, APPLICATION):
        nested = {t["externalId"] for t in _attempt(shaped, container)["input"]["dynamic"]["tasks"]}
        for attempt in shaped["executedTasks"]:
            if attempt["externalId"] in nested:
                attempt["parentTaskExternalId"] = container
    return shaped


def _shuffled(detailed: Detailed, seed: int) -> Detailed:
    shaped = copy.deepcopy(detailed)
    random.Random(seed).shuffle(shaped["executedTasks"])
    return shaped


SHAPES: dict[str, Callable[[Detailed], Detailed]] = {
    "as recorded": lambda d: d,
    "with parentTaskExternalId": _with_parents,
    "executedTasks shuffled": lambda d: _shuffled(d, 1),
    "shuffled, with parents": lambda d: _shuffled(_with_parents(d), 2),
}


def retry_exchange(before: Detailed) -> Exchange:
    return Exchange(
        method="POST",
        url=f"http://cdf.test/api/v1/projects/p/workflows/executions/{before['id']}/retry",
        request_headers={},
        request_body=b"{}",
        status=200,
        execution_id=str(before["id"]),
    )


def verdicts(before: Detailed, after: Detailed) -> dict[str, list[str]]:
    """Requirement -> problems (empty when it passed) for one retry."""
    found: dict[str, list[str]] = {}
    for observation in retry_effects(before, after, retry_exchange(before)):
        found.setdefault(observation.requirement, [])
        if not observation.passed:
            found[observation.requirement].append(observation.message)
    return found


# --- the view reads the recording as it is ------------------------------------------------------


def test_nested_tasks_are_found_without_parent_task_external_id() -> None:
    detailed = recording()
    assert not any("parentTaskExternalId" in a for a in detailed["executedTasks"])
    parents = execution_view.parents(detailed)
    assert parents[AT_LIMIT] == MATRIX
    assert parents[OPTIONAL_NESTED] == APPLICATION
    assert {MATRIX, APPLICATION} <= execution_view.container_tasks(detailed)
    assert execution_view.retries_allowed(detailed, AT_LIMIT) == 1
    assert OPTIONAL_NESTED in execution_view.optional_tasks(detailed)
    assert execution_view.is_async_complete(detailed, "trigger_3ace0bf8-9dbc-44cc-a937-cd1b775c02fc")


def test_latest_attempt_is_the_one_started_last_whatever_the_order() -> None:
    before = failed_execution()
    reversed_order = {**before, "executedTasks": list(reversed(before["executedTasks"]))}
    for shaped in (before, reversed_order):
        assert execution_view.latest(shaped)[AT_LIMIT]["id"].endswith("000000000001")
    scheduled = retried(before)
    assert execution_view.latest(scheduled)[AT_LIMIT]["status"] == "SCHEDULED"


def test_the_recorded_execution_validates_against_the_spec_but_for_its_integer_metadata_value() -> None:
    """The one known exception: `best_number: 42`, almost certainly an edit for the SDK's own test
    (upstream/README.md), not a server's answer."""
    body = {k: v for k, v in recording().items() if k in EXECUTION_FIELDS}
    schema = SpecIndex(contract.raw_spec()).resolve(contract.schema("WorkflowExecution"))
    validator = jsonschema.Draft202012Validator(
        {**contract.raw_spec(), **schema}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [(list(e.absolute_path), e.validator) for e in validator.iter_errors(body)]
    assert errors == [(["metadata", "best_number"], "type")]
    body["metadata"]["best_number"] = "42"
    assert not list(validator.iter_errors(body))


def test_start_time_before_created_time_raises_no_alarm() -> None:
    body = {k: v for k, v in recording().items() if k in EXECUTION_FIELDS}
    body.update(status="RUNNING", metadata={"supervisor": "Jimmy"})
    assert body["startTime"] < body["createdTime"]
    before = {**body, "status": "FAILED"}
    exchange = retry_exchange(body)
    exchange.response_headers = {"content-type": "application/json"}
    exchange.response_body = json.dumps(body).encode()
    exchange.before = before
    assert [o for o in success_response(exchange) if not o.passed] == []


# --- SEM-* on retries shaped like the recording -----------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_a_faithful_retry_of_the_recorded_shape_passes_every_sem_judge(shape: str) -> None:
    before, after = SHAPES[shape](failed_execution()), SHAPES[shape](retried(failed_execution()))
    assert took_effect(before, after)
    found = verdicts(before, after)
    assert {"SEM-TARGETED", "SEM-NESTED", "SEM-LIMIT", "SEM-COMPLETED", "SEM-OPTIONAL"} <= set(found)
    assert {r: p for r, p in found.items() if p} == {}


def test_a_task_that_never_ran_may_start_when_its_dependencies_completed() -> None:
    before = failed_execution()
    after = retried(before)
    template = _attempt(recording(), NEVER_STARTED)
    after["executedTasks"].append(_new_attempt(template, 4, "IN_PROGRESS", 1696240950000))
    assert verdicts(before, after)["SEM-TARGETED"] == []


def _gain(after: Detailed, name: str, status: str = "IN_PROGRESS") -> Detailed:
    after["executedTasks"].append(_new_attempt(_attempt(after, name), 9, status, 1696240990000))
    return after


def _lose(after: Detailed, name: str) -> Detailed:
    newest = execution_view.latest(after)[name]["id"]
    after["executedTasks"] = [a for a in after["executedTasks"] if a["id"] != newest]
    return after


WRONG_RETRIES: dict[str, tuple[Callable[[Detailed], Detailed], set[str]]] = {
    "the container gets a new attempt": (lambda a: _gain(a, MATRIX), {"SEM-NESTED", "SEM-COMPLETED"}),
    "the failed nested task at its limit gets none": (
        lambda a: _lose(a, AT_LIMIT),
        {"SEM-TARGETED", "SEM-NESTED", "SEM-LIMIT"},
    ),
    "the task at its limit gets two": (
        lambda a: _gain(a, AT_LIMIT),
        {"SEM-TARGETED", "SEM-NESTED", "SEM-LIMIT"},
    ),
    "a completed nested task runs again": (lambda a: _gain(a, COMPLETED_NESTED), {"SEM-COMPLETED"}),
    "an optional nested task runs again": (
        lambda a: _gain(a, OPTIONAL_NESTED),
        {"SEM-COMPLETED", "SEM-OPTIONAL"},
    ),
    "an optional container runs again": (
        lambda a: _gain(a, APPLICATION),
        {"SEM-OPTIONAL", "SEM-COMPLETED", "SEM-NESTED"},
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("wrong", WRONG_RETRIES)
def test_a_wrong_retry_of_the_recorded_shape_fails_its_requirements(shape: str, wrong: str) -> None:
    change, broken = WRONG_RETRIES[wrong]
    before = SHAPES[shape](failed_execution())
    after = SHAPES[shape](change(retried(failed_execution())))
    failed = {requirement for requirement, problems in verdicts(before, after).items() if problems}
    assert failed == broken
