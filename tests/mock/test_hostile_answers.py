"""Whatever bytes a server answers with, every judge reaches a verdict and every report is written.

A property test feeds generated hostile exchanges (any status, duplicated and odd headers, bodies that
are deeply nested, not UTF-8, empty, binary, huge numbers, NaN, duplicate names, scalars, lone
surrogates) and hostile readings of the execution through `checks.Judge`, the SEM judge and every
report format; explicit cases pin down the finding each kind of body gets.
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from cdf_workflows_mock import DEFAULT_PROJECT, MockConfig, create_app
from cdf_workflows_mock.loopback import InProcessServer
from retry_contract import execution_view
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.checks.openapi import OpenApiJudge
from retry_contract.checks.retry_effects import retry_effects, took_effect
from retry_contract.credentials import StaticToken
from retry_contract.exchange import MAX_JSON_DEPTH, TOO_DEEP, Exchange, Expectation, parse_json
from retry_contract.reports import console, write_all
from retry_contract.reports.model import build as report_view
from retry_contract.reports.model import requirement_rows
from retry_contract.requirements import CATALOGUE
from retry_contract.resilience import RetryPolicy
from retry_contract.runner import MOCK_PROJECT, RunOptions, RunResult, run
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import ExitCode, Ledger, Observation

BASE = "http://127.0.0.1:9"
EXECUTION_ID = "059edaa4-a17a-4102-910e-2c3591500cce"
URL = f"{BASE}/api/v1/projects/{MOCK_PROJECT}/workflows/executions/{EXECUTION_ID}/retry"
EXECUTION: dict[str, Any] = {
    "id": EXECUTION_ID,
    "workflowExternalId": "wf",
    "version": "1",
    "status": "RUNNING",
    "engineExecutionId": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    "createdTime": 1730204346000,
    "metadata": {"k": "v"},
}
ENVELOPE = {"error": {"code": 400, "message": "bad"}}
# Built once: parsing the spec is the slow part, and the judge is stateless.
OPENAPI = OpenApiJudge(BASE)


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# -- strategies ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
statuses = st.sampled_from(
    ["FAILED", "RUNNING", "COMPLETED", "TIMED_OUT", "IN_PROGRESS", "SCHEDULED", "CANCELED"]
)
odd_scalars = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"9" * 5000, b"-" + b"9" * 4300])
hostile_bodies = st.one_of(
    st.binary(max_size=120),
    st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=3000).map(deep),
    st.builds(
        lambda depth: b'{"error":{"code":400,"message":"m","x":' + deep(depth) + b"}}", st.integers(1, 1200)
    ),
    st.builds(
        lambda bad: b'{"error":{"code":400,"message":"' + bad + b'"}}',
        st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]),
    ),
    st.builds(
        lambda number: b'{"error":{"code":' + number + b',"message":"m"}, "id":' + number + b"}", odd_scalars
    ),
    st.just(b'{"error":{"code":400,"message":"a","message":{"b":1}}}'),
    st.just(b'{"id":"\\ud800","status":"\\udc00RUNNING","\\ud83d":"\\ud83d\\ude00"}'),
    st.sampled_from([b"", b" ", b"null", b"5", b'"RUNNING"', b"[]", b"\xef\xbb\xbf{}", b"{"]),
    st.just(json.dumps(ENVELOPE).encode("utf-16")),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(sorted(EXECUTION)), json_values).map(
        lambda changes: json.dumps({**EXECUTION, **changes}).encode()
    ),
)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30)
header_names = st.sampled_from(
    ["content-type", "Content-Type", "x-request-id", "X-Request-ID", "allow", "retry-after", "x-other"]
)
header_maps = st.dictionaries(
    header_names,
    header_values
    | st.sampled_from(
        ["application/json", "application/json, application/json", "text/html", "req-1, req-2", ""]
    ),
    max_size=6,
)
attempts = st.fixed_dictionaries(
    {},
    optional={
        "externalId": st.sampled_from(["a", "b", "c"]) | json_values,
        "id": st.text(max_size=4) | json_values,
        "status": statuses | json_values,
        "startTime": st.integers() | json_values,
        "taskType": st.sampled_from(["function", "dynamic", "subworkflow"]) | json_values,
        "parentTaskExternalId": st.sampled_from(["a", "b"]) | json_values,
        "input": json_values,
    },
)
task_definitions = st.fixed_dictionaries(
    {},
    optional={
        "externalId": st.sampled_from(["a", "b", "c"]) | json_values,
        "type": st.sampled_from(["function", "dynamic", "subworkflow"]) | json_values,
        "onFailure": st.sampled_from(["skipTask", "abortWorkflow"]) | json_values,
        "retries": st.integers() | json_values,
        "dependsOn": st.lists(st.fixed_dictionaries({"externalId": st.sampled_from(["a", "b"])}))
        | json_values,
        "parameters": json_values,
    },
)
readings = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "id": st.just(EXECUTION_ID) | json_values,
        "status": statuses | json_values,
        "executedTasks": st.lists(attempts, max_size=5) | json_values,
        "workflowDefinition": st.fixed_dictionaries({"tasks": st.lists(task_definitions, max_size=4)})
        | json_values,
        "workflowExternalId": st.text(max_size=10) | json_values,
        "metadata": json_values,
        "input": json_values,
    },
)
expectations = st.none() | st.builds(
    Expectation,
    st.sampled_from([r.id for r in CATALOGUE]),
    st.frozensets(st.sampled_from([200, 400, 401, 403, 404, 409]), min_size=1),
)


@st.composite
def hostile_exchanges(draw: st.DrawFn) -> Exchange:
    status = draw(st.none() | st.sampled_from([200, 400, 401, 404, 409, 413, 500]) | st.integers(100, 599))
    return Exchange(
        method=draw(st.sampled_from(["POST", "POST", "GET"])),
        url=URL,
        request_headers={"content-type": "application/json", "authorization": "Bearer t"},
        request_body=draw(st.none() | st.just(b'{"authentication": {"nonce": "n"}}') | hostile_bodies),
        status=status,
        response_headers=draw(header_maps),
        response_body=draw(hostile_bodies),
        transport_error=None if status is not None else "RemoteProtocolError: dropped",
        expectation=draw(expectations),
        execution_id=EXECUTION_ID,
        before=draw(readings),
        after=draw(readings),
        reading=draw(readings),
        maybe_replayed=draw(st.booleans()),
        first_attempt_took_effect=draw(st.booleans()),
    )


def _result(ledger: Ledger) -> RunResult:
    return RunResult(
        options=RunOptions(base_url=BASE, project=MOCK_PROJECT, credentials=None),
        target=BASE,
        ledger=ledger,
        secrets=SecretRegistry(),
    )


def _publish_everywhere(result: RunResult) -> None:
    requirement_rows(result)
    with tempfile.TemporaryDirectory() as directory:
        for path in write_all(result, Path(directory), environ={}):
            path.read_text(encoding="utf-8")
        json.loads((Path(directory) / "retry-contract.json").read_text(encoding="utf-8"))
    console.render(report_view(result), Console(file=io.StringIO(), width=100), [])


# Sixty generated exchanges through every judge and report (seconds): out of the fast tier.
@pytest.mark.slow
@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(exchanges=st.lists(hostile_exchanges(), min_size=1, max_size=3))
def test_any_answer_is_judged_and_reported_without_raising(exchanges: list[Exchange]) -> None:
    ledger = Ledger()
    judge = Judge(BASE, ledger, OPENAPI)
    for exchange in exchanges:
        judge.observe(exchange)
        if exchange.before is not None and exchange.after is not None:
            ledger.record(retry_effects(exchange.before, exchange.after, exchange))
            took_effect(exchange.before, exchange.after)
            execution_view.changes(exchange.before, exchange.after)
        # Every report shows a failure on every exchange, with its reproduction.
        ledger.record([Observation("ROBUST", False, "shown in every report", exchange, "test")])
    _publish_everywhere(_result(ledger))


# -- each kind, explicitly -----------------------------------------------------------------------


def _answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Exchange:
    return Exchange(
        method="POST",
        url=URL,
        request_headers={"content-type": "application/json"},
        request_body=b'{"authentication": {"nonce": "n"}}',
        status=status,
        response_headers={"content-type": "application/json", "x-request-id": "r"}
        if headers is None
        else headers,
        response_body=body,
        execution_id=EXECUTION_ID,
    )


def _failures(exchange: Exchange) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for observation in Judge(BASE, Ledger(), OPENAPI).observe(exchange):
        if not observation.passed:
            found.setdefault(observation.requirement, []).append(observation.message)
    return found


NOT_JSON_BODIES = {
    "nested 3000 deep (6 KB)": (deep(3000), TOO_DEEP),
    "nested one level too deep": (deep(MAX_JSON_DEPTH + 1), TOO_DEEP),
    "invalid UTF-8": (b'{"error":{"code":400,"message":"\xff"}}', "not UTF-8 (byte 0xff at offset 32)"),
    "UTF-16": (json.dumps(ENVELOPE).encode("utf-16-le"), "not UTF-8"),
    "empty": (b"", "empty body"),
    "binary": (bytes(range(256)), "not UTF-8"),
    "binary, no NUL": (bytes(range(1, 256)), "not UTF-8 (byte 0x80 at offset 127)"),
    "NaN": (b'{"error":{"code":400,"message":"m","n":NaN}}', "NaN is not a JSON number"),
    "Infinity": (b'{"error":{"code":400,"message":"m","n":-Infinity}}', "-Infinity is not a JSON number"),
}


@pytest.mark.parametrize("body,why", NOT_JSON_BODIES.values(), ids=NOT_JSON_BODIES)
@pytest.mark.parametrize(
    "status,requirement", [(200, "RESP-200"), (400, "ERR-ENVELOPE"), (500, "ERR-ENVELOPE")]
)
def test_a_body_that_is_not_json_is_a_finding_of_the_requirement_it_must_meet(
    body: bytes, why: str, status: int, requirement: str
) -> None:
    found = _failures(_answer(status, body))
    assert any(why in message for message in found.get(requirement, [])), found
    if status == 400:
        assert any(why in message for message in found["ROBUST"]), found


def test_a_body_nested_as_deep_as_allowed_is_judged() -> None:
    body = b'{"error":{"code":400,"message":"m","x":' + deep(MAX_JSON_DEPTH - 2) + b"}}"
    assert parse_json(body)[1] is None
    assert _failures(_answer(400, body)) == {}


@pytest.mark.parametrize(
    "body,value",
    [
        (b"9" * 5000, float("inf")),
        (b"1e999", float("inf")),
        (b'{"a":1,"a":2}', {"a": 2}),
        (b"5", 5),
        (b'"\\ud800x"', "\ufffdx"),
        (b"\xef\xbb\xbf[]", []),
    ],
    ids=[
        "integer beyond 4300 digits",
        "float beyond double",
        "duplicate names",
        "scalar",
        "lone surrogate",
        "BOM",
    ],
)
def test_odd_but_valid_json_is_read(body: bytes, value: Any) -> None:
    assert parse_json(body) == (value, None)


def test_huge_numbers_and_duplicate_names_in_an_envelope_are_judged_on_their_values() -> None:
    found = _failures(_answer(400, b'{"error":{"code":' + b"9" * 5000 + b',"message":"m","message":"n"}}'))
    assert list(found) == ["ERR-ENVELOPE"] and "not an integer" in found["ERR-ENVELOPE"][0], found
    found = _failures(_answer(400, b'{"error":{"code":' + b"9" * 4000 + b',"message":"m"}}'))
    assert list(found) == ["ERR-CODE"] and len(found["ERR-CODE"][0]) < 200, found


def test_a_top_level_scalar_is_no_envelope_and_no_execution() -> None:
    assert "ERR-ENVELOPE" in _failures(_answer(400, b"5"))
    assert "RESP-200" in _failures(_answer(200, b'"RUNNING"'))


@pytest.mark.parametrize(
    "headers,failed",
    [
        ({"content-type": "application/json, application/json", "x-request-id": "r"}, {"ERR-ENVELOPE"}),
        ({"content-type": "application/json", "x-request-id": "r1, r2"}, set()),
        ({"content-type": "application/json", "x-request-id": ""}, {"HDR-REQUEST-ID"}),
        ({"content-type": "application/json", "X-Request-ID": "caf\u00e9 \u00ff"}, set()),
        ({"Content-Type": "application/json", "content-type": "text/html", "x-request-id": "r"}, set()),
        ({}, {"ERR-ENVELOPE", "HDR-REQUEST-ID"}),
    ],
    ids=["two Content-Type", "two X-Request-ID", "empty X-Request-ID", "latin-1", "differing case", "none"],
)
def test_duplicated_empty_and_non_ascii_headers_are_judged(headers: dict[str, str], failed: set[str]) -> None:
    assert (
        set(_failures(_answer(404, json.dumps({"error": {"code": 404, "message": "m"}}).encode(), headers)))
        == failed
    )


def test_a_reading_with_odd_values_is_judged_not_raised_on() -> None:
    before = {
        "status": {"not": "a string"},
        "executedTasks": [
            {"externalId": "a", "status": ["FAILED"], "startTime": 10**400, "taskType": {}},
            {"externalId": "a", "status": "FAILED", "startTime": 1},
        ],
        "workflowDefinition": {"tasks": [{"externalId": "a", "type": [], "dependsOn": 5, "retries": 10**50}]},
    }
    after = {
        **before,
        "status": "RUNNING",
        "executedTasks": [*before["executedTasks"], {"externalId": "a", "status": "IN_PROGRESS"}],
    }
    exchange = _answer(200, json.dumps({**EXECUTION, "id": EXECUTION_ID}).encode())
    exchange.before, exchange.after = before, after
    found = _failures(exchange)
    assert "STATE-RETRYABLE" in found and len(found["STATE-RETRYABLE"][0]) < 200, found
    assert retry_effects(before, after, exchange)


# -- the same on the wire: what httpx makes of duplicated and non-ASCII headers ------------------


@contextmanager
def answering(raw: bytes) -> Iterator[str]:
    """A server on loopback that answers every request with `raw` and closes (bounded: 5 s each)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return
            if stop.is_set():
                connection.close()
                return
            with connection:
                connection.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    received += chunk
                connection.sendall(raw)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        # A connection wakes the accept() the thread waits in; closing the socket would not.
        socket.create_connection(server.getsockname()[:2], timeout=5).close()
        thread.join(timeout=10)
        server.close()


def _wire(head: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 400 Bad Request\r\n"
        + head
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


WIRE_ENVELOPE = json.dumps({"error": {"code": 400, "message": "bad"}}).encode()


@pytest.mark.parametrize(
    "head,body,failed",
    [
        (
            b"Content-Type: application/json\r\nContent-Type: application/json\r\nX-Request-ID: r\r\n",
            WIRE_ENVELOPE,
            {"ERR-ENVELOPE"},
        ),
        (b"Content-Type: application/json\r\nX-Request-ID: r1\r\nX-Request-ID: r2\r\n", WIRE_ENVELOPE, set()),
        (b"Content-Type: application/json\r\nX-Request-ID:\r\n", WIRE_ENVELOPE, {"HDR-REQUEST-ID"}),
        (
            b"Content-Type: application/json\r\nX-Request-ID: caf\xe9\xff\r\nX-Other: \xc3\x28\r\n",
            WIRE_ENVELOPE,
            set(),
        ),
        (b"Content-Type: application/json\r\nX-Request-ID: r\r\n", deep(3000), {"ERR-ENVELOPE", "ROBUST"}),
        (
            b"Content-Type: application/json\r\nX-Request-ID: r\r\n",
            b'{"error":{"code":400,"message":"\xff"}}',
            {"ERR-ENVELOPE", "ROBUST"},
        ),
    ],
    ids=[
        "two Content-Type",
        "two X-Request-ID",
        "empty X-Request-ID",
        "latin-1 and bad UTF-8",
        "deep",
        "bad UTF-8 body",
    ],
)
def test_answers_on_the_wire_are_judged(head: bytes, body: bytes, failed: set[str]) -> None:
    with answering(_wire(head, body)) as base_url:
        client = CdfClient(
            base_url, MOCK_PROJECT, StaticToken("t"), SecretRegistry(), retry_policy=RetryPolicy(attempts=1)
        )
        with client:
            exchange = client.send(
                "POST",
                client.retry_url(EXECUTION_ID),
                json_body={"authentication": {"nonce": "n"}},
                expectation=Expectation("BODY-SHAPE", frozenset({400})),
                execution_id=EXECUTION_ID,
            )
    assert exchange.status == 400 and exchange.fault is None
    found = {o.requirement for o in Judge(BASE, Ledger(), OPENAPI).observe(exchange) if not o.passed}
    assert found == failed


# -- a whole run against a server whose retry answers are hostile --------------------------------

RUN_BODIES = (
    deep(3000),
    b'{"error":{"code":400,"message":"\xff"}}',
    b"",
    bytes(range(256)),
    b'{"id":NaN}',
    b'{"error":{"code":' + b"9" * 5000 + b',"message":"m"}}',
    b"5",
    b'{"id":"\\ud800"}',
    json.dumps(ENVELOPE).encode("utf-16"),
)
RUN_HEADERS = (
    [(b"content-type", b"application/json")] * 2 + [(b"x-request-id", b"a"), (b"x-request-id", b"b")],
    [(b"content-type", b"application/json"), (b"x-request-id", b"caf\xe9")],
    [(b"x-request-id", b"")],
)


class HostileRetries:
    """The mock, but every other answer of the retry endpoint has its body and headers replaced."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers = itertools.count()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        number = next(self.answers) if scope["type"] == "http" and scope["path"].endswith("/retry") else 1
        if number % 2:
            await self.app(scope, receive, send)
            return

        async def replaced(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = RUN_HEADERS[number // 2 % len(RUN_HEADERS)]
                await send({"type": "http.response.start", "status": message["status"], "headers": headers})
            elif not message.get("more_body"):
                await send({"type": "http.response.body", "body": RUN_BODIES[number // 2 % len(RUN_BODIES)]})

        await self.app(scope, receive, replaced)


@pytest.mark.slow
@pytest.mark.parametrize("fuzz", [False, True], ids=["scenarios", "with fuzzing"])
def test_a_run_against_hostile_retry_answers_ends_in_violations_and_every_report(
    tmp_path: Path, fuzz: bool
) -> None:
    write, readonly = "hostile-write-token", "hostile-readonly-token"
    app = HostileRetries(create_app(MockConfig.with_tokens(DEFAULT_PROJECT, write, readonly)))
    with InProcessServer(app) as server:
        result = run(
            RunOptions(
                base_url=server.base_url,
                project=DEFAULT_PROJECT,
                credentials=StaticToken(write),
                readonly_token=readonly,
                fuzz=fuzz,
                max_examples=10,
                concurrency=1,
            )
        )
    assert result.exit_code is ExitCode.VIOLATIONS and not result.incomplete
    if fuzz:
        # Every phase ran to its end: Schemathesis's worker was not ended by an answer nested too deep
        # for its own JSON reading (it sent 2 cases then).
        assert result.fuzz.cases >= 40 and not result.fuzz.errors, result.fuzz
    failed = {r.requirement.id for r in result.ledger.results.values() if r.failures}
    assert {"ROBUST", "ERR-ENVELOPE", "RESP-200"} <= failed
    written = write_all(result, tmp_path, environ={})
    assert len(written) == 4
    json.loads((tmp_path / "retry-contract.json").read_text(encoding="utf-8"))
