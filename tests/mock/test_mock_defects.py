"""The mock's switchable defects: the catalogue, the configuration, and for every defect the change in
HTTP behaviour its description promises, observed only through the API (as the suite would)."""

from __future__ import annotations

import gzip
import json
import threading
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from cdf_workflows_mock import (
    DEFAULT_READONLY_TOKEN,
    DEFAULT_WRITE_TOKEN,
    DEFECTS,
    Defect,
    EmbeddedMock,
    MockConfig,
    create_app,
)
from cdf_workflows_mock.defects import BY_NAME, CATALOGUE, check_combination
from retry_contract import execution_view
from retry_contract.contract import METADATA_LIMITS
from retry_contract.fixture_values import fixture_shapes, workflow_external_id
from retry_contract.provisioning import SHAPES, boundary_metadata
from retry_contract.requirements import BY_ID, Level
from retry_contract.requirements import CATALOGUE as REQUIREMENTS
from support.mock_helpers import JSON, ManualClock, MockApi, assert_envelope, attempts, function_task, latest

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


@dataclass
class Probe:
    """A mock with some defects on, and the provisioning a probe needs, through the real endpoints."""

    mock: EmbeddedMock
    api: MockApi
    clock: ManualClock

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.api.http.base_url, headers=headers, timeout=10)

    def retry_url(self, execution_id: str) -> str:
        return f"/workflows/executions/{execution_id}/retry"

    def body(self, nonce: Any = None) -> JSON:
        return {"authentication": {"nonce": self.api.nonce() if nonce is None else nonce}}

    def post_retry(self, execution_id: str, **kwargs: Any) -> httpx.Response:
        return self.api.http.post(self.retry_url(execution_id), **kwargs)

    def running(self, metadata: dict[str, str] | None = None) -> str:
        return self.api.start([function_task("step")], metadata=metadata or {})

    def failed(self, metadata: dict[str, str] | None = None) -> str:
        execution_id = self.running(metadata)
        self.api.finish(execution_id, "step", "FAILED_WITH_TERMINAL_ERROR")
        return execution_id

    def completed(self) -> str:
        execution_id = self.running()
        assert self.api.finish(execution_id, "step", "COMPLETED")["status"] == "COMPLETED"
        return execution_id

    def terminated(self) -> str:
        execution_id = self.running()
        assert self.api.cancel(execution_id).status_code == 200
        return execution_id

    def shapes(self) -> str:
        """The FAILED execution of every task shape that the suite's SEM-* checks observe."""
        execution_id = self.api.start(SHAPES.tasks("mock-function"))
        for name in (SHAPES.completed, SHAPES.nested_completed):
            self.api.finish(execution_id, name, "COMPLETED")
        self.api.finish(execution_id, SHAPES.optional_failed, "FAILED")
        for _ in range(SHAPES.at_limit_retries + 1):
            detail = self.api.finish(execution_id, SHAPES.at_limit, "FAILED")
        assert detail["status"] == "FAILED"
        return execution_id

    def retry_shapes(self) -> tuple[JSON, JSON, dict[str, int]]:
        """Retry the shapes execution: the detail before, the detail after, the attempts each task gained."""
        execution_id = self.shapes()
        before = self.api.detail(execution_id)
        assert self.api.retry(execution_id).status_code == 200
        after = self.api.detail(execution_id)
        gained = execution_view.new_attempts(before, after)
        return before, after, {name: gained[name] for name in _SHAPE_TASKS}


_SHAPE_TASKS = (
    SHAPES.completed,
    SHAPES.optional_failed,
    SHAPES.optional_canceled,
    SHAPES.canceled,
    SHAPES.container,
    SHAPES.nested_completed,
    SHAPES.nested_canceled,
    SHAPES.at_limit,
    SHAPES.never_started,
)
# What the faithful mock does to the shapes execution (workflow-model.md point 8).
FAITHFUL_GAINS = {name: 0 for name in _SHAPE_TASKS} | {
    SHAPES.canceled: 1,
    SHAPES.nested_canceled: 1,
    SHAPES.at_limit: 1,
}


@pytest.fixture
def probe_factory() -> Iterator[Callable[..., Probe]]:
    started: list[Probe] = []

    def start(*defects: str) -> Probe:
        clock = ManualClock()
        mock = EmbeddedMock(MockConfig(defects=frozenset(defects), clock=clock))
        mock.start()
        probe = Probe(mock, MockApi(mock.base_url), clock)
        started.append(probe)
        return probe

    yield start
    for probe in started:
        probe.api.close()
        _stopper.submit(probe.mock.stop)


# --- one probe per defect: the documented change, seen over HTTP ---------------------------------

PROBES: dict[str, Callable[[Probe], None]] = {}


def probe(name: str) -> Callable[[Callable[[Probe], None]], Callable[[Probe], None]]:
    def register(function: Callable[[Probe], None]) -> Callable[[Probe], None]:
        assert name in BY_NAME, name
        PROBES[name] = function
        return function

    return register


# AUTH


@probe("auth-header-optional")
def _(p: Probe) -> None:
    with p.client(None) as anonymous:
        assert anonymous.post(p.retry_url(p.failed()), json=p.body()).status_code == 200
        assert_envelope(anonymous.get(f"/workflows/executions/{p.failed()}"), 401)


@probe("auth-any-bearer-token")
def _(p: Probe) -> None:
    with p.client("made-up-token") as stranger:
        assert stranger.post(p.retry_url(p.failed()), json=p.body()).status_code == 200
    with p.client(None) as anonymous:
        answer = anonymous.post(p.retry_url(p.failed()), json=p.body(), headers={"Authorization": "Bearer"})
        assert_envelope(answer, 401)


@probe("auth-unknown-token-403")
def _(p: Probe) -> None:
    execution_id = p.failed()
    with p.client("made-up-token") as stranger:
        assert_envelope(stranger.post(p.retry_url(execution_id), json=p.body()), 403)
    with p.client(None) as anonymous:
        assert_envelope(anonymous.post(p.retry_url(execution_id), json=p.body()), 401)
    assert p.api.detail(execution_id)["status"] == "FAILED"


@probe("readonly-can-retry")
def _(p: Probe) -> None:
    with p.client(DEFAULT_READONLY_TOKEN) as reader:
        assert reader.post(p.retry_url(p.failed()), json=p.body()).status_code == 200
        assert_envelope(reader.post(f"/workflows/executions/{p.running()}/cancel", json={}), 403)


@probe("project-scope-ignored")
def _(p: Probe) -> None:
    execution_id = p.failed()
    other = MockApi(p.mock.base_url, project="another-project")
    try:
        # The token is not valid for the other project: the retry looks the execution up there anyway.
        error = assert_envelope(other.http.post(p.retry_url(execution_id), json=p.body()), 404)
        assert error["missing"] == [{"id": execution_id}]
        assert_envelope(other.http.get(f"/workflows/executions/{execution_id}"), 403)
    finally:
        other.close()


# PATH


@probe("malformed-id-500")
def _(p: Probe) -> None:
    assert_envelope(p.post_retry("not-a-uuid", json=p.body()), 500)
    assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 404)


@probe("id-truncated-to-36")
def _(p: Probe) -> None:
    execution_id = p.failed()
    answer = p.post_retry(execution_id + "0", json=p.body())
    assert answer.status_code == 200 and answer.json()["id"] == execution_id
    assert_envelope(p.post_retry(execution_id[:-1], json=p.body()), 400)


@probe("malformed-id-422")
def _(p: Probe) -> None:
    assert_envelope(p.post_retry("not-a-uuid", json=p.body()), 422)


# BODY


@probe("empty-body-500")
def _(p: Probe) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id), 500)
    assert_envelope(p.post_retry(execution_id, json={}), 400)
    assert p.api.detail(execution_id)["status"] == "FAILED"


@probe("body-array-500")
def _(p: Probe) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id, json=[p.body()]), 500)
    assert_envelope(p.post_retry(execution_id, json="authentication"), 400)


@probe("body-errors-422")
def _(p: Probe) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id, json={}), 422)
    assert_envelope(p.post_retry(execution_id, content=b"nonce=x"), 422)
    assert_envelope(p.post_retry(execution_id, json=p.body("never-issued")), 400)


@probe("nonce-empty-accepted")
def _(p: Probe) -> None:
    assert p.post_retry(p.failed(), json=p.body("")).status_code == 200
    assert_envelope(p.post_retry(p.failed(), json=p.body(12345)), 400)


@probe("nonce-non-string-accepted")
def _(p: Probe) -> None:
    for nonce in (12345, {"value": "x"}):
        assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert p.post_retry(p.failed(), json={"authentication": {"nonce": None}}).status_code == 200
    assert_envelope(p.post_retry(p.failed(), json={"authentication": {}}), 400)
    assert_envelope(p.post_retry(p.failed(), json=p.body("")), 400)


# BODY-NONCE, NONCE-REUSE


@probe("nonce-not-verified")
def _(p: Probe) -> None:
    assert p.post_retry(p.failed(), json=p.body("never-issued-nonce")).status_code == 200
    nonce = p.api.nonce()
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200


@probe("nonce-reusable")
def _(p: Probe) -> None:
    nonce = p.api.nonce()
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert p.post_retry(p.failed(), json=p.body(nonce)).status_code == 200
    assert_envelope(p.post_retry(p.failed(), json=p.body("never-issued-nonce")), 400)


# METHOD


@probe("method-any-accepted")
def _(p: Probe) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        answer = p.api.http.request(method, p.retry_url(p.failed()), json=p.body())
        assert answer.status_code == 200, method
    assert_envelope(p.api.http.request("GET", p.retry_url(p.failed())), 400)


@probe("method-405-without-allow")
def _(p: Probe) -> None:
    answer = p.api.http.get(p.retry_url(p.failed()))
    assert_envelope(answer, 405)
    assert "allow" not in answer.headers
    assert p.api.http.get(f"/workflows/executions/{p.failed()}/cancel").headers["allow"] == "POST"


# STATE


@probe("unknown-execution-400")
def _(p: Probe) -> None:
    error = assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 400)
    assert "missing" not in error


@probe("unknown-execution-500")
def _(p: Probe) -> None:
    assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 500)
    assert_envelope(p.api.http.get(f"/workflows/executions/{uuid.uuid4()}"), 404)


@probe("retry-running")
def _(p: Probe) -> None:
    assert p.api.retry(p.running()).json()["status"] == "RUNNING"
    assert_envelope(p.api.retry(p.completed()), 409)


@probe("retry-completed")
def _(p: Probe) -> None:
    execution_id = p.completed()
    assert p.api.retry(execution_id).status_code == 200
    assert_envelope(p.api.retry(p.running()), 409)


@probe("terminated-not-retryable")
def _(p: Probe) -> None:
    assert_envelope(p.api.retry(p.terminated()), 409)
    assert p.api.retry(p.failed()).status_code == 200


@probe("timed-out-not-retryable")
def _(p: Probe) -> None:
    execution_id = p.api.start([function_task("step", timeout=1)])
    p.clock.advance(2)
    assert p.api.detail(execution_id)["status"] == "TIMED_OUT"
    assert_envelope(p.api.retry(execution_id), 409)
    assert p.api.retry(p.terminated()).status_code == 200


# ROBUST


@probe("unicode-nonce-500")
def _(p: Probe) -> None:
    assert_envelope(p.post_retry(p.failed(), json=p.body("nonce-\u00fc")), 500)
    assert_envelope(p.post_retry(p.failed(), json=p.body("ascii-nonce-never-issued")), 400)


@probe("malformed-json-drops-connection")
def _(p: Probe) -> None:
    execution_id = p.failed()
    for content in (b'{"authentication": {"nonce": "abc"', b"authentication=nonce"):
        with pytest.raises(httpx.RemoteProtocolError):
            p.post_retry(execution_id, content=content, headers={"content-type": "application/json"})
    assert_envelope(p.post_retry(execution_id), 400)
    assert_envelope(p.post_retry(execution_id, json={"authentication": "nonce"}), 400)


# The request forms real clients send, and values far longer than the generated ones.

# Extra fields are open; the faithful mock accepts them, so only the encoding can explain a refusal.
_NON_ASCII_EXTRA = {"comment": "retried by J\u00fcrgen"}


def _send_retry(
    p: Probe,
    execution_id: str,
    body: JSON | None = None,
    *,
    content_type: str = "application/json",
    gzipped: bool = False,
    chunked: bool = False,
    raw_utf8: bool = False,
) -> httpx.Response:
    """A retry with its body encoded and framed as a given client sends it."""
    content = json.dumps(p.body() if body is None else body, ensure_ascii=not raw_utf8).encode()
    headers = {"content-type": content_type}
    if gzipped:
        content = gzip.compress(content)
        headers["content-encoding"] = "gzip"
    answer = p.post_retry(execution_id, content=iter([content]) if chunked else content, headers=headers)
    assert ("chunked" in answer.request.headers.get("transfer-encoding", "")) is chunked
    return answer


@probe("gzip-body-refused")
def _(p: Probe) -> None:
    execution_id = p.failed()
    assert_envelope(_send_retry(p, execution_id, gzipped=True), 415)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert _send_retry(p, execution_id).status_code == 200


@probe("charset-refused")
def _(p: Probe) -> None:
    execution_id = p.failed()
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        assert_envelope(_send_retry(p, execution_id, content_type=content_type), 415)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert _send_retry(p, execution_id).status_code == 200


@probe("chunked-body-refused")
def _(p: Probe) -> None:
    execution_id = p.failed()
    assert_envelope(_send_retry(p, execution_id, chunked=True), 411)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert _send_retry(p, execution_id).status_code == 200


@probe("raw-utf8-misread")
def _(p: Probe) -> None:
    execution_id = p.failed()
    for gzipped in (False, True):
        body = {**p.body(), **_NON_ASCII_EXTRA}
        error = assert_envelope(_send_retry(p, execution_id, body, gzipped=gzipped, raw_utf8=True), 400)
        assert "not valid JSON" in error["message"]
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert _send_retry(p, execution_id, {**p.body(), **_NON_ASCII_EXTRA}).status_code == 200


@probe("long-nonce-500")
def _(p: Probe) -> None:
    execution_id = p.failed()
    assert_envelope(p.post_retry(execution_id, json=p.body("n" * 4097)), 500)
    assert_envelope(p.post_retry(execution_id, json=p.body("n" * 4096)), 400)
    assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body("n" * 4097)), 404)
    assert p.api.detail(execution_id)["status"] == "FAILED"


@probe("long-path-id-500")
def _(p: Probe) -> None:
    answer = p.post_retry("a" * 1025, json=p.body())
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("text/html")
    assert answer.headers["x-request-id"] and answer.text.startswith("<html>")
    assert_envelope(p.post_retry("a" * 1024, json=p.body()), 400)
    assert_envelope(p.api.http.get(f"/workflows/executions/{'a' * 1025}"), 400)


@probe("nul-in-body-500")
def _(p: Probe) -> None:
    execution_id = p.failed()
    for body in (p.body("nonce\x00"), {"authentication": "\x00"}, {**p.body(), "note\x00": "x"}):
        assert_envelope(p.post_retry(execution_id, json=body), 500)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert_envelope(p.post_retry(execution_id, json=p.body("never-issued")), 400)


@probe("extra-field-500")
def _(p: Probe) -> None:
    execution_id = p.failed()
    for body in ({**p.body(), "comment": "x"}, {"authentication": {"nonce": p.api.nonce(), "type": "x"}}):
        assert_envelope(p.post_retry(execution_id, json=body), 500)
    assert p.api.detail(execution_id)["status"] == "FAILED"
    assert_envelope(p.post_retry(execution_id, json={"authentication": "nonce"}), 400)
    assert p.post_retry(execution_id, json=p.body()).status_code == 200


@probe("errors-as-text")
def _(p: Probe) -> None:
    answer = p.post_retry(p.failed(), json={})
    assert answer.status_code == 400 and answer.text == "Bad Request"
    assert answer.headers["content-type"].startswith("text/plain") and answer.headers["x-request-id"]
    assert_envelope(p.api.http.get(f"/workflows/executions/{uuid.uuid4()}"), 404)


# ERR, HDR


def _error_body(p: Probe) -> tuple[httpx.Response, Any]:
    answer = p.post_retry(str(uuid.uuid4()), json=p.body())
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"
    return answer, answer.json()


@probe("error-envelope-flat")
def _(p: Probe) -> None:
    _, body = _error_body(p)
    assert body["code"] == 404 and isinstance(body["message"], str) and "error" not in body


@probe("error-message-missing")
def _(p: Probe) -> None:
    _, body = _error_body(p)
    assert body["error"]["code"] == 404 and "message" not in body["error"]


@probe("error-code-as-string")
def _(p: Probe) -> None:
    _, body = _error_body(p)
    assert body["error"]["code"] == "404"


@probe("error-code-always-400")
def _(p: Probe) -> None:
    _, body = _error_body(p)
    assert body["error"]["code"] == 400
    assert p.post_retry(p.failed(), json=p.body("never-issued")).json()["error"]["code"] == 400


@probe("no-request-id-on-errors")
def _(p: Probe) -> None:
    answer, _ = _error_body(p)
    assert "x-request-id" not in answer.headers
    assert "x-request-id" not in p.api.http.get(f"/workflows/executions/{uuid.uuid4()}").headers
    assert p.api.retry(p.failed()).headers["x-request-id"]


# RESP


def _retry_answer(p: Probe, execution_id: str | None = None) -> tuple[str, JSON]:
    execution_id = execution_id or p.failed()
    answer = p.api.retry(execution_id)
    assert answer.status_code == 200, answer.text
    return execution_id, dict(answer.json())


@probe("success-202")
def _(p: Probe) -> None:
    answer = p.api.retry(p.failed())
    assert answer.status_code == 202 and answer.json()["status"] == "RUNNING"


@probe("success-text-content-type")
def _(p: Probe) -> None:
    answer = p.api.retry(p.failed())
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert answer.json()["status"] == "RUNNING"


@probe("response-id-uppercase")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert answer["id"] == execution_id.upper() != execution_id


@probe("response-id-without-dashes")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert answer["id"] == execution_id.replace("-", "") and len(answer["id"]) == 32


@probe("engine-id-truncated")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert len(answer["engineExecutionId"]) == 35
    assert p.api.detail(execution_id)["engineExecutionId"].startswith(answer["engineExecutionId"])


@probe("engine-id-missing")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert "engineExecutionId" not in answer


@probe("engine-id-uuid1")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert uuid.UUID(answer["engineExecutionId"]).version == 1
    assert p.api.detail(execution_id)["engineExecutionId"] == answer["engineExecutionId"]


@probe("xid-trailing-space")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert answer["workflowExternalId"] == p.api.detail(execution_id)["workflowExternalId"] + " "


@probe("version-as-number")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert answer["version"] == 1 and isinstance(answer["version"], int)


@probe("version-empty")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert answer["version"] == ""


@probe("status-lowercase")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert answer["status"] == "running"


@probe("status-stale")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert answer["status"] == "FAILED" and "endTime" in answer and "reasonForIncompletion" in answer
    assert p.api.detail(execution_id)["status"] == "RUNNING"


@probe("time-as-string")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert isinstance(answer["createdTime"], str) and isinstance(answer["startTime"], str)
    assert int(answer["createdTime"]) == p.clock()


@probe("time-as-float-seconds")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert isinstance(answer["createdTime"], float) and answer["createdTime"] == p.clock() / 1000


@probe("time-beyond-int64")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert answer["startTime"] == 2**64 - 1


@probe("time-negative-sentinel")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert answer["endTime"] == -1 and "endTime" not in p.api.detail(execution_id)


@probe("metadata-stamped")
def _(p: Probe) -> None:
    metadata = boundary_metadata()
    execution_id, answer = _retry_answer(p, p.failed(metadata))
    assert len(metadata) == 10 and answer["metadata"] == {**metadata, "retriedBy": "workflow-engine"}
    assert p.api.detail(execution_id)["metadata"] == answer["metadata"]


@probe("metadata-as-pairs")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == [{"key": "team", "value": "data"}]


@probe("empty-metadata-omitted")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p)
    assert "metadata" not in answer and p.api.detail(execution_id)["metadata"] == {}
    _, answer = _retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == {"team": "data"}


@probe("reason-null")
def _(p: Probe) -> None:
    _, answer = _retry_answer(p)
    assert "reasonForIncompletion" in answer and answer["reasonForIncompletion"] is None


@probe("created-time-reset")
def _(p: Probe) -> None:
    execution_id = p.failed()
    created = p.api.detail(execution_id)["createdTime"]
    p.clock.advance(5)
    _, answer = _retry_answer(p, execution_id)
    assert answer["createdTime"] == created + 5000 > answer["startTime"]
    assert p.api.detail(execution_id)["createdTime"] == created + 5000


@probe("metadata-cleared")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == {} and p.api.detail(execution_id)["metadata"] == {}


@probe("metadata-stamped-when-room")
def _(p: Probe) -> None:
    metadata = boundary_metadata()
    execution_id, answer = _retry_answer(p, p.failed(metadata))
    assert answer["metadata"] == metadata == p.api.detail(execution_id)["metadata"]
    execution_id, answer = _retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == {"team": "data", "retriedAt": str(p.clock())}
    assert p.api.detail(execution_id)["metadata"] == answer["metadata"]


_NON_ASCII_METADATA = {"owner": "J\u00fcrgen", "team": "data"}


@probe("metadata-utf8-double-encoded")
def _(p: Probe) -> None:
    execution_id, answer = _retry_answer(p, p.failed(_NON_ASCII_METADATA))
    assert answer["metadata"] == {"owner": "J\u00c3\u00bcrgen", "team": "data"}
    assert p.api.detail(execution_id)["metadata"] == _NON_ASCII_METADATA


# SEM


def _gains_differ(p: Probe, **changed: int) -> tuple[JSON, JSON]:
    before, after, gained = p.retry_shapes()
    assert gained == FAITHFUL_GAINS | changed
    return before, after


@probe("retry-starts-nothing")
def _(p: Probe) -> None:
    _, after = _gains_differ(p, **{SHAPES.canceled: 0, SHAPES.nested_canceled: 0, SHAPES.at_limit: 0})
    assert after["status"] == "FAILED"


def _retry_twice(p: Probe) -> tuple[str, JSON, JSON]:
    """Retry a FAILED execution, fail the retried task again and retry it a second time: the execution,
    and its detail after each retry."""
    execution_id = p.failed()
    assert p.api.retry(execution_id).status_code == 200
    first = p.api.detail(execution_id)
    assert p.api.finish(execution_id, "step", "FAILED_WITH_TERMINAL_ERROR")["status"] == "FAILED"
    answer = p.api.retry(execution_id)
    assert answer.status_code == 200 and answer.json()["status"] == "RUNNING"
    return execution_id, first, p.api.detail(execution_id)


@probe("second-retry-starts-nothing")
def _(p: Probe) -> None:
    execution_id, first, second = _retry_twice(p)
    assert len(attempts(first, "step")) == 2 and latest(first, "step")["status"] == "IN_PROGRESS"
    assert len(attempts(second, "step")) == 2 and latest(second, "step")["status"] != "IN_PROGRESS"
    p.clock.advance(3600)
    assert p.api.detail(execution_id)["status"] == "RUNNING"
    assert p.api.cancel(execution_id).json()["status"] == "TERMINATED"


@probe("retry-ignores-canceled")
def _(p: Probe) -> None:
    _gains_differ(p, **{SHAPES.canceled: 0, SHAPES.nested_canceled: 0})


def _timed_out(p: Probe) -> str:
    execution_id = p.api.start([function_task("step", timeout=1)])
    p.clock.advance(2)
    assert p.api.detail(execution_id)["status"] == "TIMED_OUT"
    return execution_id


def _gained_on_retry(p: Probe, execution_id: str) -> tuple[int, JSON]:
    """The new attempts of "step" on a retry of the execution, and its detail after the retry."""
    before = p.api.detail(execution_id)
    answer = p.api.retry(execution_id)
    assert answer.status_code == 200 and answer.json()["status"] == "RUNNING"
    after = p.api.detail(execution_id)
    return execution_view.new_attempts(before, after)["step"], after


@probe("terminated-retry-starts-nothing")
def _(p: Probe) -> None:
    execution_id = p.terminated()
    gained, after = _gained_on_retry(p, execution_id)
    assert gained == 0 and after["status"] == "RUNNING"
    p.clock.advance(3600)
    assert p.api.detail(execution_id)["status"] == "RUNNING"
    assert _gained_on_retry(p, p.failed())[0] == 1


@probe("retry-ignores-timed-out")
def _(p: Probe) -> None:
    assert _gained_on_retry(p, _timed_out(p))[0] == 0
    assert _gained_on_retry(p, p.terminated())[0] == 1
    _gains_differ(p)


@probe("timed-out-started-twice")
def _(p: Probe) -> None:
    assert _gained_on_retry(p, _timed_out(p))[0] == 2
    assert _gained_on_retry(p, p.terminated())[0] == 1
    _gains_differ(p)


@probe("retry-first-target-only")
def _(p: Probe) -> None:
    _gains_differ(p, **{SHAPES.nested_canceled: 0, SHAPES.at_limit: 0})


@probe("optional-retried")
def _(p: Probe) -> None:
    _gains_differ(p, **{SHAPES.optional_canceled: 1})


@probe("completed-rerun")
def _(p: Probe) -> None:
    _gains_differ(p, **{SHAPES.completed: 1, SHAPES.nested_completed: 1})


@probe("container-retried")
def _(p: Probe) -> None:
    _, after = _gains_differ(p, **{SHAPES.container: 1})
    assert latest(after, SHAPES.container)["status"] == "IN_PROGRESS"


@probe("nested-skipped")
def _(p: Probe) -> None:
    _gains_differ(p, **{SHAPES.nested_canceled: 0})


@probe("limit-not-retried")
def _(p: Probe) -> None:
    _gains_differ(p, **{SHAPES.at_limit: 0})


def _fail_the_limit_task_again(p: Probe) -> tuple[JSON, int]:
    """Retry the shapes execution, fail the new attempt of the task at its limit, and return the
    execution then and how many attempts that task gained after its retried attempt."""
    before, after, _ = p.retry_shapes()
    execution_id = str(after["id"])
    final = p.api.finish(execution_id, SHAPES.at_limit, "FAILED")
    used = execution_view.attempt_counts(before)[SHAPES.at_limit]
    return final, execution_view.attempt_counts(final)[SHAPES.at_limit] - used - 1


@probe("limit-reset")
def _(p: Probe) -> None:
    final, extra = _fail_the_limit_task_again(p)
    assert extra == 1 and final["status"] == "RUNNING"
    assert latest(final, SHAPES.at_limit)["status"] == "IN_PROGRESS"


def _cancel_then_retry_gains(p: Probe, execution_id: str) -> int:
    """Cancel the running execution, retry it: the attempts its task gained by the retry."""
    assert p.api.cancel(execution_id).status_code == 200
    before = p.api.detail(execution_id)
    assert before["status"] == "TERMINATED"
    assert p.api.retry(execution_id).status_code == 200
    return execution_view.new_attempts(before, p.api.detail(execution_id))["step"]


@probe("canceled-forgotten-after-retry")
def _(p: Probe) -> None:
    # A cancel and a retry of an execution never retried behave.
    assert _cancel_then_retry_gains(p, p.running()) == 1
    # Retried once, then cancelled and retried again: the cancelled task is not restarted.
    execution_id = p.failed()
    assert p.api.retry(execution_id).status_code == 200
    assert _cancel_then_retry_gains(p, execution_id) == 0


def _simultaneous_retries(p: Probe, count: int = 4) -> tuple[list[int], int]:
    """`count` retries of one FAILED execution at once: their statuses, and the attempts its task gained."""
    execution_id = p.failed()
    before = p.api.detail(execution_id)
    bodies = [p.body() for _ in range(count)]
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(body: JSON) -> None:
        with p.client(DEFAULT_WRITE_TOKEN) as client:
            barrier.wait()
            status = client.post(p.retry_url(execution_id), json=body).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gained = execution_view.new_attempts(before, p.api.detail(execution_id))["step"]
    return sorted(statuses), gained


@probe("concurrent-double-retry")
def _(p: Probe) -> None:
    statuses, gained = _simultaneous_retries(p)
    successes = statuses.count(200)
    assert successes > 1 and gained == successes, (statuses, gained)


# Values only some run requests hold: each defect shows on such a value, and leaves others alone.


def _retried_metadata(p: Probe, metadata: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The retry's answer and the detail after it, of an execution run with `metadata`."""
    execution_id, answer = _retry_answer(p, p.failed(metadata))
    return answer["metadata"], p.api.detail(execution_id)["metadata"]


def _retried_in(p: Probe, workflow: str, version: str, **body: Any) -> JSON:
    """The retry's answer for an execution of `workflow` at `version`, both sent percent-encoded."""
    p.api.create_version([function_task("step")], workflow=workflow, version=version)
    path = f"/workflows/{quote(workflow, safe='')}/versions/{quote(version, safe='')}/run"
    run = p.api.http.post(path, json={"authentication": {"nonce": p.api.nonce()}, **body})
    assert run.status_code == 200, run.text
    execution_id = str(run.json()["id"])
    p.api.finish(execution_id, "step", "FAILED_WITH_TERMINAL_ERROR")
    return _retry_answer(p, execution_id)[1]


@probe("metadata-keys-lowercased")
def _(p: Probe) -> None:
    assert _retried_metadata(p, {"Team": "Data", "EMPTY": ""}) == ({"team": "Data", "empty": ""},) * 2
    assert _retried_metadata(p, {"team": "data"})[0] == {"team": "data"}


@probe("empty-metadata-value-null")
def _(p: Probe) -> None:
    answer, stored = _retried_metadata(p, {"empty": "", "team": "data"})
    assert answer == {"empty": None, "team": "data"} and stored == {"empty": "", "team": "data"}


@probe("metadata-values-trimmed")
def _(p: Probe) -> None:
    answer, stored = _retried_metadata(p, {"padded": "  inner  space ", "blank": " ", "team": "data"})
    assert answer == stored == {"padded": "inner  space", "blank": "", "team": "data"}


@probe("metadata-normalised-to-nfc")
def _(p: Probe) -> None:
    decomposed = unicodedata.normalize("NFD", "Åsa")
    answer, stored = _retried_metadata(p, {decomposed: decomposed, "nfc": "Åsa"})
    assert answer == stored == {"Åsa": "Åsa", "nfc": "Åsa"} and decomposed != "Åsa"


@probe("astral-chars-replaced")
def _(p: Probe) -> None:
    answer, stored = _retried_metadata(p, {"emoji 😀": "🛠 ok ✓", "plain": "Tromsø"})
    assert answer == stored == {"emoji \ufffd": "\ufffd ok ✓", "plain": "Tromsø"}


@probe("metadata-cut-at-limit-in-bytes")
def _(p: Probe) -> None:
    longest = "ø" * METADATA_LIMITS.max_value_length
    answer, stored = _retried_metadata(p, {"long": longest, "ascii": "v" * METADATA_LIMITS.max_value_length})
    cut = "ø" * (METADATA_LIMITS.max_value_length // 2)
    assert answer == stored == {"long": cut, "ascii": "v" * METADATA_LIMITS.max_value_length}


@probe("version-percent-encoded-in-answer")
def _(p: Probe) -> None:
    assert _retried_in(p, "wf-encoded", "v 1/2%")["version"] == "v%201%2F2%25"
    assert _retried_in(p, "wf-plain", "v1")["version"] == "v1"


@probe("workflow-id-plus-as-space")
def _(p: Probe) -> None:
    assert _retried_in(p, "wf+a%41", "1")["workflowExternalId"] == "wf aA"
    assert _retried_in(p, "wf-plain", "1")["workflowExternalId"] == "wf-plain"


def test_every_defect_has_a_probe() -> None:
    assert set(PROBES) == set(BY_NAME)


@pytest.mark.parametrize("name", [defect.name for defect in CATALOGUE])
def test_the_defect_changes_the_api_as_described(
    name: str, probe_factory: Callable[..., Probe], monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "concurrent-double-retry":
        # A window wide enough that simultaneous requests on a loaded machine still all fall in it.
        from cdf_workflows_mock.defects import semantics

        monkeypatch.setattr(semantics._RacyRetry, "write_latency_seconds", 0.3)
    PROBES[name](probe_factory(name))


# --- the same probes' faithful side -------------------------------------------------------------


def test_the_faithful_mock_answers_the_probes_as_the_model_says(probe_factory: Callable[..., Probe]) -> None:
    p = probe_factory()
    assert p.retry_shapes()[2] == FAITHFUL_GAINS
    final, extra = _fail_the_limit_task_again(p)
    assert extra == 0 and final["status"] == "FAILED"
    statuses, gained = _simultaneous_retries(p)
    assert statuses == [200, 409, 409, 409] and gained == 1
    metadata = boundary_metadata()
    _, answer = _retry_answer(p, p.failed(metadata))
    assert (
        answer["metadata"] == metadata and "endTime" not in answer and "reasonForIncompletion" not in answer
    )
    error = assert_envelope(p.post_retry(str(uuid.uuid4()), json=p.body()), 404)
    assert error["missing"]


def test_the_faithful_mock_keeps_every_generated_fixture_value(probe_factory: Callable[..., Probe]) -> None:
    p = probe_factory()
    for seed in (1, 20230101):
        for shape in fixture_shapes(seed):
            workflow = workflow_external_id(f"retry-contract-{seed:08x}", "simple", shape.workflow_tail)
            body = {"metadata": shape.metadata} if shape.metadata is not None else {}
            answer = _retried_in(p, workflow, shape.version, **body, input=shape.workflow_input)
            assert (answer["workflowExternalId"], answer["version"]) == (workflow, shape.version), shape.label
            assert answer["metadata"] == (shape.metadata or {}), shape.label


def test_the_faithful_mock_retries_whatever_form_a_client_sends_the_request_in(
    probe_factory: Callable[..., Probe],
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
        assert _send_retry(p, p.failed(), {**p.body(), **_NON_ASCII_EXTRA}, **form).status_code == 200, form
    for body in ({**p.body(), "note\x00": "x"}, {"authentication": {"nonce": p.api.nonce(), "type": "x"}}):
        assert p.post_retry(p.failed(), json=body).status_code == 200, body


def test_the_faithful_mock_refuses_far_longer_values_and_nul_with_the_envelope(
    probe_factory: Callable[..., Probe],
) -> None:
    p = probe_factory()
    execution_id = p.failed()
    for body in (p.body("n" * 5000), p.body("nonce\x00"), {"authentication": "\x00"}):
        assert_envelope(p.post_retry(execution_id, json=body), 400)
    assert_envelope(p.post_retry("a" * 2000, json=p.body()), 400)
    assert p.api.detail(execution_id)["status"] == "FAILED"


def test_the_faithful_retry_keeps_metadata_of_every_shape_and_starts_every_retry(
    probe_factory: Callable[..., Probe],
) -> None:
    p = probe_factory()
    for metadata in ({}, {"team": "data"}, _NON_ASCII_METADATA, boundary_metadata()):
        execution_id, answer = _retry_answer(p, p.failed(metadata))
        assert answer["metadata"] == metadata == p.api.detail(execution_id)["metadata"]
    _, _, second = _retry_twice(p)
    assert len(attempts(second, "step")) == 3 and latest(second, "step")["status"] == "IN_PROGRESS"


def test_the_run_endpoint_accepts_metadata_exactly_at_the_documented_limits(
    probe_factory: Callable[..., Probe],
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


def test_a_wire_only_defect_leaves_the_retry_steps_faithful(probe_factory: Callable[..., Probe]) -> None:
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
    probe_factory: Callable[..., Probe],
) -> None:
    p = probe_factory("raw-utf8-misread", "nonce-empty-accepted", "charset-refused", "empty-metadata-omitted")
    answer = _send_retry(p, p.failed(), p.body(""))
    assert answer.status_code == 200 and "metadata" not in answer.json()
    assert_envelope(_send_retry(p, p.failed(), {**p.body(""), **_NON_ASCII_EXTRA}, raw_utf8=True), 400)
    assert_envelope(_send_retry(p, p.failed(), content_type="application/json; charset=utf-8"), 415)


def test_defects_combine(probe_factory: Callable[..., Probe]) -> None:
    p = probe_factory("success-202", "metadata-stamped", "no-request-id-on-errors", "readonly-can-retry")
    answer = p.api.retry(p.failed({"team": "data"}))
    assert answer.status_code == 202 and answer.json()["metadata"]["retriedBy"] == "workflow-engine"
    assert "x-request-id" not in p.post_retry(str(uuid.uuid4()), json=p.body()).headers
    with p.client(DEFAULT_READONLY_TOKEN) as reader:
        assert reader.post(p.retry_url(p.failed()), json=p.body()).status_code == 202
