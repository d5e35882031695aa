"""Chaos mode (`cdf_workflows_mock.chaos`), over HTTP: 429/503 answers with the error envelope,
Retry-After and X-Request-ID, injected before the model so a refused request changes nothing; latency
of at least what was asked; the same seed, the same faults."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from cdf_workflows_mock import (
    ChaosConfig,
    EmbeddedMock,
    MockConfig,
    NotFound,
    load_state_file,
)
from cdf_workflows_mock.chaos import MAX_LATENCY_SECONDS, ChaosInjector, parse_latency
from cdf_workflows_mock.validation import RunRequest
from support.mock_helpers import MockApi, assert_envelope, function_task
from support.project import CLI, EXAMPLE_FAILED_ID, EXAMPLE_STATE, PROJECT


@pytest.fixture
def refusing_mock() -> Iterator[EmbeddedMock]:
    """Every request refused; the example state loaded, so there is something that must not change."""
    config = MockConfig(chaos=ChaosConfig(error_rate=1.0, seed=3))
    with EmbeddedMock(config, state=load_state_file(EXAMPLE_STATE)) as mock:
        yield mock


def statuses_of(mock: EmbeddedMock, count: int) -> list[int]:
    with httpx.Client(base_url=mock.base_url, headers={"Authorization": "Bearer mock-write-token"}) as client:
        return [
            client.get(f"/api/v1/projects/{PROJECT}/workflows/executions/{EXAMPLE_FAILED_ID}").status_code
            for _ in range(count)
        ]


def test_at_error_rate_one_every_request_is_refused_with_the_envelope_and_retry_after(
    refusing_mock: EmbeddedMock,
) -> None:
    api = MockApi(refusing_mock.base_url)
    stranger = MockApi(refusing_mock.base_url, token=None)
    try:
        task_id = "7d0c8f1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f"
        answers = [
            api.http.post("/sessions", json={"items": [{"tokenExchange": True}]}),
            api.http.post("/workflows", json={"items": [{"externalId": "new-workflow"}]}),
            api.http.post(
                "/workflows/nightly-ingest/versions/1/run", json={"authentication": {"nonce": "n"}}
            ),
            api.http.get(f"/workflows/executions/{EXAMPLE_FAILED_ID}"),
            api.retry(EXAMPLE_FAILED_ID, nonce="n"),
            api.cancel(EXAMPLE_FAILED_ID),
            api.http.post(f"/workflows/tasks/{task_id}/update", json={"status": "COMPLETED"}),
            api.http.get("/no/such/path"),
            stranger.http.get(f"/workflows/executions/{EXAMPLE_FAILED_ID}"),  # no token: still refused first
        ]
    finally:
        api.close()
        stranger.close()
    seen = set()
    for response in answers:
        assert response.status_code in (429, 503), response.text
        assert_envelope(response, response.status_code)
        assert response.headers["retry-after"] == "1"
        seen.add(response.status_code)
    assert seen == {429, 503}
    assert refusing_mock.app.state.chaos.refused == refusing_mock.app.state.chaos.requests == len(answers)


def test_a_refused_request_changes_nothing(refusing_mock: EmbeddedMock) -> None:
    store = refusing_mock.app.state.store
    before = store.get_execution(PROJECT, EXAMPLE_FAILED_ID)
    api = MockApi(refusing_mock.base_url)
    try:
        # Every write the API has, each refused.
        assert (
            api.http.post("/workflows", json={"items": [{"externalId": "new-workflow"}]}).status_code >= 429
        )
        nonce = api.http.post("/sessions", json={"items": [{"tokenExchange": True}]})
        assert nonce.status_code >= 429
        assert api.retry(EXAMPLE_FAILED_ID, nonce="n").status_code >= 429
        running = refusing_mock.app.state.loaded_state.execution_ids[1]
        assert api.cancel(running).status_code >= 429
    finally:
        api.close()
    assert store.get_execution(PROJECT, EXAMPLE_FAILED_ID) == before
    assert store.get_execution(PROJECT, running)["status"] == "RUNNING"
    # The workflow was not created: running it is still "not found" (checked before the nonce).
    with pytest.raises(NotFound):
        store.run(PROJECT, "new-workflow", "1", RunRequest(nonce="n", input=None, metadata={}))
    # No session was issued: session ids count up, and the loader took one per execution.
    loaded = len(refusing_mock.app.state.loaded_state.execution_ids)
    assert store.create_session(PROJECT, "TOKEN_EXCHANGE")["id"] == loaded + 1


def test_the_same_seed_gives_the_same_faults_and_another_seed_others() -> None:
    def sequence(seed: int) -> list[int]:
        with EmbeddedMock(
            MockConfig(chaos=ChaosConfig(error_rate=0.5, seed=seed)), state=load_state_file(EXAMPLE_STATE)
        ) as mock:
            return statuses_of(mock, 40)

    first, again, other = sequence(11), sequence(11), sequence(12)
    assert first == again
    assert first != other
    assert {200, 429, 503} <= set(first)


def test_the_draws_are_within_the_bounds_and_near_the_rate() -> None:
    injector = ChaosInjector(
        ChaosConfig(latency_min_seconds=0.05, latency_max_seconds=0.3, error_rate=0.3, seed=5)
    )
    faults = [injector.next_fault() for _ in range(2000)]
    delays = [fault.delay_seconds for fault in faults]
    assert min(delays) >= 0.05 and max(delays) <= 0.3 and max(delays) - min(delays) > 0.2
    refused = [fault.status for fault in faults if fault.status is not None]
    assert 500 <= len(refused) <= 700 and set(refused) == {429, 503}
    assert injector.requests == 2000 and injector.refused == len(refused)
    never = ChaosInjector(ChaosConfig(latency_max_seconds=0.1, seed=5))
    assert all(never.next_fault().status is None for _ in range(500))


def test_latency_adds_at_least_the_given_delay() -> None:
    config = MockConfig(chaos=ChaosConfig.from_options(latency="0.2-0.25"))
    with EmbeddedMock(config) as mock:
        api = MockApi(mock.base_url)
        try:
            started = time.monotonic()
            api.create_version([function_task("t")])  # two requests, each answered 200
            elapsed = time.monotonic() - started
        finally:
            api.close()
    assert elapsed >= 2 * 0.2


@pytest.mark.parametrize(
    ("latency", "expected"), [("0.2", (0.2, 0.2)), (" 0.05-0.3 ", (0.05, 0.3)), (1, (1.0, 1.0))]
)
def test_latency_is_seconds_or_a_range(latency: str | float, expected: tuple[float, float]) -> None:
    assert parse_latency(latency) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"latency": "fast"}, "neither SECONDS nor MIN-MAX"),
        ({"latency": "0.5-0.1"}, "0 <= min <= max"),
        ({"latency": str(MAX_LATENCY_SECONDS + 1)}, "<= 30 seconds"),
        ({"latency": "nan"}, "finite"),
        ({"error_rate": 1.5}, "between 0 and 1"),
        ({"error_rate": -0.1}, "between 0 and 1"),
    ],
)
def test_bad_chaos_settings_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChaosConfig.from_options(**options)  # type: ignore[arg-type]


def test_chaos_is_off_by_default_and_described_when_on() -> None:
    assert not MockConfig().chaos.enabled and MockConfig().chaos.describe() == "off"
    chaos = ChaosConfig.from_options("0.1-0.5", 0.3, 7)
    assert chaos.describe() == "latency 0.1-0.5 s, 429/503 on 30% of requests, seed 7"
    with pytest.raises(ValueError, match="ChaosConfig"):
        MockConfig(chaos="0.3")  # type: ignore[arg-type]


def test_a_mock_without_chaos_has_no_chaos_middleware() -> None:
    with EmbeddedMock() as mock:
        assert mock.app.state.chaos is None
        assert statuses_of(mock, 1) == [404]  # the execution does not exist: no state was loaded


def test_the_mock_command_refuses_bad_chaos_options_in_one_line() -> None:
    result = subprocess.run(
        [*CLI, "mock", "--port", "0", "--latency", "fast"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "neither SECONDS nor MIN-MAX" in result.stderr and "Traceback" not in result.stderr
