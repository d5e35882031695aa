"""Every secret the run handles (tokens, client secrets, nonces), so that output can be scrubbed.

Anything that leaves the process — console, reports, curl reproductions — goes through `redact`.
"""

from __future__ import annotations

import re
import threading

REPLACEMENT = "[REDACTED]"
# Cheap to keep: values shorter than this are too generic to scrub without mangling text.
_MIN_SECRET_LENGTH = 4


class SecretRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets.add(secret)
                self._pattern = None

    def redact(self, text: str) -> str:
        with self._lock:
            if not self._secrets:
                return text
            if self._pattern is None:
                # Longest first, so a secret that contains another is replaced whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
            pattern = self._pattern
        return pattern.sub(REPLACEMENT, text)
