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
    help="Server to replay on (credentials from the environment, as for run). Without it: an embedded mock.",
)
@setting_option("project", help="CDF project (default: the report's).", show_default=False)
@setting_option("mock-defect")
# Unset, the function the report's run used.
@setting_option("function-external-id", default=None, show_default="the report's run's")
@setting_option("timeout")
@setting_option("max-response-mib")
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

    if base_url and mock_defects:
        raise click.UsageError("--mock-defect applies to the embedded mock only")
    registry = output_guard.registry()

    def could_not(error: RetryContractError | str) -> NoReturn:
        code = exit_code(error) if isinstance(error, RetryContractError) else ExitCode.COULD_NOT_RUN
        fail(COULD_NOT_REPLAY, str(error), code)

    # Ctrl-C and CI's SIGTERM are counted while the replay goes on a thread of its own: the first lets
    # it finish and clean up what it created (a handful of requests), a second one ends the process.
    with StopSignals() as signals:
        try:
            record = replaying.pick(replaying.load_failures(report), number, report)
            # As for run: a real target's credentials come from the environment; the mock has its own.
            target = credentials.for_target(os.environ, registry, external=bool(base_url), timeout=timeout)
            options = replaying.ReplayOptions(
                base_url=base_url,
                project=project,
                credentials=target.main,
                readonly_token=target.readonly_token,
                mock_defects=frozenset(mock_defects),
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
    mock = "the embedded mock" + (f" with {', '.join(mock_defects)}" if mock_defects else " (faithful)")
    click.echo(
        registry.redact(
            f"failure {number} replayed on {base_url or mock}: {outcome.request} answered "
            f"{outcome.status}; precondition: {outcome.precondition}"
        )
    )
    for problem in outcome.cleanup_problems:
        click.echo(registry.redact(f"cleanup: {problem}"), err=True)
    click.echo(registry.redact(outcome.verdict))
    exit_now(ExitCode.CONFORMANT if outcome.holds else ExitCode.VIOLATIONS, abandoned=False)
