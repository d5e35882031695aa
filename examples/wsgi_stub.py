"""A WSGI application that is not a CDF API at all: `--app` serves it, the preflight rejects it."""

from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("418 I'm a teapot", [("Content-Type", "text/plain")])
    return [b"I am not a CDF API"]
