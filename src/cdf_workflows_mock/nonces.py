"""Nonces that say by themselves when, and in which project, they were issued.

The store forgets sessions (when their nonce expires, and the oldest beyond its cap), so that a
long-running mock does not grow without end. A forgotten nonce must still be refused exactly as
before: an expired one as expired, never as "not issued". A `NonceSeal` makes that possible without
keeping anything per nonce: the session id and issue time travel inside the nonce, masked and
authenticated with a key only the store holds, so a client can neither read nor forge them, and a
nonce of another project (or another mock) does not verify.

A nonce is 32 bytes, URL-safe base64 without padding (43 characters, the length of
`secrets.token_urlsafe(32)`, which the mock used before): a 16-byte tag (HMAC-SHA256 of the project,
session id and issue time, truncated), then the session id and issue time (8 bytes each), XOR-ed
with a mask derived from the tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

_TAG_BYTES = 16
_STAMP = struct.Struct(">Qq")  # session id, issue time (epoch ms; signed: a test clock may start at 0)
_NONCE_CHARS = 43  # base64 of 32 bytes without its one '=' of padding


@dataclass(frozen=True, slots=True)
class NonceStamp:
    """What a nonce says of itself once its seal verifies."""

    session_id: int
    created_time: int


class NonceSeal:
    """Issues and reads the nonces of one store; its key lives as long as the store."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def issue(self, project: str, session_id: int, created_time: int) -> str:
        stamp = _STAMP.pack(session_id, created_time)
        tag = self._tag(project, stamp)
        return _encode(tag + self._mask(tag, stamp))

    def read(self, project: str, nonce: str) -> NonceStamp | None:
        """The id and issue time sealed in `nonce` for `project`; None for anything this seal did
        not issue for that project."""
        if len(nonce) != _NONCE_CHARS or not nonce.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        # The decoder skips characters outside the alphabet and accepts '+' and '/': only the one
        # spelling this seal issued may pass, as a nonce is compared as a string everywhere else.
        if len(raw) != _TAG_BYTES + _STAMP.size or _encode(raw) != nonce:
            return None
        tag, masked = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
        stamp = self._mask(tag, masked)
        if not hmac.compare_digest(tag, self._tag(project, stamp)):
            return None
        session_id, created_time = _STAMP.unpack(stamp)
        return NonceStamp(session_id, created_time)

    def _tag(self, project: str, stamp: bytes) -> bytes:
        # The project is length-prefixed so that no (project, stamp) pair can pose as another.
        name = project.encode("utf-8", "surrogatepass")
        message = struct.pack(">I", len(name)) + name + stamp
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_TAG_BYTES]

    def _mask(self, tag: bytes, data: bytes) -> bytes:
        pad = hmac.new(self._key, b"mask" + tag, hashlib.sha256).digest()
        return bytes(a ^ b for a, b in zip(data, pad, strict=False))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
