"""Every answer is read within the request's total deadline and up to the size cap, by all three
transports (httpx, the http.client fallback for URLs over 64 KiB, Schemathesis's `requests`),
whatever a hostile server sends: a drip, a stall, a compression bomb, gigabytes of plain body."""

from __future__ import annotations

import time
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from click.testing import CliRunner
from schemathesis.engine import context as engine_context

from retry_contract import contract
from retry_contract.bounded_read import (
    MIB,
    Deadline,
    DeadlineExceeded,
    ReadLimits,
    encodings_to_decode,
    read_body,
)
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import KEPT_MESSAGE_CHARACTERS, Judge, _kept
from retry_contract.checks.http import HTTP_CHECKS, body_within_cap, robust
from retry_contract.cli import main
from retry_contract.credentials import StaticToken
from retry_contract.exchange import KEPT_BODY_BYTES, Exchange, Expectation
from retry_contract.fuzz_transport import BoundedAdapter, body_over_cap, bound_engine_sessions, bound_session
from retry_contract.resilience import RetryPolicy
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import Ledger, Observation
from support.hostile_server import HostileServer, compressed_zeros, hostile_server

TIMEOUT = 1.0
# Scheduling on shared CI cores; a read not bounded by the deadline takes 8 s (head) or 100 s (body).
SLACK = 2.0
CAP = 1 * MIB
# What reading one answer may allocate: the body up to the cap, joined once, and read buffers.
MEMORY_BOUND = 4 * CAP + 2 * MIB
TRANSPORTS = ("httpx", "http.client", "requests")
# Over 64 KiB of URL: httpx refuses it, so the client sends it with http.client.
_LONG_SEGMENT = "a" * (70 * 1024)


@dataclass
class Read:
    seconds: float
    status: int | None
    body: bytes
    over_cap: int | None
    timed_out: bool
    peak_bytes: int


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with hostile_server() as running:
        yield running


def _client(base_url: str) -> CdfClient:
    return CdfClient(
        base_url,
        "p",
        StaticToken("t"),
        SecretRegistry(),
        timeout=TIMEOUT,
        max_response_bytes=CAP,
        retry_policy=RetryPolicy(attempts=1),
    )


def _fetch(transport: str, base_url: str, behaviour: str) -> Read:
    tracemalloc.start()
    started = time.monotonic()
    try:
        if transport == "requests":
            session = bound_session(requests.Session(), ReadLimits(TIMEOUT, CAP))
            try:
                response = session.get(f"{base_url}/{behaviour}", timeout=TIMEOUT)
            except requests.exceptions.Timeout:
                status, body, over, timed_out = None, b"", None, True
            else:
                status, body, over, timed_out = (
                    response.status_code,
                    response.content,
                    body_over_cap(response),
                    False,
                )
            finally:
                session.close()
        else:
            prefix = f"/{_LONG_SEGMENT}" if transport == "http.client" else ""
            with _client(base_url) as client:
                exchange = client.send("GET", f"{base_url}{prefix}/{behaviour}", token=None)
            if exchange.status is None:
                # A timeout is a fault of the network, never the server's broken connection.
                assert exchange.fault is not None and not exchange.connection_broken, exchange
            status, body, over = exchange.status, exchange.response_body, exchange.body_over_cap
            timed_out = exchange.answer_timed_out
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Read(seconds, status, body, over, timed_out, peak)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("behaviour", ["drip-head", "drip-body", "stall"])
def test_a_slow_answer_ends_at_the_deadline_as_a_timeout(
    server: HostileServer, transport: str, behaviour: str
) -> None:
    read = _fetch(transport, server.url, behaviour)
    assert read.timed_out and read.status is None
    assert TIMEOUT * 0.9 <= read.seconds < TIMEOUT + SLACK


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("behaviour", ["gzip-bomb", "deflate-bomb", "raw-deflate-bomb", "plain-2gib"])
def test_a_huge_answer_is_read_up_to_the_cap_only(
    server: HostileServer, transport: str, behaviour: str
) -> None:
    read = _fetch(transport, server.url, behaviour)
    assert read.status == 200 and read.over_cap == CAP
    assert read.body == bytes(KEPT_BODY_BYTES)
    assert read.seconds < TIMEOUT + SLACK
    assert read.peak_bytes < MEMORY_BOUND


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("gzipped", [False, True])
def test_a_body_exactly_at_the_cap_is_read_whole_and_one_byte_more_is_over(
    server: HostileServer, transport: str, gzipped: bool
) -> None:
    query = "?gzip" if gzipped else ""
    at = _fetch(transport, server.url, f"bytes-{CAP}{query}")
    assert at.status == 200 and at.over_cap is None and len(at.body) == CAP
    assert at.body.startswith(b'"x') and at.body.endswith(b'x"')
    over = _fetch(transport, server.url, f"bytes-{CAP + 1}{query}")
    assert over.status == 200 and over.over_cap == CAP and over.body == at.body[:KEPT_BODY_BYTES]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_encoding_not_asked_for_is_kept_raw(server: HostileServer, transport: str) -> None:
    read = _fetch(transport, server.url, "brotli")
    assert read.status == 200 and read.body == b"\x0b\x01\x80{" and read.over_cap is None


def test_the_suite_asks_only_for_the_encodings_it_inflates() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("accept-encoding"))
        return httpx.Response(200, json={})

    client = CdfClient(
        "http://server", "p", StaticToken("t"), SecretRegistry(), transport=httpx.MockTransport(answer)
    )
    with client:
        client.send("GET", "http://server/x", token=None)
    assert seen == ["gzip, deflate"]


# -- the shared reading logic ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
def test_a_bomb_is_inflated_only_up_to_the_cap(encoding: str) -> None:
    first, block = compressed_zeros(encoding)

    def forever() -> Iterator[bytes]:
        yield first
        while True:
            yield block

    header = "deflate" if encoding == "raw-deflate" else encoding
    body = read_body(forever(), max_bytes=CAP, deadline=Deadline.after(10), content_encoding=header)
    assert body.over_cap == CAP and body.content == bytes(KEPT_BODY_BYTES)


def test_every_member_of_a_gzip_stream_is_inflated() -> None:
    one = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    first = one.compress(b'{"a":') + one.flush()
    two = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    second = two.compress(b"1}") + two.flush()
    body = read_body([first + second], max_bytes=CAP, deadline=Deadline.after(10), content_encoding="gzip")
    assert body.content == b'{"a":1}' and body.over_cap is None


def test_a_corrupt_gzip_body_is_kept_as_far_as_it_inflated() -> None:
    body = read_body([b"not gzip"], max_bytes=CAP, deadline=Deadline.after(10), content_encoding="gzip")
    assert body.content == b"" and body.undecodable is not None


def test_a_passed_deadline_stops_the_read_between_chunks() -> None:
    with pytest.raises(DeadlineExceeded):
        read_body(iter([b"{", b"}"]), max_bytes=CAP, deadline=Deadline.after(-1))


@pytest.mark.parametrize(
    ("content_encoding", "accept_encoding", "expected"),
    [
        (None, None, []),
        ("gzip", None, ["gzip"]),
        ("deflate, gzip", "gzip, deflate", ["gzip", "deflate"]),
        ("br", None, None),
        ("gzip", "identity", None),
        ("gzip", "*", ["gzip"]),
        ("identity", "identity", []),
    ],
)
def test_which_encodings_are_undone(
    content_encoding: str | None, accept_encoding: str | None, expected: list[str] | None
) -> None:
    assert encodings_to_decode(content_encoding, accept_encoding) == expected


# -- Schemathesis's sessions ------------------------------------------------------------------------


def _schema(base_url: str) -> Any:
    config = schemathesis.Config.from_dict(
        {"base-url": f"{base_url}/api/v1/projects/p", "request-timeout": TIMEOUT}
    )
    return schemathesis.openapi.from_path(str(contract.spec_path()), config=config)


def test_the_engine_sessions_of_a_bounded_schema_read_within_its_limits(server: HostileServer) -> None:
    bounded, other = _schema(server.url), _schema(server.url)
    bound_engine_sessions(bounded, ReadLimits(TIMEOUT, CAP))
    session = engine_context.make_session(bounded.config)
    assert isinstance(session.get_adapter("http://127.0.0.1/"), BoundedAdapter)
    untouched = engine_context.make_session(other.config)
    assert not isinstance(untouched.get_adapter("http://127.0.0.1/"), BoundedAdapter)

    operation = bounded["/workflows/executions/{executionId}/retry"]["POST"]

    def call(execution_id: str) -> Any:
        case = operation.Case(
            path_parameters={"executionId": execution_id}, body={"authentication": {"nonce": "n"}}
        )
        return case.call(session=session)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        call("drip-body")
    assert time.monotonic() - started < TIMEOUT + SLACK
    response = call("gzip-bomb")
    assert response.content == bytes(KEPT_BODY_BYTES) and body_over_cap(response) == CAP
    assert body_over_cap(call(f"bytes-{CAP}")) is None


# -- the judges -------------------------------------------------------------------------------------


def _exchange(status: int, expectation: Expectation | None) -> Exchange:
    return Exchange(
        method="POST",
        url="http://server/retry",
        request_headers={},
        request_body=None,
        status=status,
        response_body=b'{"error": {"code": 4',
        body_over_cap=16 * MIB,
        expectation=expectation,
    )


def test_an_answer_over_the_cap_is_a_finding_of_the_requirement_it_answers() -> None:
    expected = Expectation("STATE-404", frozenset({404}))
    (finding,) = body_within_cap(_exchange(404, expected))
    assert finding.requirement == "STATE-404" and not finding.passed
    assert finding.message == "answer larger than 16 MiB, not read"
    (unexpected,) = body_within_cap(_exchange(400, None))
    assert unexpected.requirement == "ROBUST" and not unexpected.passed


def test_a_body_cut_at_the_cap_is_not_judged_as_if_whole() -> None:
    exchange = _exchange(404, None)
    assert all(o.passed for o in robust(exchange))
    failed = [o for check in HTTP_CHECKS for o in check(exchange) if not o.passed]
    assert [o.message for o in failed] == ["no X-Request-ID header", "answer larger than 16 MiB, not read"]


# -- the option -------------------------------------------------------------------------------------


def test_the_options_say_what_they_bound() -> None:
    for command in ("run", "replay"):
        result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
        help_text = " ".join(result.output.split())
        assert "--max-response-mib" in help_text and "Total seconds per request" in help_text
    refused = CliRunner().invoke(main, ["run", "--max-response-mib", "0"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output


def test_a_judged_exchange_keeps_only_the_beginning_of_a_large_body() -> None:
    body = b'{"error": {"code": 400, "message": "' + b"x" * (2 * KEPT_BODY_BYTES) + b'"}}'
    exchange = Exchange(
        method="POST",
        url="http://server/api/v1/projects/p/workflows/executions/x/retry",
        request_headers={},
        request_body=None,
        status=400,
        response_headers={"content-type": "application/json", "x-request-id": "r"},
        response_body=body,
    )
    observations = Judge("http://server", Ledger()).observe(exchange)
    # Judged whole (a valid envelope), kept in part.
    envelope = [o for o in observations if o.requirement.startswith("ERR-")]
    assert {o.requirement for o in envelope} == {"ERR-ENVELOPE", "ERR-CODE"}
    assert all(o.passed for o in envelope)
    assert exchange.response_body == body[:KEPT_BODY_BYTES]


def test_a_message_quoting_a_large_body_keeps_only_its_beginning() -> None:
    exchange = Exchange(
        method="POST",
        url="http://server/api/v1/projects/p/workflows/executions/x/retry",
        request_headers={},
        request_body=None,
        status=200,
        response_headers={"content-type": "application/json", "x-request-id": "r"},
        response_body=b'"' + b"x" * MIB + b'"',
    )
    observations = Judge("http://server", Ledger()).observe(exchange)
    failed = [o for o in observations if not o.passed]
    # The judges quote a server's values briefly; the ledger's own trim is the net under any that would not.
    assert failed and all(len(o.message) < 2 * KEPT_MESSAGE_CHARACTERS for o in failed)
    long = Observation("RESP-200", False, "x" * MIB, exchange, "custom check")
    kept = _kept(long)
    assert len(kept.message) < 2 * KEPT_MESSAGE_CHARACTERS and "characters in all" in kept.message
