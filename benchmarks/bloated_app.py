"""The suite's faithful mock, with every answer of the retry endpoint bloated to BLOAT_MIB MiB of
JSON string (default 20: over the 16 MiB cap), for measuring a whole run's peak RSS:

    BLOAT_MIB=20 CDF_TOKEN=example-write-token CDF_READONLY_TOKEN=example-readonly-token \\
        retry-contract run --app benchmarks.bloated_app:app --project example-project

The body is streamed a MiB at a time: the app never holds it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cdf_workflows_mock import MockConfig, create_app

Message = MutableMapping[str, Any]
_faithful = create_app(
    MockConfig.with_tokens("example-project", "example-write-token", "example-readonly-token")
)
SIZE = int(float(os.environ.get("BLOAT_MIB", "20")) * 1024 * 1024)
_MIB_OF_X = b"x" * (1024 * 1024)


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] != "http" or not scope["path"].endswith("/retry"):
        await _faithful(scope, receive, send)
        return

    async def bloated(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
            await send({**message, "headers": [*headers, (b"content-length", str(SIZE).encode())]})
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            await send({"type": "http.response.body", "body": b'"', "more_body": True})
            left = SIZE - 2
            while left > 0:
                piece = _MIB_OF_X[: min(left, len(_MIB_OF_X))]
                left -= len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b'"', "more_body": False})

    await _faithful(scope, receive, bloated)
