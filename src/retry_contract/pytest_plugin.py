"""The contract as tests of your own pytest suite (registered through the `pytest11` entry point).

    pytest --retry-contract-url https://api.example.com --retry-contract-project myproj
    pytest --retry-contract-app mypkg.mock:app --retry-contract-project myproj
    pytest                                   # the embedded mock

Credentials come from the environment as for the CLI (CDF_TOKEN, CDF_READONLY_TOKEN, or client
credentials). The suite runs once per session; each requirement becomes one test:

    from retry_contract.pytest_plugin import check_requirement

    def test_retry_contract(retry_contract_result, retry_contract_requirement):
        check_requirement(retry_contract_result, retry_contract_requirement)
"""

from __future__ import annotations

import os
import warnings

import pytest

from retry_contract.credentials import READONLY_TOKEN_ENV, CredentialsError, from_environment
from retry_contract.exploration import DEFAULT_EXPLORE
from retry_contract.requirements import CATALOGUE, Level
from retry_contract.runner import (
    DEFAULT_MAX_EXAMPLES,
    DEFAULT_SEED,
    MOCK_PROJECT,
    CouldNotRun,
    RunOptions,
    RunResult,
    run,
)
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import Outcome

REQUIREMENT_IDS = tuple(requirement.id for requirement in CATALOGUE)


class ShouldViolation(UserWarning):
    """A SHOULD requirement failed; a warning unless --retry-contract-strict."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("retry-contract", "contract tests of CDF's Retry workflow execution endpoint")
    group.addoption("--retry-contract-url", default=None, help="server to test (default: the embedded mock)")
    group.addoption(
        "--retry-contract-app", default=None, help="ASGI/WSGI app to test in-process, module:attr"
    )
    group.addoption("--retry-contract-project", default=None, help="CDF project of the server or app")
    group.addoption("--retry-contract-strict", action="store_true", help="SHOULD violations fail too")
    group.addoption("--retry-contract-seed", type=int, default=DEFAULT_SEED)
    group.addoption("--retry-contract-max-examples", type=int, default=DEFAULT_MAX_EXAMPLES)
    group.addoption(
        "--retry-contract-explore",
        type=int,
        default=DEFAULT_EXPLORE,
        help="generated operation sequences to run (more for nightly jobs)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "retry_contract_requirement" in metafunc.fixturenames:
        metafunc.parametrize("retry_contract_requirement", REQUIREMENT_IDS)


@pytest.fixture(scope="session")
def retry_contract_options(request: pytest.FixtureRequest) -> RunOptions:
    option = request.config.getoption
    url, app = option("--retry-contract-url"), option("--retry-contract-app")
    external = url or app
    registry = SecretRegistry()
    try:
        credentials = from_environment(os.environ, registry) if external else None
        # Checked as the options are made (the project name, before anything is sent).
        return RunOptions(
            base_url=url,
            app=app,
            project=option("--retry-contract-project") or MOCK_PROJECT,
            credentials=credentials,
            readonly_token=(os.environ.get(READONLY_TOKEN_ENV) or None) if external else None,
            seed=option("--retry-contract-seed"),
            max_examples=option("--retry-contract-max-examples"),
            explore=option("--retry-contract-explore"),
            strict=option("--retry-contract-strict"),
            secrets=registry,
        )
    except (CredentialsError, CouldNotRun) as error:
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
    from retry_contract.reports.reproduction import curl

    details = "\n".join(
        f"- {failure.message}"
        + (f"\n  reproduce: {curl(failure.exchange, result.secrets)}" if failure.exchange else "")
        for failure in outcome.failures[:5]
    )
    message = result.secrets.redact(
        f"{requirement_id} ({outcome.requirement.summary}): {len(outcome.failures)} failures\n{details}"
    )
    if outcome.failing_level is Level.SHOULD and not result.options.strict:
        warnings.warn(message, ShouldViolation, stacklevel=2)
        return
    pytest.fail(message, pytrace=False)
