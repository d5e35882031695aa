"""Nothing secret leaks: canary values planted as every secret, a server that echoes requests in its
errors and breaks the contract (so every report path fills up), and a search of every byte written."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cdf_workflows_mock import MockConfig, create_app
from retry_contract.checks.http import robust
from retry_contract.exchange import Exchange
from retry_contract.reports.curl_script import curl
from retry_contract.reports.html import _message as html_message
from retry_contract.reports.markdown import _cell as markdown_cell
from retry_contract.reports.replay_record import abbreviated
from retry_contract.secrets_registry import REPLACEMENT, SecretRegistry, head
from support import secret_scanner
from support.project import CLI, PROJECT
from support.servers import serve_asgi

CANARY_TOKEN = "canary-token-4f7b2d9e1c"
CANARY_READONLY = "canary-readonly-8a3e6b0f2d"


_ECHO = "@echo@"


def echo_in_every_form(request_body: bytes, authorization: bytes) -> str:
    """JSON string content (escapes are JSON's own) showing the request body and its Authorization
    header as they are, base64-encoded at another alignment, hex-encoded, and `\\u`-escaped."""
    pieces = []
    for data in (request_body, authorization):
        text = data.decode("utf-8", "replace")
        pieces += [
            json.dumps(text)[1:-1],
            base64.b64encode(b"~" + data).decode(),
            data.hex(),
            "".join(f"\\u{ord(c):04x}" for c in text),
            "".join(f"\\u{ord(c):04X}" if i % 2 else json.dumps(c)[1:-1] for i, c in enumerate(text)),
        ]
    return " | ".join(pieces)


def leaky_and_broken(app: Any) -> Any:
    """Echoes each retry request body and its Authorization header in its answer, in every form;
    createdTime as a string, error codes wrong."""

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
            # The echo goes first, so it lands in the response excerpts that the reports keep (cut
            # at 300 and 2048 characters: some form of a secret straddles each cut).
            if start["status"] == 200:
                body = {"echo": _ECHO, **body, "createdTime": str(body["createdTime"])}
            elif isinstance(body.get("error"), dict):
                body = {"error": {"message": f"request was {_ECHO}", "code": 999}}
            authorization = dict(scope["headers"]).get(b"authorization", b"")
            data = json.dumps(body).replace(_ECHO, echo_in_every_form(request_body, authorization)).encode()
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
    for blob in written:
        leaks = secret_scanner.found_any(blob, [CANARY_TOKEN, CANARY_READONLY, *nonces])
        assert leaks == [], f"secrets leaked: {leaks[:5]}"


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


# -- every form a hostile server might echo a secret in ---------------------------------------------

# Three shapes of secret: short (searched for one by one), made of characters outside base64's (its
# raw form searched for alone, its encodings sampled), and a plain URL-safe token (all sampled).
SHORT_SECRET = CANARY_TOKEN
ODD_SECRET = "n0nce~~~>>>???ZZzzYYyy-_-_0123456789abcdefgh"
PLAIN_SECRET = "Zt8kQ2vN0xYb5LmC7rWp3HsJ9dF1gA6eU4iO2yTqR0c"
SECRETS = (SHORT_SECRET, ODD_SECRET, PLAIN_SECRET)


def registry_of(*secrets: str) -> SecretRegistry:
    registry = SecretRegistry()
    for secret in secrets:
        registry.add(secret)
    return registry


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("form", sorted(secret_scanner.encodings(SHORT_SECRET)))
def test_a_secret_is_redacted_in_every_encoded_form(secret: str, form: str) -> None:
    echoed = secret_scanner.encodings(secret)[form]
    assert secret_scanner.found(echoed, secret), "the scanner must see what it is meant to catch"
    registry = registry_of(*SECRETS)
    for text in (echoed, f'{{"error": {{"message": "token was {echoed}."}}}}', f"a={echoed}&b=1"):
        redacted = registry.redact(text)
        assert secret_scanner.found(redacted, secret) == [], redacted
        assert REPLACEMENT in redacted


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("url_safe", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_a_secret_inside_a_longer_base64_text_is_redacted_at_every_alignment(
    secret: str, url_safe: bool, padded: bool
) -> None:
    registry = registry_of(secret)
    for before in range(6):
        for after in range(4):
            blob = secret_scanner.base64_embedded(
                secret,
                b"\x00\xff\x10"[: before % 3] * (1 + before // 3),
                b"\xfe" * after,
                url_safe=url_safe,
                padded=padded,
            )
            assert secret_scanner.found(blob, secret) == ["base64"]
            redacted = registry.redact(f"body: {blob}")
            assert secret_scanner.found(redacted, secret) == [], (before, after, redacted)


def test_mixed_escapes_are_redacted_whatever_characters_are_escaped() -> None:
    registry = registry_of(*SECRETS)
    draw = random.Random(5)
    for secret in SECRETS:
        for _ in range(50):
            shown = "".join(
                (f"\\u{ord(c):04X}" if draw.random() < 0.5 else f"\\u{ord(c):04x}")
                if draw.random() < 0.4
                else (f"%{ord(c):02x}" if draw.random() < 0.2 else c)
                for c in secret
            )
            redacted = registry.redact(f'"echo": "{shown}", "next": 1')
            assert secret_scanner.found(redacted, secret) == [], redacted
            assert redacted.endswith('", "next": 1')


def test_text_without_secrets_is_left_as_it_is() -> None:
    registry = registry_of(*SECRETS)
    text = (
        "GET /api/v1/projects/p%20q/workflows?cursor=QUFFQ0F3UUZC%3D%3D \\u00e9t\\u00E9 "
        + base64.b64encode(bytes(range(256))).decode()
        + " 0123456789abcdef" * 20
    )
    assert registry.redact(text) == text
    assert registry.cut(text, 80) == text[:80]


@pytest.mark.parametrize("limit", [80, 120, 300, 2048])
@pytest.mark.parametrize("form", sorted(secret_scanner.encodings(SHORT_SECRET)))
def test_a_cut_never_leaves_the_start_of_a_secret(limit: int, form: str) -> None:
    registry = registry_of(*SECRETS)
    for secret in SECRETS:
        echoed = secret_scanner.encodings(secret)[form]
        # The secret straddles the cut at every offset, whole in the text or itself cut short (a
        # server that echoed only its start): neither may leave a recognisable start behind.
        for shown in (echoed, echoed[: len(echoed) // 2]):
            for before in range(limit - len(shown), limit + 1):
                text = "." * max(before, 0) + shown + " ..." + "." * 40
                kept = registry.cut(text, limit)
                assert len(kept) <= limit
                assert secret_scanner.found(kept, secret, length=4) == [], (before, kept[-60:])


def test_a_cut_keeps_what_is_no_secret_and_marks_the_cut() -> None:
    registry = registry_of(*SECRETS)
    text = "x" * 70 + PLAIN_SECRET + " and more"
    assert registry.cut(text, 200) == "x" * 70 + REPLACEMENT + " and more"
    assert registry.cut(text, 75, "...") == "x" * 70 + "..."  # "[REDA" is no use: left out whole
    assert registry.cut(text, 85, "...") == "x" * 70 + REPLACEMENT + " and ..."
    assert registry.cut("short", 80, "...") == "short"


def test_an_excerpt_of_a_large_body_is_cut_safely_without_decoding_all_of_it() -> None:
    registry = registry_of(*SECRETS)
    body = ("é" * 295 + PLAIN_SECRET).encode() + b"z" * 5_000_000
    shown = registry.excerpt(body, 300)
    assert shown == "é" * 295 and secret_scanner.found(shown, PLAIN_SECRET, length=4) == []
    assert registry.excerpt(b"\xff" + SHORT_SECRET.encode(), 300) == "\ufffd" + REPLACEMENT


def test_secrets_registered_while_text_is_redacted_elsewhere() -> None:
    registry = SecretRegistry()
    draw = random.Random(3)
    # Alike at both ends, as tokens of one header or nonces of one prefix are.
    nonces = [f"nonce-{draw.randrange(16**12):012x}-" + "k" * 30 for _ in range(300)]
    errors: list[BaseException] = []

    def register() -> None:
        for nonce in nonces:
            registry.add(nonce)

    def redact() -> None:
        try:
            for _ in range(200):
                registry.redact(" ".join(nonces[:50]))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=register), threading.Thread(target=redact)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert registry.redact(" ".join(nonces)) == " ".join([REPLACEMENT] * len(nonces))
    assert "nonce-" not in repr(registry)


def test_reports_cut_through_the_registry() -> None:
    registry = registry_of(*SECRETS)
    for limit in (80, 2048):
        url = "https://h/api/v1/projects/p/x?" + "q" * (limit - 34) + PLAIN_SECRET
        shown = abbreviated(url, registry, limit)
        assert secret_scanner.found(shown, PLAIN_SECRET, length=4) == []
        assert shown.endswith(f"...({len(url)} characters in all)")
    exchange = Exchange(
        "POST", "http://h/x", {}, None, 400, response_body=("p" * 290 + SHORT_SECRET).encode()
    )
    message = html_message("400", exchange.response_headers, exchange.response_body + b"!" * 3000, registry)
    assert secret_scanner.found(message, SHORT_SECRET, length=4) == []
    cell = SimpleNamespace(secrets=registry)
    shown_cell = markdown_cell(cell, "y" * 190 + ODD_SECRET)  # type: ignore[arg-type]
    assert secret_scanner.found(shown_cell, ODD_SECRET, length=4) == [] and shown_cell.endswith("...")


@pytest.mark.parametrize("limit", [80, 120])
def test_a_judges_excerpt_of_a_body_never_ends_in_part_of_a_token(limit: int) -> None:
    for before in range(limit - len(PLAIN_SECRET), limit + 1):
        body = ("<p>" + "e" * (before - 3) + " " + PLAIN_SECRET + " end</p>").encode()
        kept = head(body, limit)
        assert len(kept) <= limit and secret_scanner.found(kept, PLAIN_SECRET, length=4) == []
        assert body.startswith(kept)
    assert head(b"short body", limit) == b"short body"
    assert head(b"x" * limit + b" after", limit) == b"x" * limit  # cut at a boundary: all kept
    exchange = Exchange("POST", "http://h/x", {}, None, 400, response_body=body)
    (observation,) = robust(exchange)
    assert not observation.passed and secret_scanner.found(observation.message, PLAIN_SECRET, length=4) == []
