"""`retry-contract defects`: the defects the mock can switch on."""

from __future__ import annotations

import click


@click.command()
def defects() -> None:
    """List the defects the mock can switch on, with the requirements each breaks."""
    from cdf_workflows_mock.defects import CATALOGUE

    for defect in CATALOGUE:
        click.echo(f"{defect.name:34} {', '.join(defect.breaks):36} {defect.description}")
