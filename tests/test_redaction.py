"""Nothing secret leaks: canary values planted as every secret, a server that echoes requests in its
errors and breaks the contract (so every report path fills up), and a search of every byte written."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, PROJECT, serve_asgi

from cdf_workflows_mock import MockConfig, create_app
from retry_contract.exchange import Exchange
from retry_contract.reports.reproduction import curl
from retry_contract.secrets_registry import SecretRegistry

CANARY_TOKEN = "canary-token-4f7b2d9e1c"
CANARY_READONLY = "canary-readonly-8a3e6b0f2d"


def leaky_and_broken(app: Any) -> Any:
    """Echoes each retry request body in its answer; createdTime as a string, error codes wrong."""

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/retry"):
            await app(scope, receive, send)
            return
        request_body = b""
        more = True
        while more:
            message = await receive()
            request_body += message.get("body", b"")
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": request_body, "more_body": False}

        start: dict[str, Any] = {}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body = json.loads(message.get("body", b"") or b"{}")
            echoed = request_body.decode("utf-8", "replace")
            # The echo goes first, so it lands in the response excerpts that the reports keep.
            if start["status"] == 200:
                body = {"echo": echoed, **body, "createdTime": str(body["createdTime"])}
            elif isinstance(body.get("error"), dict):
                body = {"error": {"message": f"request was {echoed}", "code": 999}}
            data = json.dumps(body).encode()
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})

        await app(scope, replay, capture)

    return wrapper


@pytest.mark.slow
def test_no_secret_in_any_output(tmp_path: Path) -> None:
    app = create_app(MockConfig.with_tokens(PROJECT, CANARY_TOKEN, CANARY_READONLY))
    reports = tmp_path / "reports"
    with serve_asgi(leaky_and_broken(app)) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDF_")}
        env.update({"CDF_TOKEN": CANARY_TOKEN, "CDF_READONLY_TOKEN": CANARY_READONLY})
        completed = subprocess.run(
            [
                *CLI,
                "run",
                "--base-url",
                url,
                "--project",
                PROJECT,
                "--report-dir",
                str(reports),
                "--max-examples",
                "10",
            ],
            capture_output=True,
            env=env,
            timeout=300,
        )
    assert completed.returncode == 1, completed.stdout[-2000:]
    nonces = list(app.state.store._sessions)  # every nonce the server issued during the run
    assert len(nonces) > 20
    written = [completed.stdout, completed.stderr] + [
        p.read_bytes() for p in reports.rglob("*") if p.is_file()
    ]
    assert len(written) >= 4
    report = json.loads((reports / "retry-contract.json").read_text())
    assert any(r["failures"] for r in report["requirements"]), "the broken server produced no failure records"
    assert b"[REDACTED]" in (reports / "retry-contract.json").read_bytes(), (
        "the leak paths were not exercised"
    )
    for secret in [CANARY_TOKEN, CANARY_READONLY, *nonces]:
        for blob in written:
            assert secret.encode() not in blob, f"a secret leaked: {secret[:6]}..."


def test_curl_reproduction_uses_placeholders() -> None:
    registry = SecretRegistry()
    registry.add("tok-secret-value")
    # A nonce a session issued is registered as it arrives; only such a nonce becomes $NONCE (a made-up
    # one is no secret, and shown as it was: replacing it with a real one would change the request).
    registry.add("n0nce-value-1")
    exchange = Exchange(
        "POST",
        "http://h/api/v1/projects/p/workflows/executions/x/retry",
        {"authorization": "Bearer tok-secret-value", "content-type": "application/json"},
        b'{"authentication": {"nonce": "n0nce-value-1"}, "x": "it\'s"}',
        400,
    )
    command = curl(exchange, registry)
    assert "tok-secret-value" not in command and "n0nce-value-1" not in command
    assert "Bearer $CDF_TOKEN" in command and "$NONCE" in command
