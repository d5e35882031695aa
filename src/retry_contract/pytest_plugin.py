"""The contract as tests of your own pytest suite (registered through the `pytest11` entry point).

    pytest --retry-contract-url https://api.example.com --retry-contract-project myproj
    pytest --retry-contract-app mypkg.mock:app --retry-contract-project myproj
    pytest                                   # the embedded mock

Every setting of `retry-contract run` that the run is told is an option `--retry-contract-NAME` with the
same type, range and default (`retry_contract.run_settings`; `--retry-contract-url` is the former name
of `--retry-contract-base-url`).
Credentials come from the environment as for the CLI (CDF_TOKEN, CDF_READONLY_TOKEN, or client
credentials). The suite runs once per session; each requirement becomes one test:

    from retry_contract.pytest_plugin import check_requirement

    def test_retry_contract(retry_contract_result, retry_contract_requirement):
        check_requirement(retry_contract_result, retry_contract_requirement)
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Callable
from typing import Any

import click
import pytest

from retry_contract import credentials
from retry_contract.errors import RetryContractError
from retry_contract.requirements import CATALOGUE, Level
from retry_contract.run_settings import RUN_OPTION_SETTINGS, Setting
from retry_contract.runner import CouldNotRun, RunOptions, RunResult, run
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import Outcome, failing_level_of

REQUIREMENT_IDS = tuple(requirement.id for requirement in CATALOGUE)
PREFIX = "--retry-contract-"
# Names the plugin's options had before they were derived from the settings, kept so that the command
# lines and ini files of its users keep working.
_FORMER_NAMES = {"base-url": f"{PREFIX}url"}


class ShouldViolation(UserWarning):
    """A SHOULD requirement failed; a warning unless --retry-contract-strict."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--retry-contract-NAME` for every run setting the runner is told (`run_settings`)."""
    group = parser.getgroup("retry-contract", "contract tests of CDF's Retry workflow execution endpoint")
    for setting in RUN_OPTION_SETTINGS:
        names = [
            f"{PREFIX}{setting.name}",
            *([_FORMER_NAMES[setting.name]] if setting.name in _FORMER_NAMES else []),
        ]
        group.addoption(*names, dest=_dest(setting), help=_help(setting), **_kind(setting))


def _dest(setting: Setting) -> str:
    return f"retry_contract_{setting.python_name}"


def _help(setting: Setting) -> str:
    shown = setting.shown_default
    return setting.help + (f" (default: {shown})" if shown is not None else "")


def _kind(setting: Setting) -> dict[str, Any]:
    if setting.flag:
        return {"action": "store_true", "default": False}
    if setting.multiple:
        return {"action": "append", "default": [], "metavar": setting.metavar, "type": _converter(setting)}
    return {"default": setting.default, "metavar": setting.metavar, "type": _converter(setting)}


def _converter(setting: Setting) -> Callable[[str], Any] | None:
    """The setting's click type as argparse's: its ranges checked here as on the command line."""
    param_type = setting.param_type
    if param_type is None:
        return None

    def convert(text: str) -> Any:
        try:
            return param_type.convert(text, None, None)
        except click.BadParameter as error:
            raise argparse.ArgumentTypeError(error.message) from None

    # argparse names the type by this in its error message.
    convert.__name__ = setting.metavar or setting.name
    return convert


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "retry_contract_requirement" in metafunc.fixturenames:
        metafunc.parametrize("retry_contract_requirement", REQUIREMENT_IDS)


@pytest.fixture(scope="session")
def retry_contract_options(request: pytest.FixtureRequest) -> RunOptions:
    values = {
        setting.python_name: request.config.getoption(_dest(setting)) for setting in RUN_OPTION_SETTINGS
    }
    # Repeated options come as lists; the options hold tuples.
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}
    registry = SecretRegistry()
    try:
        target = credentials.for_target(
            os.environ,
            registry,
            external=bool(values["base_url"] or values["app"]),
            timeout=values["timeout"],
        )
        # Checked as the options are made (the project name, before anything is sent).
        return RunOptions.from_settings(
            values, credentials=target.main, readonly_token=target.readonly_token, secrets=registry
        )
    except RetryContractError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.fixture(scope="session")
def retry_contract_result(retry_contract_options: RunOptions) -> RunResult:
    """One run of the whole suite, shared by every test of the session."""
    try:
        return run(retry_contract_options)
    except CouldNotRun as error:
        # The reason may quote the server (which may echo a credential): redacted like all output.
        secrets = retry_contract_options.secrets or SecretRegistry()
        pytest.fail(secrets.redact(f"retry-contract could not run: {error}"), pytrace=False)


def check_requirement(result: RunResult, requirement_id: str) -> None:
    """Fail (MUST, or SHOULD when strict), warn (SHOULD) or skip (not covered) for one requirement."""
    outcome = result.ledger.results[requirement_id]
    if outcome.outcome is Outcome.NOT_COVERED:
        pytest.skip(outcome.uncovered_reason or f"{requirement_id}: no response judged it")
    if outcome.outcome is Outcome.PASSED:
        return
    from retry_contract.reports.curl_script import curl

    # Known failures of the run's baseline (--retry-contract-baseline) fail no test, as they fail no run.
    new = outcome.new_failures(result.accepts)
    if not new:
        return
    details = "\n".join(
        f"- {failure.message}"
        + (f"\n  reproduce: {curl(failure.exchange, result.secrets)}" if failure.exchange else "")
        for failure in new[:5]
    )
    known = len(outcome.failures) - len(new)
    message = result.secrets.redact(
        f"{requirement_id} ({outcome.requirement.summary}): {len(new)} failures"
        + (f" ({known} known ones accepted by the baseline)" if known else "")
        + f"\n{details}"
    )
    if failing_level_of(new) is Level.SHOULD and not result.options.strict:
        warnings.warn(message, ShouldViolation, stacklevel=2)
        return
    pytest.fail(message, pytrace=False)
