"""Races on ONE execution over HTTP: simultaneous retries, cancels, task updates and reads.

Threads wait at a barrier and then all send at once. Whatever order the mock serves them in, the
outcome must be one some serial order explains (SEM-CONCURRENT): of simultaneous retries of a
retryable execution exactly one succeeds and the rest are refused 409 (the catalogue allows 400 or
409 for a state that cannot be retried; the mock says 409); each failed task gets exactly one new
attempt per successful retry; an attempt is reported by exactly one update; every read sees the
execution before or after a change, never half-way; and nothing is ever a 5xx.

Cancels make an execution retryable again (TERMINATED), so with cancels in the race more than one
retry may succeed: successful retries and successful cancels then alternate, which is what is checked.
Each test runs a fixed number of rounds of a fixed number of threads, every request and every join
with a timeout.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from cdf_workflows_mock.errors import Conflict
from support.mock_helpers import JSON, MockApi, attempts, function_task, latest

EXECUTION_STATUSES = {"RUNNING", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"}
TASK_STATUSES = {
    "IN_PROGRESS",
    "CANCELED",
    "FAILED",
    "FAILED_WITH_TERMINAL_ERROR",
    "COMPLETED",
    "COMPLETED_WITH_ERRORS",
    "SCHEDULED",
    "TIMED_OUT",
    "SKIPPED",
}
UNFINISHED = {"IN_PROGRESS", "SCHEDULED"}
RETRYABLE_TASK = {"CANCELED", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "TIMED_OUT"}
REQUEST_TIMEOUT = 20.0
# Every thread of a round must be done by then, or the test fails (never hangs).
ROUND_TIMEOUT = 25.0
# The most threads in one race.
RACERS = 48

# a and b cannot be retried automatically; c can, many times (its FAILED updates start new attempts).
TASKS = [function_task("a", retries=0), function_task("b", retries=0), function_task("c", retries=10)]
RETRIES = {"a": 0, "b": 0, "c": 10}


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
def racer(api: MockApi) -> Iterator[httpx.Client]:
    """One client for every thread of a race: httpx's pool is thread-safe and gives simultaneous
    requests a connection each (a client per thread would cost ~0.1 s each to build)."""
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    with httpx.Client(
        base_url=api.http.base_url, headers=dict(api.http.headers), timeout=REQUEST_TIMEOUT, limits=limits
    ) as client:
        yield client


@dataclass(frozen=True)
class Outcome:
    kind: str  # retry, cancel, update, read
    target: str  # for updates: the attempt id
    status: int
    body: Any


Job = Callable[[httpx.Client], Outcome]


def race(client: httpx.Client, jobs: list[Job]) -> list[Outcome]:
    """Run every job in its own thread, all released at once; their outcomes in the jobs' order."""
    assert len(jobs) <= RACERS
    barrier = threading.Barrier(len(jobs), timeout=REQUEST_TIMEOUT)
    outcomes: list[Outcome | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int, job: Job) -> None:
        try:
            barrier.wait()
            outcomes[index] = job(client)
        except BaseException as error:  # reported by the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index, job), daemon=True) for index, job in enumerate(jobs)]
    deadline = time.monotonic() + ROUND_TIMEOUT
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    assert not any(thread.is_alive() for thread in threads), "a request of the race did not finish in time"
    assert not errors, errors
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(jobs)
    for outcome in done:
        assert outcome.status < 500, outcome
        if outcome.status >= 400:
            assert outcome.body["error"]["code"] == outcome.status, outcome
    return done


def _json(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()


def retry_job(execution_id: str, nonce: str) -> Job:
    def job(client: httpx.Client) -> Outcome:
        body = {"authentication": {"nonce": nonce}}
        response = client.post(f"/workflows/executions/{execution_id}/retry", json=body)
        return Outcome("retry", execution_id, response.status_code, _json(response))

    return job


def cancel_job(execution_id: str) -> Job:
    def job(client: httpx.Client) -> Outcome:
        response = client.post(f"/workflows/executions/{execution_id}/cancel", json={"reason": "race"})
        return Outcome("cancel", execution_id, response.status_code, _json(response))

    return job


def update_job(task_id: str, status: str) -> Job:
    def job(client: httpx.Client) -> Outcome:
        response = client.post(f"/workflows/tasks/{task_id}/update", json={"status": status})
        return Outcome("update", task_id, response.status_code, _json(response))

    return job


def read_job(execution_id: str) -> Job:
    def job(client: httpx.Client) -> Outcome:
        response = client.get(f"/workflows/executions/{execution_id}")
        return Outcome("read", execution_id, response.status_code, _json(response))

    return job


def codes(outcomes: list[Outcome], kind: str) -> Counter[int]:
    return Counter(outcome.status for outcome in outcomes if outcome.kind == kind)


def assert_consistent(detail: JSON) -> None:
    """What any single look at an execution of TASKS must show, whatever raced before it."""
    status = detail["status"]
    assert status in EXECUTION_STATUSES, status
    running = status == "RUNNING"
    assert ("endTime" in detail) is not running, detail
    if running:
        assert "reasonForIncompletion" not in detail, detail
    executed = detail["executedTasks"]
    assert len({task["id"] for task in executed}) == len(executed), "an attempt id appears twice"
    unfinished = 0
    for external_id in RETRIES:
        mine = attempts(detail, external_id)
        assert mine, f"task {external_id} has no attempt"
        assert all(task["status"] in TASK_STATUSES for task in mine), mine
        # Only a task's latest attempt may still be going on.
        assert all(task["status"] not in UNFINISHED for task in mine[:-1]), mine
        for task in mine:
            assert ("endTime" in task) is (task["status"] not in UNFINISHED), task
            if "endTime" in task and "startTime" in task:
                assert task["endTime"] >= task["startTime"], task
        unfinished += mine[-1]["status"] in UNFINISHED
    # RUNNING means something is still to happen; a finished execution leaves nothing running.
    assert (unfinished > 0) is running, (status, [(t["externalId"], t["status"]) for t in executed])
    if status == "FAILED":
        assert any(latest(detail, xid)["status"] in RETRYABLE_TASK for xid in RETRIES), executed


def failed_execution(api: MockApi) -> str:
    execution_id = api.start(TASKS)
    detail = api.finish(execution_id, "a", "FAILED_WITH_TERMINAL_ERROR")
    assert detail["status"] == "FAILED"
    return execution_id


# --- a storm of retries ---------------------------------------------------------------------------

STORM_ROUNDS = 5
STORM_RETRIES = 24


def test_of_simultaneous_retries_exactly_one_succeeds(api: MockApi, racer: httpx.Client) -> None:
    for _ in range(STORM_ROUNDS):
        execution_id = failed_execution(api)
        before = api.detail(execution_id)
        stale = [task["id"] for task in before["executedTasks"]]  # all ended: FAILED or CANCELED
        jobs = [retry_job(execution_id, api.nonce()) for _ in range(STORM_RETRIES)]
        jobs += [update_job(task_id, "COMPLETED") for task_id in stale * 2]
        jobs += [read_job(execution_id) for _ in range(6)]
        outcomes = race(racer, jobs)

        assert codes(outcomes, "retry") == {200: 1, 409: STORM_RETRIES - 1}
        assert codes(outcomes, "update") == {400: len(stale) * 2}  # an ended attempt stays ended
        (success,) = [o for o in outcomes if o.kind == "retry" and o.status == 200]
        assert success.body["id"] == execution_id and success.body["status"] == "RUNNING"
        for refused in (o for o in outcomes if o.kind == "retry" and o.status == 409):
            assert "RUNNING" in refused.body["error"]["message"]
        after = api.detail(execution_id)
        assert_consistent(after)
        for external_id in RETRIES:
            # Exactly one new attempt each, started by the one successful retry.
            assert [t["status"] for t in attempts(after, external_id)][1:] == ["IN_PROGRESS"]
        # A read saw the execution either before the retry or after it, nothing in between.
        for read in (o for o in outcomes if o.kind == "read"):
            assert read.status == 200
            assert_consistent(read.body)
            assert read.body["executedTasks"] in (before["executedTasks"], after["executedTasks"])


# --- retries, cancels and updates together -------------------------------------------------------

MIXED_ROUNDS = 6


# Rounds of concurrent requests (seconds): out of the fast tier.
@pytest.mark.slow
def test_retries_cancels_and_updates_of_one_execution_stay_consistent(
    api: MockApi, racer: httpx.Client
) -> None:
    for _ in range(MIXED_ROUNDS):
        execution_id = failed_execution(api)

        # Phase 1: retries against cancels (and updates of attempts that have ended, and reads).
        stale = [task["id"] for task in api.detail(execution_id)["executedTasks"]]
        jobs = [retry_job(execution_id, api.nonce()) for _ in range(10)]
        jobs += [cancel_job(execution_id) for _ in range(4)]
        jobs += [update_job(task_id, "FAILED") for task_id in stale]
        jobs += [read_job(execution_id) for _ in range(4)]
        outcomes = race(racer, jobs)
        retried, cancelled = codes(outcomes, "retry"), codes(outcomes, "cancel")
        assert set(retried) <= {200, 409} and set(cancelled) <= {200, 409}
        assert codes(outcomes, "update") == {400: len(stale)}
        # From FAILED, each success flips the execution: retry (→ RUNNING), cancel (→ TERMINATED), ...
        successful_retries = retried[200]
        assert successful_retries >= 1
        assert successful_retries - cancelled[200] in (0, 1), (retried, cancelled)
        detail = api.detail(execution_id)
        assert_consistent(detail)
        assert detail["status"] == ("RUNNING" if successful_retries > cancelled[200] else "TERMINATED")
        for external_id in RETRIES:
            # Every successful retry gave each task exactly one new attempt (all had ended each time).
            assert len(attempts(detail, external_id)) == 1 + successful_retries
        for outcome in outcomes:
            if outcome.status == 200 and outcome.kind in ("retry", "cancel"):
                assert outcome.body["status"] == ("RUNNING" if outcome.kind == "retry" else "TERMINATED")
            if outcome.kind == "read":
                assert_consistent(outcome.body)

        if detail["status"] == "TERMINATED":
            assert api.retry(execution_id).status_code == 200
            successful_retries += 1

        # Phase 2: the running attempts are reported, several times each and each differently,
        # while the execution is retried and cancelled.
        running = {xid: latest(api.detail(execution_id), xid) for xid in RETRIES}
        assert all(task["status"] == "IN_PROGRESS" for task in running.values())
        reports = {"a": "COMPLETED", "b": "FAILED_WITH_TERMINAL_ERROR", "c": "FAILED"}
        jobs = [update_job(running[xid]["id"], reports[xid]) for xid in RETRIES for _ in range(3)]
        jobs += [retry_job(execution_id, api.nonce()) for _ in range(6)]
        jobs += [cancel_job(execution_id) for _ in range(3)]
        jobs += [read_job(execution_id) for _ in range(4)]
        outcomes = race(racer, jobs)
        assert set(codes(outcomes, "update")) <= {200, 400}
        detail = api.detail(execution_id)
        assert_consistent(detail)
        by_id = {task["id"]: task for task in detail["executedTasks"]}
        b_failed_it = False
        for xid, task in running.items():
            reported = [
                o for o in outcomes if o.kind == "update" and o.target == task["id"] and o.status == 200
            ]
            # An attempt is reported at most once; if nobody managed to, something cancelled it first.
            assert len(reported) <= 1, reported
            expected = reports[xid] if reported else "CANCELED"
            assert by_id[task["id"]]["status"] == expected, (xid, by_id[task["id"]])
            b_failed_it |= xid == "b" and bool(reported)
        retried, cancelled = codes(outcomes, "retry"), codes(outcomes, "cancel")
        successful_retries += retried[200]
        # From RUNNING, ends (a cancel, or b's terminal failure) and retries alternate.
        ends = cancelled[200] + int(b_failed_it)
        assert ends - retried[200] in (0, 1), (ends, retried, cancelled)
        assert (detail["status"] == "RUNNING") is (ends == retried[200]), (detail["status"], ends, retried)
        for xid, retries in RETRIES.items():
            # Never more than the first attempt, the automatic ones and one per successful retry.
            assert len(attempts(detail, xid)) <= 1 + retries + successful_retries, attempts(detail, xid)
        for outcome in outcomes:
            if outcome.kind == "read":
                assert_consistent(outcome.body)


def test_the_store_keeps_simultaneous_retries_apart_when_threads_call_it(
    mock: EmbeddedMock, api: MockApi
) -> None:
    """The HTTP handlers call the store on the event loop, so over HTTP its lock is never contended;
    a server built on the store with worker threads must still get exactly one retry through."""
    store = mock.app.state.store
    execution_id = failed_execution(api)
    nonces = [api.nonce() for _ in range(16)]
    barrier = threading.Barrier(len(nonces))
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def retry(nonce: str) -> None:
        barrier.wait(timeout=ROUND_TIMEOUT)
        try:
            store.retry(api.project, execution_id, nonce)
            outcome = "retried"
        except Conflict:
            outcome = "conflict"
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=retry, args=(nonce,)) for nonce in nonces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ROUND_TIMEOUT)
    assert outcomes == Counter({"retried": 1, "conflict": len(nonces) - 1})
    assert_consistent(api.detail(execution_id))
