"""Reporters: each reads the report view of a finished run (`model.build`, built once per run) and
writes one format. None of them judges anything.

Every string they emit passes through the run's secret registry first.

This module is the registry of formats, the choices of `retry-contract run --format`: the console
(rendered by the CLI on its terminal, `reports/console.py`) and the files below, each written by a
module of this package that has `FILENAME` and `write(view, directory) -> Path`. The modules are
imported only when their format is written, so naming the formats (the CLI does when it starts) does
not import what a run is made of.
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

    from retry_contract.reports.model import ReportView
    from retry_contract.results import RunResult

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

    def write(self, view: ReportView, directory: Path) -> Path: ...


def reporter(name: str) -> Reporter:
    """The module that writes the file format `name` (a key of FILE_FORMATS)."""
    return cast(Reporter, importlib.import_module(f"{__name__}.{FILE_FORMATS[name]}"))


def view_of(result: RunResult, directory: Path, formats: Collection[str] = FORMATS) -> ReportView:
    """The one view every report of `result` reads; its failures name the JSON report written into
    `directory` (when it is among `formats`) in the command that replays them."""
    from retry_contract.reports import model

    json_report = directory / reporter("json").FILENAME if "json" in formats else None
    return model.build(result, json_report)


def write_all(
    result: RunResult,
    directory: Path,
    formats: Collection[str] = FORMATS,
    environ: Mapping[str, str] = os.environ,
) -> list[Path]:
    """Write the file reports among `formats` into `directory`, and GitHub's step summary when
    `environ` names one (GITHUB_STEP_SUMMARY): CI shows it whichever files were chosen.

    Returns the paths written, in FILE_FORMATS' order; raises the first error met (an OSError when a
    file cannot be written) once every other report has been written.
    """
    written, failures = write_each(view_of(result, directory, formats), directory, formats, environ)
    if failures:
        raise failures[0][1]
    return written


def write_each(
    view: ReportView,
    directory: Path,
    formats: Collection[str] = FORMATS,
    environ: Mapping[str, str] = os.environ,
) -> tuple[list[Path], list[tuple[str, Exception]]]:
    """Every report among `formats` that can be written, and for each that cannot, its name and
    why: one report failing (a full disk, a reporter's bug on odd input) loses no other."""
    from retry_contract.reports.markdown import STEP_SUMMARY_ENV, append_step_summary

    written: list[Path] = []
    failures: list[tuple[str, Exception]] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        failures.append((str(directory), error))
    else:
        for name in FILE_FORMATS:
            if name in formats:
                try:
                    written.append(reporter(name).write(view, directory))
                except Exception as error:  # the other reports are still written
                    failures.append((name, error))
    try:
        summary = append_step_summary(view, environ)
    except Exception as error:
        failures.append((environ.get(STEP_SUMMARY_ENV, STEP_SUMMARY_ENV), error))
    else:
        if summary is not None:
            written.append(summary)
    return written, failures


def failure_line(name: str, error: Exception) -> str:
    """One line saying why the report `name` (a format, or a path) could not be written."""
    if isinstance(error, OSError):
        return f"retry-contract: could not write {error.filename or name}: {error.strerror or error}"
    return (
        f"retry-contract: could not write the {name} report: internal error ({type(error).__name__}: {error})"
    )


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
    written, which is said on stderr, one line each (every other report is written all the same)."""
    from retry_contract.reports import console as console_report
    from retry_contract.reports import progress

    errors = progress.make_console(no_color=console.no_color, stderr=True)
    try:
        view = view_of(result, directory, formats)
    except Exception as broken:  # no report can be written, but the run's verdict is still said
        errors.print(Text(result.secrets.redact(failure_line("every", broken))), soft_wrap=True)
        progress.print_brief(result, console, [], quiet=quiet)
        return False
    written, failures = write_each(view, directory, formats, environ)
    for name, error in failures:
        errors.print(Text(view.secrets.redact(failure_line(name, error))), soft_wrap=True)
    if CONSOLE in formats and not quiet:
        try:
            console_report.render(view, console, written)
        except Exception as error:  # the verdict line still ends the output
            failures.append((CONSOLE, error))
            errors.print(Text(view.secrets.redact(failure_line(CONSOLE, error))), soft_wrap=True)
            progress.print_brief(result, console, written, quiet=quiet)
    else:
        progress.print_brief(result, console, written, quiet=quiet)
    return not failures
