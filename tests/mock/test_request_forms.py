"""The request forms put the same JSON on the wire, and the SDK form is what the official SDK sends."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from retry_contract import request_forms
from retry_contract.request_forms import ALWAYS_ACCEPTED, PLAIN, RAW_UTF8, REORDERED, SDK, RequestForm
from retry_contract.runner import RunResult
from retry_contract.scenarios import forms
from support.scenario_runs import run_scenarios

EXECUTION_ID = "059edaa4-a17a-4102-910e-2c3591500cce"
BODY = {"authentication": {"nonce": "n0nce"}, "note": "Tromsø ✓"}
# Headers a transport adds by itself, or whose value depends on the machine.
TRANSPORT_HEADERS = {"host", "content-length", "connection", "accept-encoding", "authorization", "user-agent"}


@pytest.mark.parametrize("form", [PLAIN, RAW_UTF8, REORDERED, *ALWAYS_ACCEPTED], ids=lambda f: f.name)
def test_every_form_carries_the_same_document(form: RequestForm) -> None:
    content, headers = form.encode(BODY)
    if headers.get("content-encoding") == "gzip":
        content = gzip.decompress(content)
    assert json.loads(content.decode("utf-8")) == BODY
    assert headers["content-type"].split(";")[0] == "application/json"


def test_raw_utf8_differs_from_escaped_on_the_wire() -> None:
    assert b"\\u" in PLAIN.encode(BODY)[0]
    assert "Tromsø".encode() in RAW_UTF8.encode(BODY)[0]
    assert list(json.loads(REORDERED.encode(BODY)[0])) == ["note", "authentication"]


class _Capture(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        answer: dict[str, Any] = (
            {"items": [{"id": 1, "status": "READY", "nonce": "n0nce", "type": "TOKEN_EXCHANGE"}]}
            if self.path.endswith("/sessions")
            else {
                "id": EXECUTION_ID,
                "workflowExternalId": "wf",
                "status": "RUNNING",
                "engineExecutionId": EXECUTION_ID,
                "createdTime": 1,
                "metadata": {},
            }
        )
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Capture.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sdk_form_is_what_the_official_sdk_sends(capture_server: str) -> None:
    cognite = pytest.importorskip("cognite.client")
    from cognite.client.credentials import Token

    config = cognite.ClientConfig(
        client_name="retry-contract", project="p", credentials=Token("t"), base_url=capture_server
    )
    cognite.CogniteClient(config).workflows.executions.retry(EXECUTION_ID)
    path, sent_headers, sent_body = _Capture.seen[-1]
    assert path.endswith(f"/workflows/executions/{EXECUTION_ID}/retry")

    ours_body, ours_headers = SDK.encode({"authentication": {"nonce": "n0nce"}})
    assert gzip.decompress(ours_body) == gzip.decompress(sent_body)
    sent = {k: v for k, v in sent_headers.items() if k not in TRANSPORT_HEADERS}
    assert sent == {k: v for k, v in ours_headers.items() if k not in TRANSPORT_HEADERS}
    assert request_forms.SDK_VERSION in sent_headers["user-agent"]


def _request_forms_alone(defects: frozenset[str]) -> RunResult:
    return run_scenarios((forms.request_forms,), explore=0, mock_defects=defects)


@pytest.mark.parametrize(
    ("defects", "noted"),
    [
        pytest.param(frozenset(), False, id="faithful"),
        # Slow: each execution is waited for to show its retry's effect, within the run's wait budget.
        pytest.param(
            frozenset({"second-retry-starts-nothing"}),
            True,
            id="second-retry-starts-nothing",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_every_form_gets_a_retryable_execution_even_one_that_cannot_be_failed_again(
    defects: frozenset[str], noted: bool
) -> None:
    """Executions are failed again in the background between their turns; one whose retry started
    nothing cannot be, and is replaced by a fresh one of its shape, with a note saying so."""
    result = _request_forms_alone(defects)
    retryable = result.ledger.results["STATE-RETRYABLE"]
    assert retryable.judged and not retryable.failures
    assert set(retryable.statuses) == {200}
    assert {form.name for form in ALWAYS_ACCEPTED} <= set(result.ledger.request_forms)
    notes = [note for note in result.ledger.notes if "could not be failed again" in note]
    assert bool(notes) == noted, result.ledger.notes
