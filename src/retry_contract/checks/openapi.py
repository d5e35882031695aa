"""Independent validation of every exchange with openapi-core, against the same spec file.

Each schema error is traced to a requirement through the `x-requirement` annotations of the spec,
so the spec, not this module, says which requirement a property belongs to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.response.exceptions import (
    DataValidationError,
    HeaderValidationError,
    InvalidData,
    MissingData,
)
from werkzeug.datastructures import Headers, ImmutableMultiDict

from retry_contract import contract
from retry_contract.exchange import TOO_DEEP, Exchange
from retry_contract.requirements import Level
from retry_contract.verdict import Observation

JUDGE = "openapi-core"
# Body schema errors carry their own judge name so they can be compared with Schemathesis's.
SCHEMA_JUDGE = "openapi-core schema"
# openapi-core's messages quote what the server sent, which has no bound.
_MESSAGE_LIMIT = 300


class _Request:
    """An Exchange's request in the shape of `openapi_core.protocols.Request`."""

    def __init__(self, exchange: Exchange) -> None:
        parts = urlsplit(exchange.url)
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path
        self.method = exchange.method.lower()
        self.body = exchange.request_body
        self.content_type = exchange.request_headers.get("content-type", "application/json")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(parts.query)),
            header=Headers(dict(exchange.request_headers)),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, exchange: Exchange, status: int, data: bytes) -> None:
        self.status_code = status
        self.data = data
        self.headers = Headers(dict(exchange.response_headers))
        self.content_type = exchange.header("content-type") or ""


def _requirements_of(node: Any) -> list[str]:
    value = node.get("x-requirement", []) if isinstance(node, dict) else []
    return [value] if isinstance(value, str) else list(value)


@dataclass(frozen=True, slots=True)
class SpecIndex:
    """Walks the raw spec to find which requirement a response location belongs to."""

    raw: dict[str, Any]
    # requirements_in() per status: the answer never changes, and every exchange asks.
    _judged: dict[int, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.raw
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def response(self, status: int) -> dict[str, Any] | None:
        responses = self.raw["paths"][contract.RETRY_PATH_TEMPLATE]["post"]["responses"]
        found = responses.get(str(status))
        return self.resolve(found) if found is not None else None

    def body_schema(self, status: int) -> Any:
        response = self.response(status) or {}
        return self.resolve(response.get("content", {}).get("application/json", {}).get("schema", {}))

    def requirement_at(self, status: int, path: Sequence[str | int]) -> str:
        """The most specific `x-requirement` along `path` inside the response body schema."""
        node = self.body_schema(status)
        found = _requirements_of(node)[:1] or ["RESP-200" if status < 400 else "ERR-ENVELOPE"]
        for part in path:
            properties = node.get("properties", {}) if isinstance(node, dict) else {}
            if isinstance(part, str) and part in properties:
                node = self.resolve(properties[part])
            else:
                # Inside a map (metadata values) or an array: the enclosing requirement applies.
                break
            found = _requirements_of(node)[:1] or found
        return found[0]

    def declared_level(self, status: int) -> Level | None:
        """The level the spec gives findings about an answer of this status (`x-requirement-level`):
        SHOULD where a front-end proxy may answer in the API's stead; None: each requirement's own."""
        declared = (self.response(status) or {}).get("x-requirement-level")
        return Level(declared) if declared is not None else None

    def answer_requirements(self, status: int) -> frozenset[str]:
        """The requirements an answer of this status is judged on by its body and headers: the
        response's own, its schema's and its headers'."""
        response = self.response(status) or {}
        headers = [self.resolve(header) for header in response.get("headers", {}).values()]
        return self.requirements_in(status).union(
            _requirements_of(response), *(_requirements_of(header) for header in headers)
        )

    def requirements_in(self, status: int) -> frozenset[str]:
        """Every requirement a body of this status is judged on by schema validation."""
        if status not in self._judged:
            self._judged[status] = frozenset(self._walk_requirements(status))
        return self._judged[status]

    def _walk_requirements(self, status: int) -> set[str]:
        found: set[str] = set()

        def walk(node: Any) -> None:
            node = self.resolve(node)
            if not isinstance(node, dict):
                return
            found.update(_requirements_of(node))
            for child in node.get("properties", {}).values():
                walk(child)

        walk(self.body_schema(status))
        return found


def _schema_errors(error: BaseException) -> Iterator[tuple[list[str | int], str]]:
    """(instance path, message) of each JSON Schema error behind an openapi-core error."""
    for schema_error in getattr(error.__cause__, "schema_errors", []) or []:
        path = list(schema_error.absolute_path)
        if schema_error.validator == "required" and isinstance(schema_error.instance, dict):
            for name in schema_error.validator_value:
                if name not in schema_error.instance:
                    yield [*path, name], f"required property {name!r} is missing"
            continue
        yield path, schema_error.message


class OpenApiJudge:
    """Validates exchanges with the retry endpoint against the spec, with openapi-core."""

    def __init__(self, base_url: str) -> None:
        raw = dict(contract.raw_spec())
        # Host-agnostic server, keeping any path prefix of the target (e.g. an API gateway).
        prefix = urlsplit(base_url).path.rstrip("/")
        raw["servers"] = [{"url": prefix + contract.API_PREFIX}]
        self.index = SpecIndex(contract.raw_spec())
        self._openapi = OpenAPI.from_dict(raw)

    def judge(self, exchange: Exchange) -> list[Observation]:
        if exchange.status is None or exchange.method != "POST":
            # No response to validate, or a method the spec does not describe (METHOD judges that).
            return []
        status = exchange.status
        failures: list[Observation] = []
        # openapi-core reads a body only once it is JSON by this suite's reading (UTF-8, bounded
        # nesting): its own reading would raise, or recurse without bound, on what a server may send.
        problem = exchange.json_problem() if exchange.response_body else None
        data = exchange.response_body if problem is None else b""
        try:
            errors = list(
                self._openapi.iter_response_errors(_Request(exchange), _Response(exchange, status, data))
            )
        except (PathNotFound, OperationNotFound):
            return []
        except RecursionError:
            errors, problem = [], TOO_DEEP
        if problem is not None:
            errors = [e for e in errors if not isinstance(e, MissingData)]
        for error in errors:
            failures += self._observe_error(exchange, error)
        if self.index.response(status) is None:
            return failures
        if problem is not None:
            failures.append(
                Observation(
                    self.index.requirement_at(status, []),
                    False,
                    f"(body): not JSON: {problem}",
                    exchange,
                    SCHEMA_JUDGE,
                )
            )
        judged = self.index.requirements_in(status) | {"HDR-REQUEST-ID"} if problem is None else set()
        failed = {f.requirement for f in failures}
        return failures + [Observation(r, True, "", exchange, JUDGE) for r in sorted(judged - failed)]

    def _observe_error(self, exchange: Exchange, error: BaseException) -> list[Observation]:
        status = exchange.status or 0
        if isinstance(error, ResponseNotFound):
            return [
                Observation(
                    status_requirement(exchange), False, f"status {status} is not documented", exchange, JUDGE
                )
            ]
        if isinstance(error, HeaderValidationError):
            return [Observation("HDR-REQUEST-ID", False, _described(error), exchange, JUDGE)]
        if isinstance(error, InvalidData):
            found = [
                Observation(
                    self.index.requirement_at(status, path),
                    False,
                    f"{'/'.join(map(str, path)) or '(body)'}: {message[:_MESSAGE_LIMIT]}",
                    exchange,
                    SCHEMA_JUDGE,
                )
                for path, message in _schema_errors(error)
            ]
            return found or [
                Observation(
                    self.index.requirement_at(status, []), False, _described(error), exchange, SCHEMA_JUDGE
                )
            ]
        if isinstance(error, DataValidationError):
            requirement = "RESP-200" if status < 400 else "ERR-ENVELOPE"
            return [Observation(requirement, False, _described(error), exchange, JUDGE)]
        return [Observation(status_requirement(exchange), False, _described(error), exchange, JUDGE)]


def _described(error: BaseException) -> str:
    """An openapi-core error in words, cut; its own text may fail to build on what a server sent."""
    try:
        text = str(error)
    except Exception:
        text = "(no description)"
    return f"{type(error).__name__}: {text[:_MESSAGE_LIMIT]}"


def status_requirement(exchange: Exchange) -> str:
    """Which requirement an unexpected status breaks."""
    status = exchange.status or 0
    if status >= 500:
        return "ROBUST"
    if status < 300:
        return "RESP-200"
    return exchange.expectation.requirement if exchange.expectation else "ERR-ENVELOPE"
