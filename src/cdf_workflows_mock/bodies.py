"""Reading request bodies and writing response bodies, defensively.

Request bodies arrive gzipped from the Cognite SDK and as garbage from fuzzers; both must end in
either a decoded JSON value or an error envelope, never in an exception that escapes. Responses
are ASCII-escaped JSON so that any string a client sent (lone surrogates included) can be echoed.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from cdf_workflows_mock.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 1024 * 1024
# Deeper JSON than this is refused up front, so nothing later (copies, dumps) recurses too far.
MAX_JSON_DEPTH = 64
REQUEST_ID_HEADER = "X-Request-ID"


async def read_json(request: Request) -> object | None:
    """The decoded JSON body, or None for an empty body."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("The client disconnected before the body was complete") from None
    raw = b"".join(chunks)
    if not raw:
        return None
    raw = _decode_content(raw, request.headers.get("content-encoding", ""))
    return parse_json(raw)


def _decode_content(raw: bytes, content_encoding: str) -> bytes:
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise UnsupportedMediaType(
            f"Content-Encoding {content_encoding!r} is not supported; use gzip or none"
        )
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        decoded = decompressor.decompress(raw, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise InvalidRequest(
            f"The body is not valid gzip ({exc}) although Content-Encoding says gzip"
        ) from None
    if len(decoded) > MAX_BODY_BYTES or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"The decompressed request body is larger than {MAX_BODY_BYTES} bytes")
    if not decompressor.eof:
        raise InvalidRequest("The gzip body is truncated")
    if decompressor.unused_data:
        raise InvalidRequest("The gzip body has trailing data after the compressed stream")
    return decoded


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> object | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not UTF-8 encoded JSON") from None
    if not text.strip():
        return None
    try:
        value: object = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidRequest(f"The request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"The request body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value: object) -> int:
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def json_response(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    content = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    all_headers = {REQUEST_ID_HEADER: str(uuid.uuid4())}
    all_headers.update(headers or {})
    return Response(
        content.encode("ascii"), status_code=status, headers=all_headers, media_type="application/json"
    )
