"""The forms in which real clients put one JSON body on the wire.

A server must accept a valid request whatever a conforming client chose: gzip (the official Python
SDK compresses every body), a `charset` parameter, raw UTF-8 instead of `\\u` escapes, any key order
or layout. Each form turns a JSON value into the bytes and headers of one request.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_MEDIA_TYPE = "application/json"
# What `cognite-sdk` 8.22 sends with every call (`_basic_api_client._configure_headers`); the
# user-agent has the same parts as the SDK's own (its version, Python, the OS).
SDK_VERSION = "8.22.0"
SDK_HEADERS: Mapping[str, str] = {
    "accept": JSON_MEDIA_TYPE,
    "x-cdp-sdk": f"CognitePythonSDK:{SDK_VERSION}",
    "x-cdp-app": "retry-contract",
    "cdf-version": "20230101",
    "user-agent": f"python-httpx2/2.16.2 CognitePythonSDK/{SDK_VERSION} CPython/3.11 Linux/x86_64-64bit",
}


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


@dataclass(frozen=True)
class RequestForm:
    name: str
    description: str
    dumps: Callable[[Any], str] = json.dumps
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON_MEDIA_TYPE
    gzipped: bool = False
    # Sent with `Transfer-Encoding: chunked` and no Content-Length, as clients that stream bodies do.
    chunked: bool = False

    def encode(self, body: Any) -> tuple[bytes, dict[str, str]]:
        """The bytes to send and the headers that describe them."""
        content = self.dumps(body).encode("utf-8")
        headers = {"content-type": self.content_type, **self.headers}
        if self.gzipped:
            content = gzip.compress(content)
            headers["content-encoding"] = "gzip"
        return content, headers


PLAIN = RequestForm("plain", "json.dumps with its defaults: spaces after separators, \\u escapes")
SDK = RequestForm(
    "sdk",
    "the official Python SDK's wire form: compact JSON, gzip, its headers",
    dumps=lambda body: json.dumps(body, separators=(",", ":"), allow_nan=False),
    headers=SDK_HEADERS,
    gzipped=True,
)
CHARSET = RequestForm(
    "charset", "Content-Type: application/json; charset=utf-8", content_type="application/json; charset=utf-8"
)
RAW_UTF8 = RequestForm(
    "raw-utf8",
    "non-ASCII characters as raw UTF-8, not \\u escapes",
    dumps=lambda b: json.dumps(b, ensure_ascii=False),
)
PRETTY = RequestForm(
    "pretty", "indented JSON with newlines", dumps=lambda body: json.dumps(body, indent=2) + "\n"
)
REORDERED = RequestForm(
    "reordered", "every object's keys in reverse order", dumps=lambda body: json.dumps(_reversed_keys(body))
)

CHUNKED = RequestForm("chunked", "the body streamed with Transfer-Encoding: chunked", chunked=True)

# Forms in which a valid retry must succeed exactly as in the plain one.
ALWAYS_ACCEPTED = (SDK, CHARSET, PRETTY, CHUNKED)
