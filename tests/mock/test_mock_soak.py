"""The mock's memory stays bounded under sustained use, and what it forgets answers as before.

A mock with small caps (`MockConfig.max_sessions`, `max_finished_executions`) and a hand-moved clock
is driven well past them: tens of thousands of sessions and thousands of executions. After every
batch the store's counts (not the process's RSS, which the allocator blurs; see
`benchmarks/mock_memory.py` for that) must be within the caps. Then what was forgotten is asked for:
a nonce is refused exactly as it would have been had it been kept, an execution answers 404 like
one that never existed, and what must be kept (running executions, recent ones) is.

Each test is bounded in count and in time: it stops at its count or its time budget, whichever
comes first, and must have gone several times past the caps by then.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cdf_workflows_mock import (
    DEFAULT_PROJECT,
    DEFAULT_WRITE_TOKEN,
    EmbeddedMock,
    InvalidRequest,
    MockConfig,
    MockStore,
)
from cdf_workflows_mock.nonces import NonceSeal, NonceStamp
from support.mock_helpers import ManualClock, MockApi, assert_envelope, function_task

SESSION_CAP = 1_000
EXECUTION_CAP = 100
NONCE_TTL_SECONDS = 600
API = f"/api/v1/projects/{DEFAULT_PROJECT}"
BATCH = 250
TIME_BUDGET_SECONDS = 12.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mock(clock: ManualClock) -> Iterator[EmbeddedMock]:
    config = MockConfig(
        clock=clock,
        nonce_ttl_seconds=NONCE_TTL_SECONDS,
        max_sessions=SESSION_CAP,
        max_finished_executions=EXECUTION_CAP,
    )
    with EmbeddedMock(config) as server:
        yield server


@pytest.fixture
def api(mock: EmbeddedMock) -> Iterator[MockApi]:
    client = MockApi(mock.base_url)
    yield client
    client.close()


def store_of(mock: EmbeddedMock) -> MockStore:
    store = mock.app.state.store
    assert isinstance(store, MockStore)
    return store


class Pipeline:
    """Many requests on one connection, sent together and answered in order: the cheapest way for a
    test in the same process as the mock to send thousands of them."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self._file = self._sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def send(self, requests: list[tuple[str, str, object]]) -> list[tuple[int, Any]]:
        """(method, path under the project, JSON body or None) each; (status, JSON body) each."""
        out = bytearray()
        for method, path, body in requests:
            data = b"" if body is None else json.dumps(body).encode()
            out += (
                f"{method} {API}{path} HTTP/1.1\r\nHost: mock\r\n"
                f"Authorization: Bearer {DEFAULT_WRITE_TOKEN}\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data
        self._sock.sendall(out)
        return [self._response() for _ in requests]

    def _response(self) -> tuple[int, Any]:
        status = int(self._file.readline().split(b" ")[1])
        length = 0
        while (line := self._file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, json.loads(self._file.read(length))


SESSION = ("POST", "/sessions", {"items": [{"tokenExchange": True}]})


@pytest.mark.slow
def test_sessions_stay_within_the_cap_and_forgotten_nonces_answer_as_before(
    mock: EmbeddedMock, api: MockApi, clock: ManualClock
) -> None:
    store = store_of(mock)
    target = api.start([function_task("a")])
    api.finish(target, "a", "FAILED_WITH_TERMINAL_ERROR")
    used = api.nonce()
    assert api.retry(target, used).status_code == 200
    pipeline = Pipeline(mock.port)
    nonces: list[str] = []
    start = time.monotonic()
    try:
        # 20k sessions over HTTP, or as many as the time budget allows.
        while len(nonces) < 20_000 and time.monotonic() - start < TIME_BUDGET_SECONDS:
            for status, body in pipeline.send([SESSION] * BATCH):
                assert status == 200, body
                nonces.append(body["items"][0]["nonce"])
            assert store.sizes()["sessions"] <= SESSION_CAP
    finally:
        pipeline.close()
    assert len(nonces) >= 5 * SESSION_CAP, f"only {len(nonces)} sessions in {TIME_BUDGET_SECONDS} s"
    assert len(set(nonces)) == len(nonces)

    api.finish(target, "a", "FAILED_WITH_TERMINAL_ERROR")
    reused = api.retry(target, used)  # forgotten long ago: refused as the reuse it is
    assert "already been used" in assert_envelope(reused, 400)["message"]
    forgotten = api.retry(target, nonces[0])  # never used, but forgotten by the cap: refused the same way
    assert assert_envelope(forgotten, 400) == assert_envelope(reused, 400)
    assert api.retry(target, nonces[-1]).status_code == 200  # a kept nonce still works

    # Once the nonces expire, all of them are forgotten at the next creation, and each is refused
    # as expired, the answer it had before it was forgotten.
    clock.advance(NONCE_TTL_SECONDS)
    api.finish(target, "a", "FAILED_WITH_TERMINAL_ERROR")
    answers = {nonce: api.retry(target, nonce) for nonce in (used, nonces[0], nonces[-2], nonces[-1])}
    fresh = api.nonce()
    assert store.sizes()["sessions"] == 1
    for nonce, before in answers.items():
        after = api.retry(target, nonce)
        assert "expired" in assert_envelope(after, 400)["message"]
        assert assert_envelope(before, 400) == assert_envelope(after, 400)
    # A mangled nonce (one character changed) was never issued here.
    mangled = fresh[:10] + ("B" if fresh[10] != "B" else "C") + fresh[11:]
    assert "not issued" in assert_envelope(api.retry(target, mangled), 400)["message"]
    assert api.retry(target, fresh).status_code == 200


def test_a_nonce_reads_back_only_as_issued_in_its_project_by_its_seal() -> None:
    """What lets a forgotten nonce be told expired: its seal reads it back, and nothing else."""
    seal = NonceSeal()
    nonce = seal.issue(DEFAULT_PROJECT, 7, 1_700_000_000_000)
    assert len(nonce) == 43 and nonce.isascii()
    assert seal.read(DEFAULT_PROJECT, nonce) == NonceStamp(7, 1_700_000_000_000)
    assert seal.read("other-project", nonce) is None
    assert NonceSeal().read(DEFAULT_PROJECT, nonce) is None  # another mock's
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/="
    for index, char in enumerate(nonce):  # every one-character change, in every position
        for other in alphabet.replace(char, ""):
            assert seal.read(DEFAULT_PROJECT, nonce[:index] + other + nonce[index + 1 :]) is None
    for bad in ("", nonce[:-1], nonce + "A", " " + nonce[1:], "é" * 43):
        assert seal.read(DEFAULT_PROJECT, bad) is None
    assert seal.issue(DEFAULT_PROJECT, 8, 1_700_000_000_000) != nonce


def test_twenty_thousand_sessions_in_the_store_itself() -> None:
    """The store alone, without HTTP, for all twenty thousand sessions (over HTTP, the test above may
    stop at its time budget before): the count never exceeds the cap."""
    clock = ManualClock()
    store = MockStore(clock, nonce_ttl_millis=NONCE_TTL_SECONDS * 1000)
    store.limit(max_sessions=SESSION_CAP, max_finished_executions=EXECUTION_CAP)
    first = store.create_session(DEFAULT_PROJECT, "TOKEN_EXCHANGE")["nonce"]
    for index in range(20_000):
        store.create_session(DEFAULT_PROJECT, "TOKEN_EXCHANGE")
        if index % 100 == 0:
            clock.advance(1)  # 200 s in all: some nonces expire along the way, most do not
            assert store.sizes()["sessions"] <= SESSION_CAP
    assert store.sizes()["sessions"] == SESSION_CAP
    # The first nonce was forgotten unused: refused as a reused one would be.
    with pytest.raises(InvalidRequest, match="already been used"):
        store._valid_session(DEFAULT_PROJECT, first)


@pytest.mark.slow
def test_finished_executions_stay_within_the_cap_and_forgotten_ones_are_404(
    mock: EmbeddedMock, api: MockApi
) -> None:
    store = store_of(mock)
    # Kept whatever happens: a running execution, and a failed one that is retried and fails again
    # after everything else has finished (it counts from when it finished last).
    running = api.start([function_task("a")])
    workflow = api.create_version([function_task("a")])
    revived = api.run(workflow)["id"]
    first_attempt = api.detail(revived)["executedTasks"][0]["id"]
    api.finish(revived, "a", "FAILED_WITH_TERMINAL_ERROR")
    instant = api.create_version([function_task("done", is_async=False)])  # COMPLETED at once
    run = f"/workflows/{instant}/versions/1/run"

    pipeline = Pipeline(mock.port)
    finished: list[str] = []
    start = time.monotonic()
    try:
        while len(finished) < 2_000 and time.monotonic() - start < TIME_BUDGET_SECONDS:
            sessions = pipeline.send([SESSION] * (BATCH // 2))
            runs = [
                ("POST", run, {"authentication": {"nonce": body["items"][0]["nonce"]}})
                for _, body in sessions
            ]
            for status, body in pipeline.send(runs):
                assert status == 200, body
                finished.append(body["id"])
            sizes = store.sizes()
            assert sizes["finished_executions"] <= EXECUTION_CAP
            # Besides the finished ones, only the running execution and the one left to retry.
            assert sizes["executions"] <= EXECUTION_CAP + 2
            assert sizes["attempts"] <= 2 * (EXECUTION_CAP + 2)
    finally:
        pipeline.close()
    assert len(finished) >= 5 * EXECUTION_CAP, f"only {len(finished)} executions in {TIME_BUDGET_SECONDS} s"

    # The oldest are forgotten: 404 exactly as for an id that never existed; so are their tasks.
    oldest = api.http.get(f"/workflows/executions/{finished[0]}")
    assert_envelope(oldest, 404)
    assert oldest.json()["error"]["missing"] == [{"id": finished[0]}]
    assert api.http.get(f"/workflows/executions/{finished[-1]}").status_code == 200
    assert api.detail(running)["status"] == "RUNNING"
    assert api.retry(revived).status_code == 404  # it finished before all the others: forgotten
    assert_envelope(
        api.http.post(f"/workflows/tasks/{first_attempt}/update", json={"status": "COMPLETED"}), 404
    )

    # A retried execution counts from when it finished last.
    kept = api.start([function_task("a")])
    api.finish(kept, "a", "FAILED_WITH_TERMINAL_ERROR")
    assert api.retry(kept).status_code == 200
    for _ in range(EXECUTION_CAP - 1):
        api.run(instant)
    api.finish(kept, "a", "FAILED_WITH_TERMINAL_ERROR")  # now the newest finished one
    for _ in range(EXECUTION_CAP - 1):
        api.run(instant)
    assert api.detail(kept)["status"] == "FAILED"
    api.run(instant)
    assert api.http.get(f"/workflows/executions/{kept}").status_code == 404
    assert store.sizes()["finished_executions"] == EXECUTION_CAP
