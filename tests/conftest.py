"""Fixtures shared by the self-tests of every tier, and the tier markers.

A test's tier is the folder it lives in: `unit/` (no server), `mock/` (against the embedded mock or its
app) and `e2e/` (whole CLI runs in subprocesses, kill matrix, hostile servers, browser). Each test gets
its tier's marker, so `-m unit` selects the same tests as `tests/unit`; `slow` marks what the fast tier
(`python3 dev.py test --fast`) leaves out.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from support.project import PROJECT
from support.servers import serve_asgi

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "mock", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            tier = item.path.relative_to(TESTS).parts[0]
        except ValueError:  # a test outside tests/ (pytester's own projects)
            continue
        if tier in TIERS:
            item.add_marker(tier)


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
    """The server of the live-target tests: `--target-url` (CDF_TOKEN, CDF_READONLY_TOKEN) or a mock."""
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


@pytest.fixture
def asgi_server() -> Any:
    return serve_asgi
