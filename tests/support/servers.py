"""Serving an app the self-tests build (a deliberately broken variant of the mock) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from retry_contract.app_target import InProcessServer


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve any ASGI app on a free loopback port; yields its base URL."""
    with InProcessServer(app, interface="asgi3", name="test server") as server:
        yield server.base_url
