"""What the terminal shows while a run goes, and how much of it.

- On an interactive terminal: one live status line (phase, requests sent, failures so far, elapsed
  time) that disappears when the run ends, before the report.
- Anywhere else (a CI log, a file): one plain timestamped line per phase, and between phases at most
  one every PLAIN_LINE_EVERY_SECONDS, so a log shows that a long run is alive without a flood.
- Quiet: nothing while the run goes, and then only the verdict line (errors still go to stderr).
- NO_COLOR (or --no-color): no escape sequence at all. rich alone would drop colours but keep bold
  and the live line's cursor movements, so the console has no colour system and progress is plain lines.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.status import Status
from rich.text import Text

from retry_contract.reports.model import coverage_text, verdict_text
from retry_contract.results import ProgressEvent, ProgressListener, RunResult
from retry_contract.secrets_registry import SecretRegistry

PLAIN_LINE_EVERY_SECONDS = 30.0
# Columns of the console off a terminal (a CI log, a file) when COLUMNS does not say: rich's own 80
# would wrap the requirement table, and a log is read in a window far wider than that.
OFF_TERMINAL_WIDTH = 200


def make_console(
    *, no_color: bool = False, stderr: bool = False, environ: Mapping[str, str] = os.environ
) -> Console:
    """The run's console: rich's own choices (NO_COLOR, FORCE_COLOR, TTY_COMPATIBLE, COLUMNS), except
    that no colour means no style at all, and off a terminal a wide one unless COLUMNS says."""
    console = Console(stderr=stderr, highlight=False, no_color=True if no_color else None)
    if console.no_color:
        console = Console(stderr=stderr, highlight=False, no_color=True, color_system=None)
    if not console.is_terminal and not environ.get("COLUMNS", "").isdigit():
        console.width = OFF_TERMINAL_WIDTH
    return console


def describe(event: ProgressEvent) -> str:
    return (
        f"{event.phase}: {event.requests_sent} requests sent, {event.failures} failures so far, "
        f"{event.elapsed:.0f} s elapsed"
    )


class PlainLines:
    """One timestamped line per phase change, and at most one every `every_seconds` between."""

    def __init__(
        self,
        console: Console,
        secrets: SecretRegistry,
        every_seconds: float = PLAIN_LINE_EVERY_SECONDS,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self._console = console
        self._secrets = secrets
        self._every_seconds = every_seconds
        self._now = now
        self._lock = threading.Lock()
        self._last: ProgressEvent | None = None

    def show(self, event: ProgressEvent) -> None:
        with self._lock:
            last = self._last
            # The event's own clock, not the wall's: which lines appear depends on the events alone.
            if (
                last is not None
                and last.phase == event.phase
                and event.elapsed - last.elapsed < self._every_seconds
            ):
                return
            self._last = event
            line = f"{self._now():%H:%M:%S} {describe(event)}"
            self._console.print(self._secrets.redact(line), markup=False, highlight=False, soft_wrap=True)


class LiveStatus:
    """A spinner and one line, redrawn in place at each event; gone once the run ends."""

    def __init__(self, console: Console, secrets: SecretRegistry) -> None:
        self._secrets = secrets
        self._status = Status("starting the run", console=console)

    def show(self, event: ProgressEvent) -> None:
        line = Text()
        line.append(self._secrets.redact(event.phase), style="bold")
        line.append(f"  {event.requests_sent} requests sent  ")
        line.append(f"{event.failures} failures so far", style="red" if event.failures else "")
        line.append(f"  {int(event.elapsed) // 60}:{int(event.elapsed) % 60:02d} elapsed")
        self._status.update(line)

    def __enter__(self) -> LiveStatus:
        self._status.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._status.stop()


@contextmanager
def showing(console: Console, secrets: SecretRegistry, *, quiet: bool = False) -> Iterator[ProgressListener]:
    """The progress listener to hand to `runner.run` for this console, shown while the block runs."""
    if quiet:
        yield lambda _event: None
    elif console.is_interactive and not console.no_color:
        with LiveStatus(console, secrets) as live:
            yield live.show
    else:
        yield PlainLines(console, secrets).show


def print_verdict(result: RunResult, console: Console) -> None:
    style = "bold green" if result.exit_code == 0 else "bold red"
    line = f"verdict: {verdict_text(result)} ({coverage_text(result)})"
    console.print(Text(result.secrets.redact(line), style=style), soft_wrap=True)


def print_brief(result: RunResult, console: Console, written: list[Path], *, quiet: bool) -> None:
    """What is shown instead of the console report: where the reports are (unless quiet), the verdict,
    and on stderr what cleanup could not remove, since it stays in the user's project.

    It reads the result, not the report view: it is also what is shown when the view could not be
    built. Its verdict comes from the functions the view takes its own from (model.verdict_text)."""
    if not quiet:
        for path in written:
            console.print(Text(f"report: {path}"), soft_wrap=True)
    errors = make_console(no_color=console.no_color, stderr=True)
    for problem in result.cleanup_problems:
        errors.print(Text(result.secrets.redact(f"cleanup: {problem}")), soft_wrap=True)
    print_verdict(result, console)
