"""Matching a request to an endpoint by the raw path's segments.

The mock routes on the raw path, decoding each segment on its own, because the SDK percent-
encodes identifiers (`v/1` becomes `v%2F1`) and a router on the decoded path would split such a
segment in two. A path that matches a template but not its method is a 405 with `Allow`. Where a
path matches several templates, the one with a fixed segment where the others have a parameter, at
the first place they differ, takes it: `POST /workflows/executions/list` lists executions, and a
`GET` of it is a 405, never a read of an execution whose id is "list".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from cdf_workflows_mock.errors import MethodNotAllowed, NotFound

Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    template: tuple[str, ...]
    handler: Handler
    # The capability the caller's token needs (None: any valid token).
    capability: str | None

    @classmethod
    def of(cls, method: str, template: str, handler: Handler, capability: str | None) -> Endpoint:
        return cls(method, tuple(template.strip("/").split("/")), handler, capability)

    @property
    def specificity(self) -> tuple[bool, ...]:
        """Which segments are fixed: of two templates matching one path, the greater tuple takes it."""
        return tuple(not _is_parameter(pattern) for pattern in self.template)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        if len(segments) != len(self.template):
            return None
        params: dict[str, str] = {}
        for pattern, segment in zip(self.template, segments, strict=True):
            if _is_parameter(pattern):
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params


def _is_parameter(pattern: str) -> bool:
    return pattern.startswith("{") and pattern.endswith("}")


def path_segments(scope: Any) -> list[str]:
    """The decoded segments of the request path, without the leading empty one."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes) or not raw:
        raw = str(scope.get("path", "")).encode("utf-8", "surrogateescape")
    raw = raw.split(b"?", 1)[0]
    parts = raw.split(b"/")
    if parts and parts[0] == b"":
        parts = parts[1:]
    return [unquote_to_bytes(part).decode("utf-8", "replace") for part in parts]


class Router:
    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self._endpoints = tuple(endpoints)

    def resolve(self, method: str, segments: Sequence[str]) -> tuple[Endpoint, dict[str, str]]:
        matches = [(e, params) for e in self._endpoints if (params := e.match(segments)) is not None]
        if not matches:
            raise NotFound("No such endpoint; check the path against the Cognite workflow API")
        best = max(endpoint.specificity for endpoint, _ in matches)
        # Only the most specific template's methods are this path's: a less specific one that would
        # take the method instead (reading an execution "list") must not.
        matches = [(e, params) for e, params in matches if e.specificity == best]
        for endpoint, params in matches:
            if endpoint.method == method:
                return endpoint, params
        raise MethodNotAllowed(method, sorted({endpoint.method for endpoint, _ in matches}))
