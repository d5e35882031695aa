"""Every secret the run handles (tokens, client secrets, nonces), so that output can be scrubbed.

Anything that leaves the process — console, reports, curl reproductions — goes through `redact`.
"""

from __future__ import annotations

import threading

REPLACEMENT = "[REDACTED]"
# Cheap to keep: values shorter than this are too generic to scrub without mangling text.
_MIN_SECRET_LENGTH = 4


class SecretRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._longest_first: list[str] | None = None

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets.add(secret)
                self._longest_first = None

    def redact(self, text: str) -> str:
        with self._lock:
            if self._longest_first is None:
                # Longest first, so a secret that contains another is replaced whole.
                self._longest_first = sorted(self._secrets, key=len, reverse=True)
            ordered = self._longest_first
        # A substring search per secret (fast, in C) rather than one regex alternation of hundreds
        # of nonces, which is quadratic in practice on a report of megabytes.
        for secret in ordered:
            if secret in text:
                text = text.replace(secret, REPLACEMENT)
        return text
