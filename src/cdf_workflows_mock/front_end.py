"""A front-end proxy in front of the API, as deployments commonly have one (nginx, an ingress, a CDN).

It refuses oversized requests itself, before the API sees them, with a page of its own: 414 for a
request target longer than `max_target_bytes`, 431 for headers longer than `max_header_bytes`, 413
for a declared body longer than `max_body_bytes`. Its pages are HTML, without the Cognite error
envelope and without `X-Request-ID`, exactly what nginx answers with its default error pages. The
contract allows this (ROBUST): for 413/414/431 the envelope is a SHOULD, so a server behind such a
front end is faithful, and the `proxied` profile is how the suite proves it raises no MUST alarm.

Everything else passes through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

_REASONS = {
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    431: "Request Header Fields Too Large",
}


@dataclass(frozen=True, slots=True)
class FrontEndLimits:
    """What the front end lets through; nginx's defaults for the target and headers (8 KiB buffers)."""

    max_target_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    # Lower than nginx's 1 MiB default, so the suite's 64 KB oversized bodies meet it too.
    max_body_bytes: int = 64 * 1024


def error_page(status: int) -> bytes:
    """The page nginx answers with, byte for byte but for the server line."""
    title = f"{status} {_REASONS[status]}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>front-end</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


class FrontEndMiddleware:
    """Refuses what the front end would, with its own page; passes on everything else."""

    def __init__(self, app: ASGIApp, limits: FrontEndLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = self._refusal(scope)
        if status is None:
            await self.app(scope, receive, send)
            return
        page = error_page(status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html"),
                    (b"content-length", str(len(page)).encode()),
                    # Refused before the body was read: the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": page})

    def _refusal(self, scope: Scope) -> int | None:
        target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        if target > self.limits.max_target_bytes:
            return 414
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        if sum(len(name) + len(value) + 4 for name, value in headers) > self.limits.max_header_bytes:
            return 431
        declared = [value.strip() for name, value in headers if name.lower() == b"content-length"]
        if any(value.isdigit() and int(value) > self.limits.max_body_bytes for value in declared):
            return 413
        return None
