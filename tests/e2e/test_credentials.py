"""Client credentials against a local OAuth2 token endpoint: fetched once, refreshed before expiry,
used for sessions too, and refused with a clear error."""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cdf_workflows_mock import EmbeddedMock, MockConfig
from retry_contract.credentials import (
    ClientCredentials,
    CredentialsError,
    StaticToken,
    from_environment,
    has_userinfo,
)
from retry_contract.secrets_registry import SecretRegistry
from support.project import CLI, PROJECT
from support.servers import serve_asgi

CLIENT_ID = "retry-contract-test-client"
CLIENT_SECRET = "canary-client-secret-5e1f"


class TokenEndpoint:
    """An identity provider that issues `access_token` for the right client and counts the grants."""

    def __init__(self, access_token: str, expires_in: int) -> None:
        self.access_token = access_token
        self.expires_in = expires_in
        self.grants = 0

    async def token(self, request: Request) -> JSONResponse:
        # Parsed by hand: Starlette's form parser needs python-multipart, which the suite does not use.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        basic = request.headers.get("authorization", "")
        authenticated = (form.get("client_secret") == CLIENT_SECRET) or basic.startswith("Basic ")
        if form.get("grant_type") != "client_credentials" or not authenticated:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if basic:
            user, _, password = base64.b64decode(basic.removeprefix("Basic ")).decode().partition(":")
            if (user, password) != (CLIENT_ID, CLIENT_SECRET):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
        self.grants += 1
        return JSONResponse(
            {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in}
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/oauth2/token", self.token, methods=["POST"])])


@pytest.fixture
def identity_provider() -> Iterator[tuple[TokenEndpoint, str]]:
    endpoint = TokenEndpoint("issued-" + os.urandom(8).hex(), expires_in=3600)
    with serve_asgi(endpoint.app()) as url:
        yield endpoint, f"{url}/oauth2/token"


def test_the_token_is_fetched_once_while_it_is_fresh(identity_provider: tuple[TokenEndpoint, str]) -> None:
    endpoint, url = identity_provider
    registry = SecretRegistry()
    credentials = ClientCredentials(CLIENT_ID, CLIENT_SECRET, url, ["user_impersonation"], registry)
    assert {credentials.bearer() for _ in range(5)} == {endpoint.access_token}
    assert endpoint.grants == 1
    assert registry.redact(f"{endpoint.access_token} {CLIENT_SECRET}") == "[REDACTED] [REDACTED]"


def test_a_token_about_to_expire_is_refreshed(identity_provider: tuple[TokenEndpoint, str]) -> None:
    endpoint, url = identity_provider
    endpoint.expires_in = 30  # inside the refresh margin: every use must fetch a fresh one
    credentials = ClientCredentials(CLIENT_ID, CLIENT_SECRET, url, [], SecretRegistry())
    counter = itertools.count()
    for _ in range(3):
        endpoint.access_token = f"rotated-{next(counter)}"
        assert credentials.bearer() == endpoint.access_token
    assert endpoint.grants == 3


def test_refused_client_credentials_are_a_clear_error(identity_provider: tuple[TokenEndpoint, str]) -> None:
    _, url = identity_provider
    credentials = ClientCredentials(CLIENT_ID, "wrong-secret", url, [], SecretRegistry())
    with pytest.raises(CredentialsError, match="refused the client credentials"):
        credentials.bearer()


def test_an_unreachable_token_endpoint_is_a_clear_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/token"  # nothing listens there once closed
    credentials = ClientCredentials(CLIENT_ID, CLIENT_SECRET, url, [], SecretRegistry(), timeout=2)
    with pytest.raises(CredentialsError, match="cannot reach the token endpoint"):
        credentials.bearer()


def test_the_cli_names_an_unreachable_token_endpoint_in_one_line() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDF_")}
    environment |= {
        "CDF_CLIENT_ID": CLIENT_ID,
        "CDF_CLIENT_SECRET": CLIENT_SECRET,
        "CDF_TOKEN_URL": f"http://127.0.0.1:{port}/token",
    }
    command = [*CLI, "run", "--base-url", f"http://127.0.0.1:{port}", "--project", PROJECT]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 2
    assert "cannot reach the token endpoint" in done.stderr and "internal error" not in done.stderr
    assert CLIENT_SECRET not in done.stdout + done.stderr


def test_no_command_prints_a_deprecation_warning() -> None:
    # authlib warns on import unless httpx2 is there; the test environment has it through the SDK,
    # so the package itself must declare it, or users without the SDK see the warning everywhere.
    assert any(r.startswith("httpx2") for r in metadata.requires("retry-contract") or [])
    done = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "Warning" not in done.stderr, done.stderr


def test_environment_precedence_and_incomplete_settings() -> None:
    registry = SecretRegistry()
    assert from_environment({}, registry) is None
    assert isinstance(from_environment({"CDF_TOKEN": "tok-123456"}, registry), StaticToken)
    with pytest.raises(CredentialsError, match="missing CDF_TOKEN_URL"):
        from_environment({"CDF_CLIENT_ID": "a", "CDF_CLIENT_SECRET": "b"}, registry)


@pytest.mark.slow
def test_a_whole_run_with_client_credentials(
    identity_provider: tuple[TokenEndpoint, str], tmp_path: Path
) -> None:
    endpoint, url = identity_provider
    readonly = "readonly-" + os.urandom(6).hex()
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, endpoint.access_token, readonly)) as mock:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDF_")}
        env.update(
            {
                "CDF_CLIENT_ID": CLIENT_ID,
                "CDF_CLIENT_SECRET": CLIENT_SECRET,
                "CDF_TOKEN_URL": url,
                "CDF_SCOPES": "https://api.example/.default",
                "CDF_READONLY_TOKEN": readonly,
            }
        )
        result = subprocess.run(
            [
                *CLI,
                "run",
                "--base-url",
                mock.base_url,
                "--project",
                PROJECT,
                "--report-dir",
                str(tmp_path),
                "--max-examples",
                "5",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report: dict[str, Any] = json.loads((tmp_path / "retry-contract.json").read_text())
    assert report["verdict"] == "conformant"
    assert endpoint.grants == 1
    everything = result.stdout + result.stderr + "".join(p.read_text() for p in tmp_path.iterdir())
    assert CLIENT_SECRET not in everything and endpoint.access_token not in everything


# -- what an identity provider may answer instead of a token -----------------------------------------

TOKEN_URL = "https://login.example/oauth2/token"
ISSUED = "issued-token-" + "8d2f6a1c9e4b7d3f"


def answering(status: int, content: bytes, content_type: str = "application/json") -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=content, headers={"content-type": content_type})

    return httpx2.MockTransport(handler)


def echoed_secret() -> str:
    """The client secret as a careless identity provider echoes it, in several forms at once."""
    return " ".join(
        [CLIENT_SECRET, base64.b64encode(CLIENT_SECRET.encode()).decode(), CLIENT_SECRET.encode().hex()]
    )


ODD_ANSWERS = {
    "an HTML page": (200, b"<html><body>Sign in</body></html>", "text/html"),
    "an HTML error page": (400, b"<html>Bad request for " + CLIENT_SECRET.encode() + b"</html>", "text/html"),
    "a gateway error": (502, b"upstream " + CLIENT_SECRET.encode(), "text/plain"),
    "an error echoing the secret": (
        401,
        json.dumps({"error": f"invalid_client {echoed_secret()}\nsecond line"}).encode(),
        "application/json",
    ),
    "an error that is an object": (
        400,
        json.dumps({"error": {"code": "bad", "secret": CLIENT_SECRET}}).encode(),
        "application/json",
    ),
    "a JSON list": (200, b"[1, 2]", "application/json"),
    "an access_token that is a number": (
        200,
        b'{"access_token": 12345, "token_type": "Bearer"}',
        "application/json",
    ),
    "an access_token that is an object": (
        200,
        json.dumps({"access_token": {"value": ISSUED}, "token_type": "Bearer"}).encode(),
        "application/json",
    ),
    "an expiry that is no number": (
        200,
        json.dumps({"access_token": ISSUED, "token_type": "Bearer", "expires_in": "soon"}).encode(),
        "application/json",
    ),
    "an expiry that is an object": (
        200,
        json.dumps({"access_token": ISSUED, "token_type": "Bearer", "expires_in": {"s": 1}}).encode(),
        "application/json",
    ),
    "no access_token": (200, b'{"token_type": "Bearer"}', "application/json"),
}


@pytest.mark.parametrize("answer", sorted(ODD_ANSWERS))
def test_an_odd_answer_of_the_token_endpoint_is_one_clear_line_without_secrets(answer: str) -> None:
    status, content, content_type = ODD_ANSWERS[answer]
    registry = SecretRegistry()
    credentials = ClientCredentials(
        CLIENT_ID, CLIENT_SECRET, TOKEN_URL, [], registry, transport=answering(status, content, content_type)
    )
    with pytest.raises(CredentialsError) as raised:
        credentials.bearer()
    message = str(raised.value)
    assert "\n" not in message and len(message) < 400
    assert "token endpoint" in message or "identity provider" in message
    for secret in (CLIENT_SECRET, ISSUED):
        assert not any(form in message for form in secret_forms(secret)), message


def secret_forms(secret: str) -> list[str]:
    data = secret.encode()
    return [secret, base64.b64encode(data).decode().rstrip("="), data.hex(), secret[:8]]


def test_a_transport_error_quoting_the_server_is_redacted_and_on_one_line() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.RemoteProtocolError(
            f"illegal header line: b'X-Echo {CLIENT_SECRET}'\nmore", request=request
        )

    credentials = ClientCredentials(
        CLIENT_ID, CLIENT_SECRET, TOKEN_URL, [], SecretRegistry(), transport=httpx2.MockTransport(handler)
    )
    with pytest.raises(CredentialsError, match=r"cannot reach the token endpoint .*\[REDACTED\]") as raised:
        credentials.bearer()
    assert "\n" not in str(raised.value) and CLIENT_SECRET not in str(raised.value)


def test_credentials_never_show_their_secrets_in_a_repr(identity_provider: tuple[TokenEndpoint, str]) -> None:
    endpoint, url = identity_provider
    static = StaticToken("static-" + ISSUED)
    assert ISSUED not in repr(static) and ISSUED not in str(static)
    credentials = ClientCredentials(CLIENT_ID, CLIENT_SECRET, url, [], SecretRegistry())
    credentials.bearer()
    shown = repr(credentials) + str(credentials) + repr([credentials, static])
    assert CLIENT_SECRET not in shown and endpoint.access_token not in shown
    assert CLIENT_ID in repr(credentials)


@pytest.mark.parametrize(
    ("url", "carries"),
    [
        ("https://user:pw@login.example/token", True),
        ("https://user@login.example/token", True),
        ("user:pw@login.example", True),
        ("https://login.example/token?next=a@b", False),
        ("https://login.example/a@b/token", False),
        ("https://login.example/token", False),
    ],
)
def test_credentials_in_a_url_are_recognised(url: str, carries: bool) -> None:
    assert has_userinfo(url) is carries


def test_a_token_url_with_credentials_is_refused_without_repeating_them() -> None:
    environment = {
        "CDF_CLIENT_ID": CLIENT_ID,
        "CDF_CLIENT_SECRET": CLIENT_SECRET,
        "CDF_TOKEN_URL": "https://someone:hunter2-password@login.example/token",
    }
    with pytest.raises(CredentialsError, match="must not carry credentials") as raised:
        from_environment(environment, SecretRegistry())
    assert "hunter2" not in str(raised.value)


def test_the_cli_says_in_one_line_that_the_token_endpoint_echoed_nothing_usable() -> None:
    async def echoing(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        shown = form.get("client_secret", "")
        return HTMLResponse(f"<html><h1>Denied</h1><p>secret {shown} {shown.encode().hex()}</p></html>", 403)

    app = Starlette(routes=[Route("/token", echoing, methods=["POST"])])
    with serve_asgi(app) as url:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CDF_")}
        environment |= {
            "CDF_CLIENT_ID": CLIENT_ID,
            "CDF_CLIENT_SECRET": CLIENT_SECRET,
            "CDF_TOKEN_URL": f"{url}/token",
        }
        command = [*CLI, "run", "--base-url", url, "--project", PROJECT, "-q"]
        done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("retry-contract: could not run: the token endpoint")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    everything = done.stdout + done.stderr
    assert CLIENT_SECRET not in everything and CLIENT_SECRET.encode().hex() not in everything
