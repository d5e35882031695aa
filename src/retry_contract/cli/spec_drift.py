"""`retry-contract spec-drift`: a newer snapshot of Cognite's OpenAPI document against the committed one."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from retry_contract.cli.errors import COULD_NOT_RUN, failing
from retry_contract.verdict import ExitCode


@click.command("spec-drift")
@click.argument("file", type=click.Path(path_type=Path))
def spec_drift(file: Path) -> None:
    """Compare FILE, a newer snapshot of Cognite's OpenAPI document, with the committed copy.

    Prints what Cognite changed in the retry operation and its schemas (prose and examples are not
    compared), then what spec/upstream/differences.yaml no longer explains against the curated spec.
    Exit 0 when the retry operation is unchanged, 1 when it changed, 2 when FILE cannot be compared.
    """
    from retry_contract import spec_drift as drift

    with failing(COULD_NOT_RUN):
        report = drift.check_snapshot(file)
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
