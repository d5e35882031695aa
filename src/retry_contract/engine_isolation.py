"""What the fuzzing engine would otherwise leave behind or print by itself, kept inside the run.

Hypothesis caches what it computes (Unicode tables, the constants of local modules) under
`.hypothesis/` in the working directory, whatever the example database is set to; and it prints its
warnings on stderr, one of which (a draw that seemed to use `random`) shows the strategy it drew
from. (Schemathesis records and drops the warnings of its own test functions, but not of the draws it
makes outside them, for the examples and coverage phases.) While a fuzzer runs, :func:`isolated`
points Hypothesis's storage at a temporary directory, deleted afterwards, and hands Hypothesis's
warnings to the run as text instead of the terminal.

Hypothesis's Unicode tables (which characters are in which category, which a codec encodes) are the
exception: derived from Python's own Unicode data only, they hold nothing of a run, and computing them
costs a second of CPU (on every run, as each gets a fresh storage). They are kept across runs in the
user's cache directory (`unicode_tables_cache`) and put into each temporary storage.

Hypothesis also mixes into what it draws the constants of the "local" modules loaded (those outside
site-packages), parsing their source. Those are retry-contract's own modules when it runs from a
checkout, and none when it is installed from a wheel: a seed would send other cases depending on how
the suite was installed, and each process would parse its source again (a third of a second). While
isolated, Hypothesis finds no local constants.

All of it is process-wide. `warnings.catch_warnings` saves all of the warnings state and puts it back on
exit, losing whatever other threads (the scenarios, a user's code) changed meanwhile; so this adds a
filter for Hypothesis's categories and a `showwarning` hook that takes those categories only while
a run is isolated, and passes everything else to the hook it found.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

import hypothesis
import platformdirs
from hypothesis import configuration
from hypothesis.errors import HypothesisWarning
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants

# A strategy's repr can run to megabytes: a warning is kept this long, and only the first few.
_KEPT_LENGTH = 300
_KEPT_WARNINGS = 5
# Redacted on this much before the cut to _KEPT_LENGTH, so no secret can straddle the cut unredacted.
_REDACTED_LENGTH = 20_000

# Where Hypothesis keeps its Unicode tables, under its storage directory; and the most a table may
# weigh to be kept (they are tens of kilobytes).
_UNICODE_TABLES = "unicode_data"
_KEPT_TABLE_BYTES = 1 << 20

ShowWarning = Callable[[Warning | str, type[Warning], str, int, TextIO | None, str | None], None]


class WarningCollector(Protocol):
    def add(self, text: str) -> None: ...


class EngineWarnings:
    """Hypothesis's warnings during one run: how many, and the first few as redacted one-line text."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact
        self._lock = threading.Lock()
        self.count = 0
        self.kept: list[str] = []

    def add(self, text: str) -> None:
        line = " ".join(self._redact(text[:_REDACTED_LENGTH]).split())
        if len(line) > _KEPT_LENGTH:
            line = f"{line[:_KEPT_LENGTH]}..."
        with self._lock:
            self.count += 1
            if len(self.kept) < _KEPT_WARNINGS and line not in self.kept:
                self.kept.append(line)

    def absorb(self, raw: RawWarnings) -> None:
        """Take what a process that holds no secret collected (`RawWarnings`), redacted here."""
        for text in raw.texts:
            self.add(text)
        with self._lock:
            self.count += raw.count - len(raw.texts)

    def summary(self) -> str | None:
        """One note for the run's reports, or None when Hypothesis said nothing."""
        with self._lock:
            if not self.count:
                return None
            return (
                f"Hypothesis warned {self.count} time(s) while fuzzing (about the engine, not the "
                f"target): {' | '.join(self.kept)}"
            )


@dataclass
class RawWarnings:
    """Hypothesis's warnings in the engine's process, which has nothing to redact them with: how many,
    and the first few distinct ones unredacted, for the fuzzer to redact (`EngineWarnings.absorb`)."""

    count: int = 0
    texts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        cut = text[:_REDACTED_LENGTH]
        self.count += 1
        if len(self.texts) < _KEPT_WARNINGS and cut not in self.texts:
            self.texts.append(cut)


# Re-entrant: a warning raised while the lock is held on its thread comes back to `_show`.
_lock = threading.RLock()
_isolated: list[WarningCollector] = []
# The hook `_show` was put in front of: what every other warning goes to.
_shown_before: ShowWarning = warnings.showwarning
_storage: tempfile.TemporaryDirectory[str] | None = None
_home_before: Path | None = None
# Hypothesis's own finder of local constants, while isolated blocks run (put back by the last one out).
_local_constants_before: Callable[[], Constants] | None = None
_NO_CONSTANTS = Constants()


@contextmanager
def isolated(collected: WarningCollector) -> Iterator[WarningCollector]:
    """While the block runs, Hypothesis stores nothing in the working directory and its warnings go to
    `collected`. Blocks may overlap (on several threads): the first one in sets up, the last one out
    puts Hypothesis's storage back and deletes the temporary one."""
    _enter(collected)
    try:
        yield collected
    finally:
        _leave(collected)


def _enter(collected: WarningCollector) -> None:
    global _storage, _home_before, _local_constants_before
    with _lock:
        if not _isolated:
            _local_constants_before = providers._get_local_constants
            providers._get_local_constants = _no_local_constants
            try:
                _storage = tempfile.TemporaryDirectory(
                    prefix="retry-contract-hypothesis-", ignore_cleanup_errors=True
                )
            except OSError:
                # No temporary directory to be had: Hypothesis keeps its storage, the run goes on.
                _storage = None
            else:
                _home_before = configuration.storage_directory(intent_to_write=False).home_directory
                configuration.set_hypothesis_home_dir(_storage.name)
                _copy_tables(unicode_tables_cache(), Path(_storage.name) / _UNICODE_TABLES)
        _isolated.append(collected)
        _route_warnings()


def _leave(collected: WarningCollector) -> None:
    global _storage, _home_before, _local_constants_before
    with _lock:
        _isolated.remove(collected)
        if _isolated:
            return
        if _local_constants_before is not None:
            providers._get_local_constants = _local_constants_before
            _local_constants_before = None
        if _storage is None:
            return
        configuration.set_hypothesis_home_dir(_home_before)
        storage, _storage, _home_before = _storage, None, None
    _copy_tables(Path(storage.name) / _UNICODE_TABLES, unicode_tables_cache())
    storage.cleanup()


def _no_local_constants() -> Constants:
    # Asked once per generated input: one empty set for all (Hypothesis only reads it).
    return _NO_CONSTANTS


def unicode_tables_cache() -> Path:
    """Where Hypothesis's Unicode tables are kept across runs: one directory per Hypothesis release (its
    tables' format is its own), under the user's cache directory (XDG_CACHE_HOME on Linux)."""
    return (
        platformdirs.user_cache_path("retry-contract")
        / f"hypothesis-{hypothesis.__version__}"
        / _UNICODE_TABLES
    )


def _copy_tables(source: Path, destination: Path) -> None:
    """The tables in `source` that `destination` lacks or holds otherwise, each put in place whole (a
    reader elsewhere sees the old file or the new one). Best effort, as Hypothesis's own caching: a
    table that cannot be read or written is computed again by the run that needs it."""
    with contextlib.suppress(OSError):
        for table in source.rglob("*.json.gz"):
            with contextlib.suppress(OSError):
                _copy_table(table, destination / table.relative_to(source))


def _copy_table(table: Path, target: Path) -> None:
    if table.is_symlink() or not table.is_file() or table.stat().st_size > _KEPT_TABLE_BYTES:
        return
    content = table.read_bytes()
    if target.is_file() and target.read_bytes() == content:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with os.fdopen(descriptor, "wb") as written:
            written.write(content)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)


def _route_warnings() -> None:
    """Again for every run: pytest (around each test) or a `catch_warnings` block elsewhere may have
    put back the filters and the hook that were there before."""
    global _shown_before
    # Python's own action for these categories, ahead of any "error" or "ignore" a user set: an
    # engine warning raised as an exception would stop the fuzzing, and an ignored one would be lost.
    warnings.filterwarnings("default", category=HypothesisWarning)
    if warnings.showwarning is not _show:
        _shown_before = warnings.showwarning
        warnings.showwarning = _show


def _show(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if issubclass(category, HypothesisWarning):
        with _lock:
            collectors = list(_isolated)
        if collectors:
            for collected in collectors:
                collected.add(str(message))
            return
    _shown_before(message, category, filename, lineno, file, line)
