"""The `--app` target: a user's ASGI or WSGI application, loaded by its `module:attr` reference and
served over real HTTP on loopback, in a background thread.

Used for `retry-contract run --app module:attr` (a team's own Python mock, tested in-process) and by
the self-tests. The loopback server itself is the mock package's (`cdf_workflows_mock.loopback`):
this module adds what only the suite needs, loading an app by reference and adapting WSGI apps.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Literal

from a2wsgi import WSGIMiddleware

from cdf_workflows_mock import loopback
from cdf_workflows_mock.loopback import DEFAULT_HOST, MAX_REQUEST_HEAD_BYTES, bind
from retry_contract.errors import RetryContractError

__all__ = [
    "DEFAULT_HOST",
    "MAX_REQUEST_HEAD_BYTES",
    "AppLoadError",
    "InProcessServer",
    "Interface",
    "bind",
    "interface_of",
    "load_app",
]

Interface = Literal["asgi3", "wsgi"]


class AppLoadError(RetryContractError):
    """`module:attribute` does not name an importable ASGI or WSGI application."""


def interface_of(app: Any) -> Interface:
    """ASGI 3 apps are coroutine functions of (scope, receive, send); anything else callable is WSGI."""
    if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(type(app).__call__):
        return "asgi3"
    return "wsgi"


def load_app(reference: str) -> Any:
    """The object named by `package.module:attribute`, imported with the working directory on the path."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise AppLoadError(f"{reference!r} is not of the form package.module:attribute")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise AppLoadError(f"cannot import {module_name!r}: {error}") from None
    app: Any = module
    for part in attribute.split("."):
        app = getattr(app, part, None)
        if app is None:
            raise AppLoadError(f"{module_name!r} has no attribute {attribute!r}")
    if not callable(app):
        raise AppLoadError(f"{reference!r} is not an ASGI or WSGI application (not callable)")
    return app


class InProcessServer(loopback.InProcessServer):
    """`app`, ASGI or WSGI, served by uvicorn on loopback in a daemon thread; a context manager."""

    def __init__(
        self,
        app: Any,
        host: str = DEFAULT_HOST,
        port: int = 0,
        interface: Interface | None = None,
        name: str = "app",
        log_level: str = "error",
    ) -> None:
        # WSGI apps are adapted with a2wsgi: uvicorn's own WSGI support is deprecated.
        asgi = app if (interface or interface_of(app)) == "asgi3" else WSGIMiddleware(app)
        super().__init__(asgi, host, port, name=name, log_level=log_level)

    def __enter__(self) -> InProcessServer:
        self.start()
        return self
