"""The process's output boundary: nothing it prints leaves without passing the secret registry.

The suite talks to hostile servers, often from CI jobs whose logs are public, and what a server sends
reaches the terminal in ways no reporter controls: a library's warning that shows a request, a log
record, an exception's message. So the CLI installs, before anything prints, one guard over every way
out of the process it can reach:

- `sys.stdout` and `sys.stderr` become `RedactingStream`s: text is held until its line ends (a secret
  written in two pieces is still whole when it is searched) and the held rest is written at exit;
- `warnings.showwarning` redacts the formatted warning;
- log records are redacted as they are made (message, arguments, traceback), and the root logger's
  handlers and `logging.lastResort` carry a redacting filter for records made any other way.

The secrets are those of `registry()`, the process's registry: the commands register every secret in
it as soon as they know it. Reports pass it too (they are written with it), and `redacted` is there
for messages that leave another way. What a child process writes to the file descriptors directly is
beyond this guard.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import sys
import threading
import traceback
import warnings
from typing import Any, TextIO

from retry_contract.secrets_registry import SecretRegistry

# Text held without a line end beyond this is written, all but what could still be a secret's start:
# a server's answer printed without newlines must not grow the buffer without end.
HELD_CHARACTERS_LIMIT = 64 * 1024

_REGISTRY = SecretRegistry()
_install_lock = threading.Lock()
_installed = False


def registry() -> SecretRegistry:
    """The process's registry: what every output boundary scrubs."""
    return _REGISTRY


def redacted(text: str) -> str:
    return _REGISTRY.redact(text)


class RedactingStream(io.TextIOBase):
    """A text stream that writes to `target` what is written to it, redacted, a line at a time."""

    def __init__(self, target: TextIO, secrets: SecretRegistry) -> None:
        super().__init__()
        self.target = target
        self._secrets = secrets
        self._lock = threading.Lock()
        self._held = ""

    # What rich and click ask of a terminal stream, answered by the stream underneath.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.target, "errors", None)

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            held = self._held + text
            # A line ends at "\n", or at "\r" (rich redraws its live line after one).
            end = max(held.rfind("\n"), held.rfind("\r")) + 1
            if end == 0 and len(held) > HELD_CHARACTERS_LIMIT:
                self._write_all_but_a_possible_secret(held)
            else:
                self._held = held[end:]
                if end:
                    self.target.write(self._secrets.redact(held[:end]))
        return len(text)

    def _write_all_but_a_possible_secret(self, held: str) -> None:
        text = self._secrets.redact(held)
        # A secret still to be completed starts within its longest form's reach of the end.
        keep = min(len(text), self._secrets.reach)
        self.target.write(text[: len(text) - keep])
        self._held = text[len(text) - keep :]

    def flush(self) -> None:
        # What is held stays held: a secret's second piece may come with the next write.
        with self._lock:
            self.target.flush()

    def drain(self) -> None:
        """Write what is held, redacted, and flush: at exit, or before handing the stream back."""
        with self._lock:
            held, self._held = self._held, ""
            if held:
                self.target.write(self._secrets.redact(held))
            self.target.flush()


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments, traceback and stack in place; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_retry_contract_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed call is logging's to report; its text still passes the streams
        return
    record.msg, record.args = _REGISTRY.redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = _REGISTRY.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = _REGISTRY.redact(record.stack_info)
    record._retry_contract_redacted = True


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    text = _REGISTRY.redact(warnings.formatwarning(message, category, filename, lineno, line))
    target = file if file is not None else sys.stderr
    if target is None:  # no stderr at all (pythonw): nowhere to say it
        return
    with contextlib.suppress(OSError):
        target.write(text)


def _redacting_factory(make: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = make(*args, **kwargs)
        _redact_record(record)
        return record

    factory.retry_contract_redacting = True  # type: ignore[attr-defined]
    return factory


def _guard_stream(stream: TextIO | None) -> TextIO | None:
    if stream is None or isinstance(stream, RedactingStream):
        return stream
    guarded = RedactingStream(stream, _REGISTRY)
    atexit.register(_drain_quietly, guarded)
    return guarded  # type: ignore[return-value]  # a TextIOBase is the TextIO the stdlib expects


def _drain_quietly(stream: RedactingStream) -> None:
    # OSError, ValueError: the stream underneath was closed first; nothing more can be said.
    with contextlib.suppress(OSError, ValueError):
        stream.drain()


def install() -> SecretRegistry:
    """Put the guard on stdout, stderr, warnings and logging (again where something replaced a
    stream since), and return the registry it scrubs. Call it before anything prints."""
    global _installed
    sys.stdout = _guard_stream(sys.stdout)
    sys.stderr = _guard_stream(sys.stderr)
    with _install_lock:
        if not _installed:
            warnings.showwarning = _show_warning
            if not getattr(logging.getLogRecordFactory(), "retry_contract_redacting", False):
                logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
            _installed = True
        log_filter = RedactingFilter()
        for handler in [*logging.getLogger().handlers, logging.lastResort]:
            if handler is not None and not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(log_filter)
    return _REGISTRY


def drain() -> None:
    """Write out what the guarded streams hold (before exiting on purpose)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, RedactingStream):
            _drain_quietly(stream)
