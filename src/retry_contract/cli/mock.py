"""`retry-contract mock`: the mock of the workflow API, served until interrupted."""

from __future__ import annotations

import os
from pathlib import Path

import click

from retry_contract.cli.errors import COULD_NOT_RUN, fail
from retry_contract.run_settings import MOCK_PROJECT


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--project", default=MOCK_PROJECT, show_default=True, help="The project the tokens are valid for."
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
    from cdf_workflows_mock.defects import check_combination

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
        check_combination(config.defects)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--defect/--profile") from None
    state = None
    if state_file is not None:
        try:
            state = load_state_file(state_file)
        except StateFileError as error:
            fail(COULD_NOT_RUN, str(error))
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
    # The mock's own errors: its package imports nothing of the suite, not even its root error.
    try:
        serve_forever(config, host, port, state=state, access_log=access_log)
    except StateFileError as error:
        fail(COULD_NOT_RUN, str(error))
    except OSError as error:
        fail(COULD_NOT_RUN, f"cannot listen on {host}:{port}: {error.strerror}")
    except KeyboardInterrupt:
        pass
