"""The mock's errors and the one body shape every error answer has.

The store raises these without knowing about HTTP; each class names the status the HTTP layer
answers with, so the mapping lives in exactly one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar


class MockError(Exception):
    """A refusal the mock answers with an error envelope."""

    http_status: ClassVar[int] = HTTPStatus.BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        missing: Sequence[Mapping[str, Any]] | None = None,
        duplicated: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.missing = [dict(item) for item in missing] if missing else None
        self.duplicated = [dict(item) for item in duplicated] if duplicated else None
        self.headers = dict(headers) if headers else {}

    def body(self) -> dict[str, Any]:
        return error_body(self.http_status, self.message, missing=self.missing, duplicated=self.duplicated)


class InvalidRequest(MockError):
    http_status = HTTPStatus.BAD_REQUEST


class Unauthorized(MockError):
    http_status = HTTPStatus.UNAUTHORIZED


class Forbidden(MockError):
    http_status = HTTPStatus.FORBIDDEN


class NotFound(MockError):
    http_status = HTTPStatus.NOT_FOUND


class MethodNotAllowed(MockError):
    http_status = HTTPStatus.METHOD_NOT_ALLOWED

    def __init__(self, method: str, allowed: Sequence[str]) -> None:
        allow = ", ".join(sorted(allowed))
        super().__init__(
            f"Method {method} is not allowed on this path; allowed: {allow}", headers={"Allow": allow}
        )


class Conflict(MockError):
    http_status = HTTPStatus.CONFLICT


class PayloadTooLarge(MockError):
    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(MockError):
    http_status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


def error_body(
    status: int,
    message: str,
    *,
    missing: Sequence[Mapping[str, Any]] | None = None,
    duplicated: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """`{"error": {"code", "message", "missing"?, "duplicated"?}}`: the Cognite error envelope."""
    error: dict[str, Any] = {"code": int(status), "message": message}
    if missing:
        error["missing"] = [dict(item) for item in missing]
    if duplicated:
        error["duplicated"] = [dict(item) for item in duplicated]
    return {"error": error}
