"""Pytest options and fixtures shared by the self-tests.

`--target-url`/`--target-project` point the live-target tests at another server (credentials from
CDF_TOKEN / CDF_READONLY_TOKEN); without them those tests use the embedded mock.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from retry_contract.serving import InProcessServer

PROJECT = "contract-test"
# The CLI as a user runs it, in a separate process.
CLI = (sys.executable, "-m", "retry_contract.cli")
# pytester runs the pytest plugin in a separate pytest process (tests/test_pytest_plugin.py).
pytest_plugins = ["pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("retry-contract")
    group.addoption(
        "--target-url", default=None, help="Server for the live-target tests (default: embedded mock)"
    )
    group.addoption("--target-project", default=None, help="Project on --target-url")


@dataclass(frozen=True)
class Target:
    base_url: str
    project: str
    token: str
    readonly_token: str | None


@pytest.fixture(scope="session")
def mock_tokens() -> tuple[str, str]:
    return secrets.token_urlsafe(16), secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
def embedded_mock(mock_tokens: tuple[str, str]) -> Iterator[EmbeddedMock]:
    write, readonly = mock_tokens
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, write, readonly)) as mock:
        yield mock


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, mock_tokens: tuple[str, str]) -> Iterator[Target]:
    url = request.config.getoption("--target-url")
    if url:
        token = os.environ.get("CDF_TOKEN")
        if not token:
            pytest.exit("--target-url needs CDF_TOKEN in the environment", returncode=2)
        project = request.config.getoption("--target-project") or PROJECT
        yield Target(url, project, token, os.environ.get("CDF_READONLY_TOKEN"))
        return
    write, readonly = mock_tokens
    with EmbeddedMock(MockConfig.with_tokens(PROJECT, write, readonly)) as mock:
        yield Target(mock.base_url, PROJECT, write, readonly)


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve any ASGI app on a free loopback port (for deliberately broken variants of the mock)."""
    with InProcessServer(app, interface="asgi3", name="test server") as server:
        yield server.base_url


@pytest.fixture
def asgi_server() -> Any:
    return serve_asgi
