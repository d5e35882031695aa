"""`retry-contract run`: the suite against a server, an app, or the embedded mock."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from retry_contract import credentials, output_guard
from retry_contract.cli.errors import (
    COULD_NOT_RUN,
    debugging,
    exit_now,
    fail,
    failing,
    internal_error_message,
    report_internal_error,
)
from retry_contract.cli.options import SETTINGS_ENVIRONMENT, command_line_settings
from retry_contract.engine_host import engine_host
from retry_contract.run_settings import DEFAULT_MOCK_PROFILE
from retry_contract.verdict import ExitCode

if TYPE_CHECKING:
    from retry_contract.engine_processes import EngineProcess
    from retry_contract.results import RunOptions


def unwritable(directory: Path) -> str | None:
    """Why no report can be written into `directory` (created if missing), or None: a file is
    written there and removed, as the reporters will write theirs."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".retry-contract-probe-"):
            pass
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


@click.command()
@command_line_settings
def run(**values: Any) -> None:
    """Run the conformance suite against a server, or the embedded mock without --base-url.

    Credentials come from the environment: CDF_TOKEN (needs workflowOrchestrationACL:WRITE and
    session creation) and optionally CDF_READONLY_TOKEN (a valid token without WRITE, for AUTH-403).

    \b
    Exit status:
      0  conformant
      1  contract violations found (also when the run then stopped early)
      2  could not run; or incomplete: --max-duration reached, a request the suite needed kept
         failing, or Ctrl-C/SIGTERM (1 if a violation was found before); or an internal error
    The first Ctrl-C/SIGTERM stops sending, cleans up (within --cleanup-timeout) and writes the
    reports; a second one stops waiting for cleanup and exits once the reports are written.
    """
    external = _check_target(values)
    if not values["no_fuzz"] and not values["dry_run"]:
        # Its start-up is the longest thing a run waits for before it fuzzes: begun before anything else.
        with failing(COULD_NOT_RUN):
            engine_host()
    from retry_contract.reports import progress
    from retry_contract.results import RunOptions

    report_dir: Path = values["report_dir"]
    if not values["dry_run"]:
        # Found after the run, an unwritable directory would lose every report of it: found first.
        problem = unwritable(report_dir)
        if problem is not None:
            fail(COULD_NOT_RUN, f"cannot write reports to {report_dir}: {problem}")
    registry = output_guard.registry()
    with failing(COULD_NOT_RUN):
        # The settings file's credentials, overridden by the environment's.
        environment = {**click.get_current_context().meta.get(SETTINGS_ENVIRONMENT, {}), **os.environ}
        target = credentials.for_target(environment, registry, external=external, timeout=values["timeout"])
        options = RunOptions.from_settings(
            values, credentials=target.main, readonly_token=target.readonly_token, secrets=registry
        )
    console: Console = progress.make_console(no_color=values["no_color"])
    if values["dry_run"]:
        from retry_contract.runner import dry_run as plan

        console.print(plan(options))
        return
    _run_and_report(options, report_dir, values["formats"], console, quiet=values["quiet"])


def _check_target(values: dict[str, Any]) -> bool:
    """Refuse what cannot go together; whether the target is a real one (a URL or an app)."""
    base_url, app = values["base_url"], values["app"]
    if base_url and app:
        raise click.UsageError("give either --base-url or --app, not both")
    external = bool(base_url or app)
    if external and not values["project"]:
        raise click.UsageError(f"--project is required with {'--base-url' if base_url else '--app'}")
    if external and (values["mock_defects"] or values["mock_profile"] != DEFAULT_MOCK_PROFILE):
        raise click.UsageError("--mock-defect and --mock-profile apply to the embedded mock only")
    return external


def _run_and_report(
    options: RunOptions, report_dir: Path, formats: tuple[str, ...], console: Console, *, quiet: bool
) -> None:
    from retry_contract.engine_processes import engines_for

    # Before the rest of the run is imported, which takes as long as their start-up: it overlaps.
    with failing(COULD_NOT_RUN), engines_for(options) as engines:
        _run_with(engines, options, report_dir, formats, console, quiet=quiet)


def _run_with(
    engines: list[EngineProcess] | None,
    options: RunOptions,
    report_dir: Path,
    formats: tuple[str, ...],
    console: Console,
    *,
    quiet: bool,
) -> None:
    from retry_contract import reports
    from retry_contract.interrupts import StopSignals
    from retry_contract.reports import progress
    from retry_contract.runner import CouldNotRun, RunBroken, RunInterrupted
    from retry_contract.runner import run as run_suite

    registry = output_guard.registry()
    chosen = formats or reports.FORMATS
    # Ctrl-C and CI's SIGTERM are counted from here to the end, reports included: the first stops the
    # run, which still cleans up and reports; a second one cuts cleanup short (runner.run).
    with StopSignals() as signals:
        try:
            with progress.showing(console, registry, quiet=quiet) as show:
                result = run_suite(options, progress=show, signals=signals, engines=engines)
        except CouldNotRun as error:
            if error.result is not None:
                # The target was reached: the reports say why nothing (more) could be judged.
                reports.publish(error.result, report_dir, chosen, console, quiet=True)
            fail(COULD_NOT_RUN, str(error))
        except RunInterrupted as interruption:
            result = interruption.result
            # What was judged before the interruption is worth a report; its verdict says it is incomplete.
            click.echo(
                "retry-contract: interrupted; "
                + (
                    "what the run created was cleaned up"
                    if result.cleaned_up
                    else "cleanup was cut short (the reports list what may be left)"
                )
                + ", and the reports hold what was judged until then",
                err=True,
            )
        except RunBroken as broken:
            result = broken.result
            report_internal_error(broken.__cause__ or broken, registry)
        except Exception as error:
            # Before the run had anything to report (reaching the target): nothing was judged.
            if debugging():
                raise
            registry.add(options.readonly_token)
            fail(COULD_NOT_RUN, registry.redact(internal_error_message(error)))
        published = reports.publish(result, report_dir, chosen, console, quiet=quiet)
    exit_now(int(result.exit_code) if published else ExitCode.COULD_NOT_RUN, abandoned=bool(result.abandoned))
