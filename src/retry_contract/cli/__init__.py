"""The command line: `retry-contract run`, `mock`, `defects`, `mutants`, `mutants-merge`, `spec-drift` and
`replay` (alias `reproduce`), one module each.

Exit status of `run`: 0 conformant, 1 contract violations, 2 could not run or incomplete (see `run
--help`). Every failure the user can cause ends in one line saying what went wrong and what to do,
never a traceback (`errors.py`). The options of `run` are made from the run settings' declarations
(`retry_contract.run_settings`, through `options.py`).
"""

from __future__ import annotations

import click

from retry_contract import output_guard
from retry_contract.caller_names import for_caller
from retry_contract.cli.defect_matrix import defect_matrix
from retry_contract.cli.defect_matrix_merge import defect_matrix_merge
from retry_contract.cli.defects import defects
from retry_contract.cli.mock import mock
from retry_contract.cli.replay import replay
from retry_contract.cli.run import run
from retry_contract.cli.spec_drift import spec_drift


class _Commands(click.Group):
    """The command group, whose usage errors (a bad option value, a missing one) name what the caller
    set: the action's inputs when the GitHub Action runs the command (caller_names)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            said = error.format_message()
            named = for_caller(said)
            if named == said:
                raise
            # The same class of error, with the same exit status (2 for usage errors).
            if isinstance(error, click.UsageError):
                raise click.UsageError(named, error.ctx) from None
            raise click.ClickException(named) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="retry-contract")
def main() -> None:
    """Contract tests for CDF's Retry workflow execution endpoint."""
    # Before any console exists: every byte printed from here on passes the process's secret registry.
    output_guard.install()
    # What is held of a last line without its end is written when the command ends, not at exit only
    # (a caller that runs the command in-process reads its output then).
    click.get_current_context().call_on_close(output_guard.drain)


for command in (run, mock, defects, defect_matrix, defect_matrix_merge, spec_drift, replay):
    main.add_command(command)
# `reproduce`, the word of the report's `reproduce_steps` and `reproduce_script`, is what a reader of a
# failure looks for: the same command under that name.
main.add_command(replay, "reproduce")

__all__ = ["main"]
