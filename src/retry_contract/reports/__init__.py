"""Reporters: each reads a finished RunResult and writes one format. None of them judges anything.

Every string they emit passes through the run's secret registry first.

This module is the registry of formats, the choices of `retry-contract run --format`: the console
(rendered by the CLI on its terminal, `reports/console.py`) and the files below, each written by a
module of this package that has `FILENAME` and `write(result, directory) -> Path`. The modules are
imported only when their format is written, so naming the formats (the CLI does when it starts) does
not import the runner and everything under it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

    from retry_contract.runner import RunResult

CONSOLE = "console"
# Format name → module of this package that writes it, in the order the reports are written and listed.
FILE_FORMATS: dict[str, str] = {
    "junit": "junit",
    "json": "json_report",
    "html": "html",
    "markdown": "markdown",
}
FORMATS: tuple[str, ...] = (CONSOLE, *FILE_FORMATS)


class Reporter(Protocol):
    FILENAME: str

    def write(self, result: RunResult, directory: Path) -> Path: ...


def reporter(name: str) -> Reporter:
    """The module that writes the file format `name` (a key of FILE_FORMATS)."""
    return cast(Reporter, importlib.import_module(f"{__name__}.{FILE_FORMATS[name]}"))


def write_all(
    result: RunResult,
    directory: Path,
    formats: Collection[str] = FORMATS,
    environ: Mapping[str, str] = os.environ,
) -> list[Path]:
    """Write the file reports among `formats` into `directory`, and GitHub's step summary when
    `environ` names one (GITHUB_STEP_SUMMARY): CI shows it whichever files were chosen.

    Returns the paths written, in FILE_FORMATS' order; raises OSError when one cannot be written.
    """
    from retry_contract.reports.markdown import append_step_summary

    directory.mkdir(parents=True, exist_ok=True)
    written = [reporter(name).write(result, directory) for name in FILE_FORMATS if name in formats]
    summary = append_step_summary(result, environ)
    return written if summary is None else [*written, summary]


def publish(
    result: RunResult,
    directory: Path,
    formats: Collection[str],
    console: Console,
    *,
    quiet: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> bool:
    """Write the file reports among `formats`, then show how the run ended on `console`: the console
    report when chosen (and not quiet), else the verdict line. False when a report could not be
    written, which is said on stderr."""
    from retry_contract.reports import console as console_report
    from retry_contract.reports import progress

    try:
        written, published = write_all(result, directory, formats, environ), True
    except OSError as error:
        written, published = [], False
        errors = progress.make_console(no_color=console.no_color, stderr=True)
        where = error.filename or directory
        errors.print(
            Text(result.secrets.redact(f"retry-contract: could not write {where}: {error.strerror}")),
            soft_wrap=True,
        )
    if CONSOLE in formats and not quiet:
        console_report.render(result, console, written)
    else:
        progress.print_brief(result, console, written, quiet=quiet)
    return published
