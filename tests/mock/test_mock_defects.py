"""The mock's switchable defects: the catalogue, the configuration, and for every defect the change in
HTTP behaviour its description promises, observed only through the API (as the suite would)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from cdf_workflows_mock import (
    DEFAULT_READONLY_TOKEN,
    DEFECTS,
    Defect,
    EmbeddedMock,
    MockConfig,
    create_app,
)
from cdf_workflows_mock.defects import BY_NAME, CATALOGUE, check_combination
from cdf_workflows_mock.defects.probing import (
    NON_ASCII_EXTRA,
    NON_ASCII_METADATA,
    Prober,
    fail_the_limit_task_again,
    retried_in,
    retry_answer,
    retry_twice,
    send_retry,
    simultaneous_retries,
)
from retry_contract.fixture_values import fixture_shapes, workflow_external_id
from retry_contract.provisioning import SHAPES, boundary_metadata
from retry_contract.requirements import BY_ID, Level
from retry_contract.requirements import CATALOGUE as REQUIREMENTS
from support.mock_helpers import ManualClock, MockApi, assert_envelope, attempts, function_task, latest

# --- the catalogue --------------------------------------------------------------------------------


def test_the_catalogue_is_large_unique_and_well_formed() -> None:
    assert DEFECTS is CATALOGUE and len(CATALOGUE) >= 45
    names = [defect.name for defect in CATALOGUE]
    assert len(names) == len(set(names)) and set(BY_NAME) == set(names)
    for defect in CATALOGUE:
        assert isinstance(defect, Defect)
        assert defect.name == defect.name.lower() and " " not in defect.name, defect.name
        assert defect.description and "\n" not in defect.description and len(defect.description) <= 110
        assert defect.breaks and len(set(defect.breaks)) == len(defect.breaks), defect.name
        assert set(defect.breaks) <= set(BY_ID), defect.name


def test_every_must_and_should_requirement_is_broken_by_some_defect() -> None:
    broken = {requirement for defect in CATALOGUE for requirement in defect.breaks}
    levels = {Level.MUST, Level.SHOULD}
    assert not [r.id for r in REQUIREMENTS if r.level in levels and r.id not in broken]


# --- configuration --------------------------------------------------------------------------------


def test_unknown_defects_are_refused_by_name_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="no-such-bug") as raised:
        check_combination({"no-such-bug", "success-202"})
    assert "success-202" not in str(raised.value).split("valid names")[0]
    assert "metadata-stamped" in str(raised.value).split("valid names")[1]
    # The configuration cannot know the catalogue: the mock refuses it when it is built.
    config = MockConfig.with_tokens("p", "w", "r", defects=["no-such-bug"])
    with pytest.raises(ValueError, match="no-such-bug"):
        create_app(config)
    with pytest.raises(ValueError, match="no-such-bug"):
        EmbeddedMock(MockConfig(defects=frozenset({"no-such-bug"})))
    with pytest.raises(ValueError, match="not one string"):
        MockConfig(defects="success-202")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one string"):
        MockConfig.with_tokens("p", "w", "r", defects="success-202")


def test_defects_that_change_the_same_step_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="one of them at a time"):
        check_combination({"retry-running", "retry-completed"})
    with pytest.raises(ValueError, match="one of them at a time"):
        create_app(MockConfig(defects=frozenset({"optional-retried", "nested-skipped"})))
    check_combination({"success-202", "metadata-stamped", "no-request-id-on-errors", "readonly-can-retry"})
    for same_step in (
        {"gzip-body-refused", "charset-refused"},  # the header check
        {"raw-utf8-misread", "nul-in-body-500"},  # reading the body
        {"empty-body-500", "extra-field-500"},
        {"long-nonce-500", "nonce-empty-accepted"},  # the session check
        {"metadata-stamped", "metadata-stamped-when-room"},  # the retry's write
        {"second-retry-starts-nothing", "metadata-cleared"},
    ):
        with pytest.raises(ValueError, match="one of them at a time"):
            check_combination(same_step)


def test_the_faithful_config_has_no_defects_and_keeps_them_frozen() -> None:
    assert MockConfig().defects == frozenset()
    config = MockConfig.with_tokens("p", "w", "r", defects=["success-202"])
    assert config.defects == frozenset({"success-202"})
    assert create_app(config).state.config is config


# --- a defective mock to probe ------------------------------------------------------------------

# uvicorn takes ~0.2 s to stop; the mocks of this module stop in the background, together.
_stopper = ThreadPoolExecutor(max_workers=8, thread_name_prefix="stop-mock")


@pytest.fixture(scope="module", autouse=True)
def _stop_mocks_at_the_end() -> Iterator[None]:
    yield
    _stopper.shutdown(wait=True)


@pytest.fixture
def probe_factory() -> Iterator[Callable[..., Prober]]:
    started: list[tuple[EmbeddedMock, Prober]] = []

    def start(*defects: str) -> Prober:
        clock = ManualClock()
        mock = EmbeddedMock(MockConfig(defects=frozenset(defects), clock=clock))
        mock.start()
        prober = Prober(mock.base_url, MockApi(mock.base_url), clock, SHAPES)
        started.append((mock, prober))
        return prober

    yield start
    for mock, prober in started:
        prober.api.close()
        _stopper.submit(mock.stop)


# --- every defect's probe, declared beside it: the documented change, seen over HTTP ----------------


@pytest.fixture
def wide_race_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # A window wide enough that simultaneous requests on a loaded machine still all fall in it.
    from cdf_workflows_mock.defects import semantics

    monkeypatch.setattr(semantics._RacyRetry, "write_latency_seconds", 0.3)


@pytest.mark.parametrize("defect", CATALOGUE, ids=lambda defect: defect.name)
def test_the_defect_changes_the_api_as_described(
    defect: Defect, probe_factory: Callable[..., Prober], wide_race_window: None
) -> None:
    defect.probe(probe_factory(defect.name))


@pytest.mark.parametrize("defect", CATALOGUE, ids=lambda defect: defect.name)
def test_the_probe_fails_on_the_faithful_mock(defect: Defect, probe_factory: Callable[..., Prober]) -> None:
    # A failed assertion, or a field the defect adds missing from the faithful answer.
    with pytest.raises((AssertionError, KeyError)):
        defect.probe(probe_factory())


# --- the same probes' faithful side -------------------------------------------------------------


def test_the_faithful_mock_answers_the_probes_as_the_model_says(probe_factory: Callable[..., Prober]) -> None:
    p = probe_factory()
    assert p.retry_shapes()[2] == p.faithful_gains()
    final, extra = fail_the_limit_task_again(p)
    assert extra == 0 and final["status"] == "FAILED"
    statuses, gained = simultaneous_retries(p)
    assert statuses == [200, 409, 409, 409] and gained == 1
    metadata = boundary_metadata()
    _, answer = retry_answer(p, p.failed(metadata))
    assert (
        answer["metadata"] == metadata and "endTime" not in answer and "reasonForIncompletion" not in answer
    )
    error = assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 404)
    assert error["missing"]


def test_the_faithful_mock_keeps_every_generated_fixture_value(probe_factory: Callable[..., Prober]) -> None:
    p = probe_factory()
    for seed in (1, 20230101):
        for shape in fixture_shapes(seed):
            workflow = workflow_external_id(f"retry-contract-{seed:08x}", "simple", shape.workflow_tail)
            body = {"metadata": shape.metadata} if shape.metadata is not None else {}
            answer = retried_in(p, workflow, shape.version, **body, input=shape.workflow_input)
            assert (answer["workflowExternalId"], answer["version"]) == (workflow, shape.version), shape.label
            assert answer["metadata"] == (shape.metadata or {}), shape.label


def test_the_faithful_mock_retries_whatever_form_a_client_sends_the_request_in(
    probe_factory: Callable[..., Prober],
) -> None:
    p = probe_factory()
    forms: list[dict[str, Any]] = [
        {"gzipped": True},
        {"content_type": "application/json; charset=utf-8"},
        {"content_type": "Application/JSON"},
        {"chunked": True},
        {"raw_utf8": True},
        {"gzipped": True, "chunked": True, "raw_utf8": True},
    ]
    for form in forms:
        assert send_retry(p, p.failed(), {**p.body(), **NON_ASCII_EXTRA}, **form).status_code == 200, form
    for body in ({**p.body(), "note\x00": "x"}, {"authentication": {"nonce": p.api.nonce(), "type": "x"}}):
        assert p.post_retry(p.failed(), json=body).status_code == 200, body


def test_the_faithful_mock_refuses_far_longer_values_and_nul_with_the_envelope(
    probe_factory: Callable[..., Prober],
) -> None:
    p = probe_factory()
    execution_id = p.failed()
    for body in (p.body("n" * 5000), p.body("nonce\x00"), {"authentication": "\x00"}):
        assert_envelope(p.post_retry(execution_id, json=body), 400)
    assert_envelope(p.post_retry("a" * 2000, json=p.body()), 400)
    assert p.api.detail(execution_id)["status"] == "FAILED"


def test_the_faithful_retry_keeps_metadata_of_every_shape_and_starts_every_retry(
    probe_factory: Callable[..., Prober],
) -> None:
    p = probe_factory()
    for metadata in ({}, {"team": "data"}, NON_ASCII_METADATA, boundary_metadata()):
        execution_id, answer = retry_answer(p, p.failed(metadata))
        assert answer["metadata"] == metadata == p.api.detail(execution_id)["metadata"]
    _, _, second = retry_twice(p)
    assert len(attempts(second, "step")) == 3 and latest(second, "step")["status"] == "IN_PROGRESS"


def test_the_run_endpoint_accepts_metadata_exactly_at_the_documented_limits(
    probe_factory: Callable[..., Prober],
) -> None:
    p = probe_factory()
    metadata = boundary_metadata()
    assert {len(key) for key in metadata} == {32} and {len(value) for value in metadata.values()} == {255}
    assert p.api.detail(p.running(metadata))["metadata"] == metadata
    workflow = p.api.create_version([function_task("step")])
    for beyond in (
        {**metadata, "one-more": "x"},
        {"k" * 33: "v"},
        {"key": "v" * 256},
    ):
        body = {"authentication": {"nonce": p.api.nonce()}, "metadata": beyond}
        assert_envelope(p.api.http.post(f"/workflows/{workflow}/versions/1/run", json=body), 400)


def test_a_wire_only_defect_leaves_the_retry_steps_faithful(probe_factory: Callable[..., Prober]) -> None:
    """The defects' step-by-step twins of the store and the handlers, with no step replaced."""
    p = probe_factory("method-405-without-allow")
    nonce = p.api.nonce()
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert_envelope(p.post_retry(p.failed(), json=p.body(nonce)), 400)
    assert_envelope(p.post_retry(p.failed(), json=p.body("never-issued")), 400)
    assert_envelope(p.post_retry(p.failed(), json={"authentication": {"nonce": 1}}), 400)
    assert_envelope(p.post_retry("not-a-uuid", json=p.body()), 400)
    assert assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 404)["missing"]
    assert_envelope(p.api.retry(p.running()), 409)
    assert_envelope(p.api.retry(p.completed()), 409)
    with p.client(DEFAULT_READONLY_TOKEN) as reader:
        assert_envelope(reader.post(p.retry_url(p.failed()), json=p.body()), 403)


def test_the_body_defects_reach_the_nonce_defects_through_the_same_reader(
    probe_factory: Callable[..., Prober],
) -> None:
    p = probe_factory("raw-utf8-misread", "nonce-empty-accepted", "charset-refused", "empty-metadata-omitted")
    answer = send_retry(p, p.failed(), p.body(""))
    assert answer.status_code == 200 and "metadata" not in answer.json()
    assert_envelope(send_retry(p, p.failed(), {**p.body(""), **NON_ASCII_EXTRA}, raw_utf8=True), 400)
    assert_envelope(send_retry(p, p.failed(), content_type="application/json; charset=utf-8"), 415)


def test_defects_combine(probe_factory: Callable[..., Prober]) -> None:
    p = probe_factory("success-202", "metadata-stamped", "no-request-id-on-errors", "readonly-can-retry")
    answer = p.api.retry(p.failed({"team": "data"}))
    assert answer.status_code == 202 and answer.json()["metadata"]["retriedBy"] == "workflow-engine"
    assert "x-request-id" not in p.post_retry(str(uuid.uuid4()), json=p.body()).headers
    with p.client(DEFAULT_READONLY_TOKEN) as reader:
        assert reader.post(p.retry_url(p.failed()), json=p.body()).status_code == 202
