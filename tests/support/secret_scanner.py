"""Finds a secret in output, in any form a hostile server might echo it in, without the suite's code.

Written apart from `retry_contract.secrets_registry` on purpose: a test that searched with the code
under test would share its blind spots. Here each form is undone instead of predicted: the text is
searched as it is, with its JSON `\\u` escapes and its percent escapes decoded, and every run of base64
characters is decoded at each of its four starting offsets; hex is searched in lower case.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import quote, quote_plus, unquote, unquote_plus

_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{6,}")


def encodings(secret: str) -> dict[str, str]:
    """The secret alone in each form the suite must catch (to plant in what a server answers)."""
    data = secret.encode()
    every_byte = "".join(f"%{byte:02X}" for byte in data)
    return {
        "raw": secret,
        "base64": base64.b64encode(data).decode(),
        "base64-unpadded": base64.b64encode(data).decode().rstrip("="),
        "base64-url": base64.urlsafe_b64encode(data).decode(),
        "base64-url-unpadded": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "percent-every-byte": every_byte,
        "percent-every-byte-lower": every_byte.lower(),
        "quote": quote(secret, safe=""),
        "quote-plus": quote_plus(secret),
        "json-every-character": "".join(f"\\u{ord(c):04x}" for c in secret),
        "json-every-character-upper": "".join(f"\\u{ord(c):04X}" for c in secret),
        "json-mixed": "".join(f"\\u{ord(c):04x}" if i % 3 == 1 else c for i, c in enumerate(secret)),
        "hex": data.hex(),
        "hex-upper": data.hex().upper(),
    }


def base64_embedded(secret: str, before: bytes, after: bytes, *, url_safe: bool, padded: bool) -> str:
    """The secret inside a longer base64 text: `before` puts it at another alignment."""
    encode = base64.urlsafe_b64encode if url_safe else base64.b64encode
    text = encode(before + secret.encode() + after).decode()
    return text if padded else text.rstrip("=")


def _views(text: str) -> list[str]:
    unescaped = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return [text, unescaped, unquote(text), unquote_plus(text), unquote(unescaped)]


def _base64_decodings(text: str) -> list[bytes]:
    decoded = []
    for run in _BASE64_RUN.findall(text):
        standard = run.replace("-", "+").replace("_", "/")
        for offset in range(4):
            chunk = standard[offset:]
            # A last group of 2 or 3 characters still holds whole bytes: padded, it decodes.
            chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk + "=" * (-len(chunk) % 4)
            try:
                decoded.append(base64.b64decode(chunk, validate=True))
            except (binascii.Error, ValueError):
                continue
    return decoded


def found(output: bytes | str, secret: str, *, length: int | None = None) -> list[str]:
    """The ways `output` shows `secret` (its first `length` characters, when given): empty when none."""
    return [way for _, way in found_any(output, [secret if length is None else secret[:length]])]


def found_any(output: bytes | str, secrets: list[str]) -> list[tuple[str, str]]:
    """Each (start of a secret, way) in which `output` shows one of `secrets`."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    views = _views(text)
    lowered = text.lower()
    decodings = [decoded for view in views for decoded in _base64_decodings(view)]
    ways = []
    for secret in secrets:
        data = secret.encode()
        if any(secret in view for view in views):
            ways.append((secret[:6], "as text, or through \\u or percent escapes"))
        if data.hex() in lowered:
            ways.append((secret[:6], "hex"))
        if any(data in decoded for decoded in decodings):
            ways.append((secret[:6], "base64"))
    return ways
