"""Helpers for the tests of the embedded mock: a controllable clock, task builders, an HTTP client.

Everything goes through the mock's real HTTP API (no back door into its store), so these tests
exercise the same paths the suite and the SDK use.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from cdf_workflows_mock import epoch_millis

# The client of the mock and the readings of an execution that the defects' probes use too.
from cdf_workflows_mock.defects.probing import MockApi as MockApi
from cdf_workflows_mock.defects.probing import assert_envelope as assert_envelope
from cdf_workflows_mock.defects.probing import attempts as attempts
from cdf_workflows_mock.defects.probing import latest as latest

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


def statuses(detail: JSON) -> list[tuple[str, str]]:
    return [(task["externalId"], task["status"]) for task in detail["executedTasks"]]
