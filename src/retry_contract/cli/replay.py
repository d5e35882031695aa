"""`retry-contract replay` (alias `reproduce`): one failure of a JSON report sent again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import click

from retry_contract import credentials, output_guard
from retry_contract.cli.errors import debugging, exit_code, exit_now, fail, internal_error_message
from retry_contract.cli.options import setting_option
from retry_contract.errors import RetryContractError
from retry_contract.verdict import ExitCode

COULD_NOT_REPLAY = "could not replay"


@click.command()
@click.argument("report", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--failure",
    "number",
    type=int,
    required=True,
    metavar="N",
    help="Which failure: 1-based, in report order.",
)
@setting_option(
    "base-url",
    help="Replay on this server instead of the report's target (credentials from the environment, as "
    "for run).",
)
@setting_option("app", help="Replay on this ASGI or WSGI app, served in-process, instead.")
@click.option(
    "--mock",
    is_flag=True,
    help="Replay on a fresh embedded mock (faithful, or with --mock-defect) instead of the report's target.",
)
@setting_option("project", help="CDF project (default: the report's).", show_default=False)
@setting_option(
    "mock-defect", help="Replay on an embedded mock with this defect (implies --mock). Repeatable."
)
# Unset: the report's target decides (a mock with the run's profile), or, with --mock, the classic one.
@setting_option(
    "mock-profile",
    default=None,
    show_default=False,
    help="Faithful shape of the embedded mock (classic, recorded, proxied); implies --mock.",
)
# Unset, the function the report's run used.
@setting_option("function-external-id", default=None, show_default="the report's run's")
@setting_option("timeout")
@setting_option("max-response-mib")
def replay(
    report: Path,
    number: int,
    base_url: str | None,
    app: str | None,
    mock: bool,
    project: str | None,
    mock_defects: tuple[str, ...],
    mock_profile: str | None,
    function_external_id: str | None,
    timeout: float,
    max_response_mib: int,
) -> None:
    """Send failure N of a JSON report again, on a fresh execution in the state it needed.

    By default on the report's own target: the server it ran against (credentials from the
    environment, as for run), or a fresh embedded mock with the run's profile and defects, or the
    run's app served again. Recreates the precondition through the real endpoints, takes a fresh
    nonce from a new session, sends the recorded request with a credential of the recorded role,
    judges the answer, and cleans up. On the report's target: exit 0 when the requirement holds now,
    1 when it still fails. On another one the verdict is about that one only ("does not reproduce
    here", exit 0; "reproduced elsewhere", exit 1), never a fix. Exit 2 when it could not replay.
    """
    from retry_contract import replay as replaying
    from retry_contract import replay_target
    from retry_contract.interrupts import Background, StopSignals, Wake

    mocked = mock or bool(mock_defects) or mock_profile is not None
    if sum((base_url is not None, app is not None, mocked)) > 1:
        raise click.UsageError(
            "--base-url, --app and the embedded mock (--mock, --mock-defect, --mock-profile) exclude "
            "each other"
        )
    registry = output_guard.registry()

    def could_not(error: RetryContractError | str) -> NoReturn:
        code = exit_code(error) if isinstance(error, RetryContractError) else ExitCode.COULD_NOT_RUN
        fail(COULD_NOT_REPLAY, str(error), code)

    # Ctrl-C and CI's SIGTERM are counted while the replay goes on a thread of its own: the first lets
    # it finish and clean up what it created (a handful of requests), a second one ends the process.
    with StopSignals() as signals:
        try:
            loaded = replaying.load_report(report)
            record = replaying.pick(loaded.failures, number, report)
            recorded = replaying.report_target(loaded, record)
            try:
                target = replay_target.chosen(
                    recorded,
                    base_url=base_url,
                    app=app,
                    mock=mock,
                    mock_defects=frozenset(mock_defects),
                    mock_profile=mock_profile,
                    project=project,
                )
            except ValueError as error:
                could_not(str(error))
            # As for run: a server's or an app's credentials come from the environment; the mock has
            # its own.
            external = not target.embedded_mock
            given = credentials.for_target(os.environ, registry, external=external, timeout=timeout)
            if external and given.main is None:
                could_not(
                    f"no credentials for {target.describe()}: set CDF_TOKEN, or CDF_CLIENT_ID, "
                    "CDF_CLIENT_SECRET and CDF_TOKEN_URL, as for run"
                )
            options = replaying.ReplayOptions(
                target=target,
                report_target=recorded,
                credentials=given.main,
                readonly_token=given.readonly_token,
                function_external_id=function_external_id,
                timeout=timeout,
                max_response_mib=max_response_mib,
                secrets=registry,
            )
        except RetryContractError as error:
            could_not(error)
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
                exit_now(ExitCode.COULD_NOT_RUN, abandoned=True)
            could_not("interrupted; what the replay created was cleaned up")
    failure = replaying_thread.error
    if isinstance(failure, RetryContractError):
        could_not(failure)
    if failure is not None:
        if debugging():
            raise failure
        could_not(internal_error_message(failure))
    outcome = replaying_thread.value
    assert outcome is not None
    if outcome.elsewhere is not None:
        # Said before anything else: the verdict below is about this target, not the report's.
        click.echo(
            registry.redact(
                f"not the report's target: replayed on {target.describe()}; the report saw the failure on "
                f"{outcome.elsewhere}"
            )
        )
    click.echo(
        registry.redact(
            f"failure {number} replayed on {target.describe()}: {outcome.request} answered "
            f"{outcome.status}; precondition: {outcome.precondition}"
        )
    )
    for problem in outcome.cleanup_problems:
        click.echo(registry.redact(f"cleanup: {problem}"), err=True)
    click.echo(registry.redact(outcome.verdict))
    exit_now(ExitCode.CONFORMANT if outcome.holds else ExitCode.VIOLATIONS, abandoned=False)
