"""The command line: `retry-contract run`, `mock`, `defects`, `mutants`, `mutants-merge`, `spec-drift` and
`replay` (alias `reproduce`).

Exit status of `run`: 0 conformant, 1 contract violations, 2 could not run or incomplete (see `run
--help`). Every failure the user can cause ends in one line saying what went wrong and what to do,
never a traceback.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import click
from rich.console import Console

from retry_contract import output_guard, settings
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB
from retry_contract.credentials import (
    CLIENT_ID_ENV,
    CLIENT_SECRET_ENV,
    READONLY_TOKEN_ENV,
    TOKEN_ENV,
    CredentialsError,
    from_environment,
    has_userinfo,
)
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.settings import DEFAULT_FILENAME
from retry_contract.verdict import ExitCode

DEBUG_ENV = "RETRY_CONTRACT_DEBUG"


def _base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if has_userinfo(value):
        # Said without the value: it holds a password, and httpx would send it as Basic auth in place
        # of the bearer token. One line, like every refusal of the credentials.
        click.echo(
            "retry-contract: --base-url must not carry credentials (user:password@host); give the "
            f"token in {TOKEN_ENV}, or the client credentials in {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}",
            err=True,
        )
        ctx.exit(ExitCode.COULD_NOT_RUN)
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        valid = False
    if not valid:
        raise click.BadParameter(f"{value!r} is not an http(s) URL, e.g. https://api.cognitedata.com")
    return value


def _project(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A CDF project URL name, checked before anything else is done, let alone sent."""
    from retry_contract import contract

    if value is None:
        return None
    try:
        return contract.check_project_name(value)
    except contract.InvalidProjectName as error:
        click.echo(f"retry-contract: --project: {error}", err=True)
        ctx.exit(ExitCode.COULD_NOT_RUN)


def _settings(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Load the settings file before the other options, as their defaults."""
    path = value or (Path(DEFAULT_FILENAME) if Path(DEFAULT_FILENAME).is_file() else None)
    if path is not None:
        try:
            defaults, environment = settings.load(path)
        except settings.SettingsError as error:
            raise click.BadParameter(str(error)) from None
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
        ctx.meta["settings_environment"] = environment
    return path


def _unwritable(directory: Path) -> str | None:
    """Why no report can be written into `directory` (created if missing), or None: a file is
    written there and removed, as the reporters will write theirs."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".retry-contract-probe-"):
            pass
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


def _fail(message: str) -> NoReturn:
    click.echo(f"retry-contract: could not run: {output_guard.redacted(message)}", err=True)
    output_guard.drain()
    sys.exit(ExitCode.COULD_NOT_RUN)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="retry-contract")
def main() -> None:
    """Contract tests for CDF's Retry workflow execution endpoint."""
    # Before any console exists: every byte printed from here on passes the process's secret registry.
    output_guard.install()
    # What is held of a last line without its end is written when the command ends, not at exit only
    # (a caller that runs the command in-process reads its output then).
    click.get_current_context().call_on_close(output_guard.drain)


_REPORT_DIR = click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Where the reports go.",
)
_SEED = click.option("--seed", type=int, default=None, help="Seed of the generated cases (default: fixed).")
_MAX_EXAMPLES = click.option(
    "--max-examples", type=click.IntRange(1, 10_000), default=None, help="Cases per fuzzing phase."
)
_MOCK_DEFECT = click.option(
    "--mock-defect",
    "mock_defects",
    multiple=True,
    metavar="NAME",
    help="Switch on a defect in the embedded mock (see `retry-contract defects`). Repeatable.",
)
_FUNCTION_EXTERNAL_ID = click.option(
    "--function-external-id",
    metavar="XID",
    default=None,
    help="Function the provisioned async tasks call (on a real project: an existing function).",
)
_TIMEOUT = click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=30.0,
    show_default=True,
    help="Total seconds per request: connecting, sending, and the whole answer.",
)
_MAX_RESPONSE_MIB = click.option(
    "--max-response-mib",
    type=click.IntRange(1, 1024),
    default=DEFAULT_MAX_RESPONSE_MIB,
    show_default=True,
    help="Read at most this many MiB of an answer (as sent and as decoded); a larger one is a finding.",
)
_FAIL_FAST = click.option("--fail-fast", is_flag=True, help="Stop at the first MUST failure.")


def _report_formats() -> tuple[str, ...]:
    # Only the registry's names: the reporters (and the runner under them) load when a run needs them.
    from retry_contract.reports import FORMATS

    return FORMATS


@main.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    is_eager=True,
    expose_value=False,
    callback=_settings,
    help=f"Settings file (default: ./{DEFAULT_FILENAME} if present); no secrets in it.",
)
@click.option(
    "--base-url",
    callback=_base_url,
    metavar="URL",
    help="Server to test, e.g. https://api.cognitedata.com. Without it: the embedded mock.",
)
@click.option(
    "--app",
    metavar="MODULE:ATTR",
    help="An ASGI or WSGI app to test in-process (e.g. mypkg.mock:app), instead of --base-url.",
)
@click.option(
    "--project",
    callback=_project,
    metavar="NAME",
    help="CDF project (URL name). Required with --base-url and --app.",
)
@_REPORT_DIR
@_SEED
@_MAX_EXAMPLES
@click.option("--strict", is_flag=True, help="Fail the run on SHOULD violations too.")
@_FUNCTION_EXTERNAL_ID
@_TIMEOUT
@_MAX_RESPONSE_MIB
@click.option("--no-fuzz", is_flag=True, help="Run only the scenario checks.")
@click.option(
    "--explore",
    type=click.IntRange(0, 100_000),
    default=None,
    metavar="N",
    help="Generated operation sequences around the retry to run (task graphs, task outcomes, cancels "
    "and retries; default a few, within the run's speed goal; more for nightly jobs, 0 for none).",
)
@_FAIL_FAST
@click.option(
    "--retry-execution",
    "named_executions",
    multiple=True,
    metavar="ID",
    help="Also retry this execution, which the suite did not create (once; judged). Repeatable.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(1),
    default=None,
    help="Send at most this many requests (cleanup exempt).",
)
@click.option(
    "--rate", type=click.FloatRange(0.01), default=None, help="Send at most this many requests per second."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what the run would create and send, and send nothing to the target.",
)
@click.option(
    "--require-all-must",
    is_flag=True,
    help="Exit 2 (inconclusive) unless every MUST requirement was judged, e.g. under --max-requests.",
)
@_MOCK_DEFECT
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Requests in flight at once over kept-alive connections (default 8); 1 runs everything in turn.",
)
@click.option(
    "--mock-profile",
    default="classic",
    show_default=True,
    metavar="NAME",
    help="Faithful shape of the embedded mock: classic, recorded (shaped like a real CDF recording) or "
    "proxied (classic behind a front-end proxy that answers 413/414/431 with HTML pages).",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(_report_formats()),
    help="A report to write (repeatable; default: all): console (the table on the terminal), junit "
    "(retry-contract-junit.xml, for CI test views), json (retry-contract.json, for tools), html "
    "(retry-contract.html, for people), markdown (retry-contract-summary.md, for pull requests). "
    "With GITHUB_STEP_SUMMARY set, the Markdown summary is appended there whatever the choice.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but the verdict line, and errors on stderr.")
@click.option("--no-color", is_flag=True, help="No colours or other escape sequences (as with NO_COLOR set).")
@click.option(
    "--max-duration",
    type=click.FloatRange(0.1, clamp=False),
    default=None,
    metavar="SECONDS",
    help="Stop sending after this long, clean up and report what was judged, marked incomplete "
    "(default: no bound).",
)
@click.option(
    "--cleanup-timeout",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Abandon cleanup after this long; the reports list the workflows it may have left.",
)
def run(
    base_url: str | None,
    app: str | None,
    project: str | None,
    report_dir: Path,
    seed: int | None,
    max_examples: int | None,
    strict: bool,
    function_external_id: str | None,
    timeout: float,
    max_response_mib: int,
    no_fuzz: bool,
    explore: int | None,
    fail_fast: bool,
    named_executions: tuple[str, ...],
    max_requests: int | None,
    rate: float | None,
    dry_run: bool,
    require_all_must: bool,
    mock_defects: tuple[str, ...],
    concurrency: int | None,
    mock_profile: str,
    formats: tuple[str, ...],
    quiet: bool,
    no_color: bool,
    max_duration: float | None,
    cleanup_timeout: float,
) -> None:
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
    from retry_contract import reports
    from retry_contract.interrupts import StopSignals
    from retry_contract.reports import progress
    from retry_contract.runner import MOCK_PROJECT, CouldNotRun, RunBroken, RunInterrupted, RunOptions
    from retry_contract.runner import run as run_suite

    if base_url and app:
        raise click.UsageError("give either --base-url or --app, not both")
    external = base_url or app
    if external and not project:
        raise click.UsageError(f"--project is required with {'--base-url' if base_url else '--app'}")
    if external and (mock_defects or mock_profile != "classic"):
        raise click.UsageError("--mock-defect and --mock-profile apply to the embedded mock only")
    if not dry_run:
        # Found after the run, an unwritable directory would lose every report of it: found first.
        problem = _unwritable(report_dir)
        if problem is not None:
            _fail(f"cannot write reports to {report_dir}: {problem}")
    registry = output_guard.registry()
    readonly_token = (os.environ.get(READONLY_TOKEN_ENV) or None) if external else None
    registry.add(readonly_token)
    try:
        # The embedded mock brings its own tokens; credentials are read only for a real target.
        environment = {**click.get_current_context().meta.get("settings_environment", {}), **os.environ}
        credentials = from_environment(environment, registry, timeout=timeout) if external else None
    except CredentialsError as error:
        _fail(str(error))
    defaults = RunOptions(base_url=None, project=MOCK_PROJECT, credentials=None)
    options = RunOptions(
        base_url=base_url,
        app=app,
        project=project or MOCK_PROJECT,
        credentials=credentials,
        readonly_token=readonly_token,
        secrets=registry,
        seed=defaults.seed if seed is None else seed,
        max_examples=max_examples or defaults.max_examples,
        strict=strict,
        function_external_id=function_external_id or defaults.function_external_id,
        request_timeout=timeout,
        max_response_mib=max_response_mib,
        fuzz=not no_fuzz,
        explore=defaults.explore if explore is None else explore,
        fail_fast=fail_fast,
        named_executions=named_executions,
        max_requests=max_requests,
        rate=rate,
        mock_defects=frozenset(mock_defects),
        mock_profile=mock_profile,
        concurrency=concurrency or defaults.concurrency,
        require_all_must=require_all_must,
        max_duration=max_duration,
        cleanup_timeout=cleanup_timeout,
    )
    console: Console = progress.make_console(no_color=no_color)
    if dry_run:
        from retry_contract.runner import dry_run as plan

        console.print(plan(options))
        return
    # Ctrl-C and CI's SIGTERM are counted from here to the end, reports included: the first stops the
    # run, which still cleans up and reports; a second one cuts cleanup short (runner.run).
    with StopSignals() as signals:
        try:
            with progress.showing(console, registry, quiet=quiet) as show:
                result = run_suite(options, progress=show, signals=signals)
        except CouldNotRun as error:
            if error.result is not None:
                # The target was reached: the reports say why nothing (more) could be judged.
                reports.publish(error.result, report_dir, formats or reports.FORMATS, console, quiet=True)
            _fail(str(error))
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
            _report_internal_error(broken.__cause__ or broken, registry)
        except Exception as error:
            # Before the run had anything to report (reaching the target): nothing was judged.
            if os.environ.get(DEBUG_ENV):
                raise
            registry.add(options.readonly_token)
            _fail(
                registry.redact(
                    f"internal error ({type(error).__name__}: {error}); set {DEBUG_ENV}=1 for details"
                )
            )
        published = reports.publish(result, report_dir, formats or reports.FORMATS, console, quiet=quiet)
    _exit(int(result.exit_code) if published else ExitCode.COULD_NOT_RUN, abandoned=bool(result.abandoned))


def _report_internal_error(error: BaseException, registry: SecretRegistry) -> None:
    """One line on stderr (the traceback too with RETRY_CONTRACT_DEBUG=1), redacted either way."""
    if os.environ.get(DEBUG_ENV):
        text = "".join(traceback.format_exception(error))
        click.echo(registry.redact(text.rstrip()), err=True)
    click.echo(
        registry.redact(
            f"retry-contract: internal error ({type(error).__name__}: {error}); the reports hold what was "
            f"judged until then" + ("" if os.environ.get(DEBUG_ENV) else f"; set {DEBUG_ENV}=1 for details")
        ),
        err=True,
    )


def _exit(code: int, *, abandoned: bool) -> NoReturn:
    """Exit with `code`. After abandoned work, at once: a thread of a concurrent.futures pool (the
    fuzzer's, cleanup's) stuck in a request would otherwise be joined at interpreter exit, for as long
    as the server keeps it. The reports are written and closed by then; only the standard streams
    need flushing, since os._exit skips it."""
    if abandoned:
        output_guard.drain()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@main.command()
@_REPORT_DIR
@click.option(
    "--defect", "selected", multiple=True, metavar="NAME", help="Only these defects (default: all)."
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None, help="Parallel runs (default: one per core)."
)
@_FAIL_FAST
@_SEED
@_MAX_EXAMPLES
@click.option(
    "--explore",
    type=click.IntRange(0, 100_000),
    default=None,
    metavar="N",
    help="Generated operation sequences per run (default 15: some defects show only in a sequence).",
)
@click.option(
    "--shard",
    "shard_text",
    metavar="I/N",
    default=None,
    help="Run only shard I of N (1-based) of the matrix's runs, dealt by position in catalogue order; "
    "its kill-matrix.json says which runs it holds. `retry-contract mutants-merge` puts the shards together.",
)
def mutants(
    report_dir: Path,
    selected: tuple[str, ...],
    workers: int | None,
    fail_fast: bool,
    seed: int | None,
    max_examples: int | None,
    explore: int | None,
    shard_text: str | None,
) -> None:
    """Run the suite against the faithful mock and each defect; write the kill matrix.

    Exit 0 only when the faithful mock passes and every defect is caught (with --shard: every run
    of the shard is as it should be).
    """
    from rich.progress import Progress

    from cdf_workflows_mock.defects import BY_NAME, CATALOGUE
    from retry_contract.mutants import (
        MATRIX_EXPLORE,
        MatrixSettings,
        Shard,
        ShardPlan,
        matrix_passes,
        matrix_problems,
        matrix_tally,
        matrix_targets,
        run_matrix,
        shard_of,
        target_name,
        write_reports,
    )
    from retry_contract.runner import DEFAULT_MAX_EXAMPLES, DEFAULT_SEED

    unknown = sorted(set(selected) - set(BY_NAME))
    if unknown:
        raise click.BadParameter(f"unknown defect(s) {', '.join(unknown)}; see `retry-contract defects`")
    # A defect named twice is one run: a matrix names each run once, so its shards can be told apart.
    names = list(dict.fromkeys(selected)) or [d.name for d in CATALOGUE]
    matrix = [target_name(target) for target in matrix_targets(names)]
    plan = None
    if shard_text is not None:
        try:
            plan = ShardPlan(Shard.parse(shard_text), tuple(matrix))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--shard") from None
        if plan.shard.count > len(matrix):
            raise click.BadParameter(
                f"{plan.shard.count} shards for {len(matrix)} runs would leave shards empty",
                param_hint="--shard",
            )
    settings = MatrixSettings(
        seed=DEFAULT_SEED if seed is None else seed,
        max_examples=max_examples or DEFAULT_MAX_EXAMPLES,
        fail_fast=fail_fast,
        explore=MATRIX_EXPLORE if explore is None else explore,
    )
    runs = matrix if plan is None else shard_of(matrix, plan.shard)
    started = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("kill matrix" if plan is None else f"kill matrix, shard {plan.shard}")
        progress.update(task, total=len(runs))
        outcomes = run_matrix(
            names,
            settings,
            workers or os.cpu_count() or 1,
            on_outcome=lambda _: progress.advance(task),
            shard=None if plan is None else plan.shard,
        )
    wall = time.perf_counter() - started
    written = write_reports(outcomes, report_dir, settings, wall, plan)
    _conclude_matrix(
        matrix_problems(outcomes),
        f"{matrix_tally(outcomes)} in {wall:.0f} s",
        matrix_passes(outcomes),
        written,
    )


def _conclude_matrix(problems: list[str], tally: str, passes: bool, written: list[Path]) -> NoReturn:
    """Say what went wrong run by run, then the tally, and exit as `mutants` does."""
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{tally}; reports: {', '.join(str(p) for p in written)}")
    sys.exit(ExitCode.CONFORMANT if passes else ExitCode.VIOLATIONS)


@main.command("mutants-merge")
@click.argument(
    "shard_files",
    nargs=-1,
    required=True,
    metavar="SHARD_JSON...",
    type=click.Path(dir_okay=False, path_type=Path),
)
@_REPORT_DIR
def mutants_merge(shard_files: tuple[Path, ...], report_dir: Path) -> None:
    """Put the kill-matrix.json of every shard of `mutants --shard I/N` together into one kill matrix.

    Writes kill-matrix.json and kill-matrix.md as an unsharded `mutants` does, and exits as it does:
    0 only when the faithful mock passes and every defect is caught, 1 otherwise. Exit 2, with one
    line saying why, when the files are not exactly the N shards of one matrix: a shard missing or
    given twice, shards of different seeds or settings, runs that do not cover the matrix.
    """
    import json

    from retry_contract.mutants import (
        MergeError,
        matrix_passes,
        matrix_problems,
        matrix_tally,
        merge_shards,
        write_reports,
    )

    def refuse(reason: str) -> NoReturn:
        click.echo(f"retry-contract: cannot merge the kill matrix: {reason}", err=True)
        sys.exit(ExitCode.COULD_NOT_RUN)

    documents: list[tuple[str, object]] = []
    for path in shard_files:
        try:
            documents.append((str(path), json.loads(path.read_text(encoding="utf-8"))))
        except OSError as error:
            refuse(f"{path}: {error.strerror or error}")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            refuse(f"{path} is not JSON ({error})")
    try:
        merged = merge_shards(documents)
    except MergeError as error:
        refuse(str(error))
    try:
        written = write_reports(merged.outcomes, report_dir, merged.settings, merged.wall)
    except OSError as error:
        refuse(f"cannot write to {report_dir}: {error.strerror or error}")
    _conclude_matrix(
        matrix_problems(merged.outcomes),
        f"{matrix_tally(merged.outcomes)} in {len(documents)} shards, the longest {merged.wall:.0f} s",
        matrix_passes(merged.outcomes),
        written,
    )


@main.command()
def defects() -> None:
    """List the defects the mock can switch on, with the requirements each breaks."""
    from cdf_workflows_mock.defects import CATALOGUE

    for defect in CATALOGUE:
        click.echo(f"{defect.name:34} {', '.join(defect.breaks):36} {defect.description}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--project", default="contract-test", show_default=True, help="The project the tokens are valid for."
)
@click.option(
    "--defect",
    "defect_names",
    multiple=True,
    metavar="NAME",
    help="Switch on a realistic server bug (see `retry-contract defects`). Repeatable.",
)
@click.option(
    "--profile",
    default="classic",
    show_default=True,
    metavar="NAME",
    help="Faithful shape: classic, recorded (shaped like an execution recorded from a real CDF) or proxied "
    "(behind a front-end proxy that answers 413/414/431 with HTML pages).",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Start with the workflows and executions of this YAML file (README: Initial state from a file).",
)
@click.option(
    "--latency",
    default=None,
    metavar="SECONDS|MIN-MAX",
    help="Chaos: every answer waits this long, or a delay drawn from the range (at most 30 s).",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="FRACTION",
    help="Chaos: answer this share of requests 429 or 503 (with Retry-After); they change nothing.",
)
@click.option(
    "--chaos-seed",
    type=int,
    default=None,
    metavar="N",
    help="Seed of the chaos draws (default 0): the same seed, the same faults for the same requests.",
)
@click.option("--access-log", is_flag=True, help="Log a line per request (off: it slows the mock).")
def mock(
    host: str,
    port: int,
    project: str,
    defect_names: tuple[str, ...],
    profile: str,
    state_file: Path | None,
    latency: str | None,
    error_rate: float | None,
    chaos_seed: int | None,
    access_log: bool,
) -> None:
    """Serve the mock of the workflow API until interrupted.

    Tokens: MOCK_WRITE_TOKEN and MOCK_READONLY_TOKEN from the environment, else the documented
    defaults `mock-write-token` and `mock-readonly-token`.
    """
    from cdf_workflows_mock import (
        DEFAULT_READONLY_TOKEN,
        DEFAULT_WRITE_TOKEN,
        ChaosConfig,
        MockConfig,
        StateFileError,
        load_state_file,
        serve_forever,
    )

    try:
        chaos = ChaosConfig.from_options(latency, error_rate, chaos_seed)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--latency/--error-rate") from None
    try:
        config = MockConfig.with_tokens(
            project,
            os.environ.get("MOCK_WRITE_TOKEN") or DEFAULT_WRITE_TOKEN,
            os.environ.get("MOCK_READONLY_TOKEN") or DEFAULT_READONLY_TOKEN,
            defects=frozenset(defect_names),
            profile=profile,
            chaos=chaos,
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--defect/--profile") from None
    state = None
    if state_file is not None:
        try:
            state = load_state_file(state_file)
        except StateFileError as error:
            _fail(str(error))
    click.echo(
        f"mock of the CDF workflow API on http://{host}:{port}/api/v1/projects/{project} (Ctrl-C stops)"
    )
    if state is not None:
        click.echo(
            f"initial state from {state_file}: {len(state.workflows)} workflow(s), "
            f"{len(state.versions)} version(s), {len(state.executions)} execution(s)"
        )
    if chaos.enabled:
        click.echo(f"chaos: {chaos.describe()}; a refused request changes nothing")
    try:
        serve_forever(config, host, port, state=state, access_log=access_log)
    except StateFileError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"cannot listen on {host}:{port}: {error.strerror}")
    except KeyboardInterrupt:
        pass


@main.command("spec-drift")
@click.argument("file", type=click.Path(path_type=Path))
def spec_drift(file: Path) -> None:
    """Compare FILE, a newer snapshot of Cognite's OpenAPI document, with the committed copy.

    Prints what Cognite changed in the retry operation and its schemas (prose and examples are not
    compared), then what spec/upstream/differences.yaml no longer explains against the curated spec.
    Exit 0 when the retry operation is unchanged, 1 when it changed, 2 when FILE cannot be compared.
    """
    from retry_contract import spec_drift as drift

    try:
        report = drift.check_snapshot(file)
    except drift.SpecDriftError as error:
        _fail(str(error))
    if report.changes:
        click.echo(
            f"{file}: {len(report.changes)} change(s) to the retry operation since the committed copy:"
        )
        for change in report.changes:
            click.echo(f"  {change}")
    else:
        click.echo(f"{file}: no change to the retry operation or its schemas since the committed copy")
    listed = drift.differences_path()
    if report.audit.clean:
        click.echo(f"With {file} as the official document, {listed} explains every difference.")
    else:
        click.echo(f"With {file} as the official document, against the curated spec:")
        for difference in report.audit.unexplained:
            click.echo(f"  not explained by the reviewed list: {difference}")
        for entry in report.audit.stale:
            click.echo(f"  stale in the reviewed list (no longer so): {entry.difference}")
        click.echo(
            f"Review each; update the curated spec or {listed.name}; see {listed.parent}/PROVENANCE.md."
        )
    sys.exit(ExitCode.VIOLATIONS if report.changes else ExitCode.CONFORMANT)


@main.command()
@click.argument("report", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--failure",
    "number",
    type=int,
    required=True,
    metavar="N",
    help="Which failure: 1-based, in report order.",
)
@click.option(
    "--base-url",
    callback=_base_url,
    metavar="URL",
    help="Server to replay on (credentials from the environment, as for run). Without it: an embedded mock.",
)
@click.option("--project", callback=_project, metavar="NAME", help="CDF project (default: the report's).")
@_MOCK_DEFECT
@_FUNCTION_EXTERNAL_ID
@_TIMEOUT
@_MAX_RESPONSE_MIB
def replay(
    report: Path,
    number: int,
    base_url: str | None,
    project: str | None,
    mock_defects: tuple[str, ...],
    function_external_id: str | None,
    timeout: float,
    max_response_mib: int,
) -> None:
    """Send failure N of a JSON report again, on a fresh execution in the state it needed.

    Recreates the precondition through the real endpoints, takes a fresh nonce from a new session,
    sends the recorded request with a credential of the recorded role, judges the answer, and cleans
    up. Exit 0 when the requirement holds now, 1 when it still fails, 2 when it could not replay.
    """
    from retry_contract import replay as replaying
    from retry_contract.interrupts import Background, StopSignals, Wake
    from retry_contract.runner import CouldNotRun

    if base_url and mock_defects:
        raise click.UsageError("--mock-defect applies to the embedded mock only")
    registry = output_guard.registry()

    def could_not(message: str) -> NoReturn:
        click.echo(f"retry-contract: could not replay: {registry.redact(message)}", err=True)
        output_guard.drain()
        sys.exit(ExitCode.COULD_NOT_RUN)

    # Ctrl-C and CI's SIGTERM are counted while the replay goes on a thread of its own: the first lets
    # it finish and clean up what it created (a handful of requests), a second one ends the process.
    with StopSignals() as signals:
        try:
            record = replaying.pick(replaying.load_failures(report), number, report)
            # As for run: a real target's credentials come from the environment; the mock has its own.
            credentials = from_environment(os.environ, registry, timeout=timeout) if base_url else None
            readonly = (os.environ.get(READONLY_TOKEN_ENV) or None) if base_url else None
            registry.add(readonly)
            options = replaying.ReplayOptions(
                base_url=base_url,
                project=project,
                credentials=credentials,
                readonly_token=readonly,
                mock_defects=frozenset(mock_defects),
                function_external_id=function_external_id,
                timeout=timeout,
                max_response_mib=max_response_mib,
                secrets=registry,
            )
        except (replaying.ReplayError, CredentialsError, CouldNotRun) as error:
            could_not(str(error))
        replaying_thread = Background(
            "retry-contract-replay", lambda: replaying.replay(record, options), signals.wake
        )
        if signals.wait_until(replaying_thread.finished.is_set, deadline=None, signals_seen=0) is Wake.SIGNAL:
            click.echo(
                "retry-contract: interrupted; cleaning up what the replay created (again: at once)", err=True
            )
            if (
                signals.wait_until(replaying_thread.finished.is_set, deadline=None, signals_seen=1)
                is Wake.SIGNAL
            ):
                click.echo(
                    "retry-contract: could not replay: interrupted twice; cleanup was cut short, and "
                    "workflows named retry-contract-<run id>-<purpose> may be left behind",
                    err=True,
                )
                _exit(ExitCode.COULD_NOT_RUN, abandoned=True)
            could_not("interrupted; what the replay created was cleaned up")
    failure = replaying_thread.error
    if isinstance(failure, (replaying.ReplayError, CredentialsError, CouldNotRun)):
        could_not(str(failure))
    if failure is not None:
        if os.environ.get(DEBUG_ENV):
            raise failure
        could_not(f"internal error ({type(failure).__name__}: {failure}); set {DEBUG_ENV}=1 for details")
    outcome = replaying_thread.value
    assert outcome is not None
    target = "the embedded mock" + (f" with {', '.join(mock_defects)}" if mock_defects else " (faithful)")
    click.echo(
        registry.redact(
            f"failure {number} replayed on {base_url or target}: {outcome.request} answered "
            f"{outcome.status}; precondition: {outcome.precondition}"
        )
    )
    for problem in outcome.cleanup_problems:
        click.echo(registry.redact(f"cleanup: {problem}"), err=True)
    click.echo(registry.redact(outcome.verdict))
    sys.exit(ExitCode.CONFORMANT if outcome.holds else ExitCode.VIOLATIONS)


# Issue 11 calls it `reproduce`: the same command under that name.
main.add_command(replay, "reproduce")

if __name__ == "__main__":
    main()
