"""The pytest plugin from another repository's point of view: one test per requirement."""

from __future__ import annotations

import pytest

from retry_contract.requirements import CATALOGUE

USER_TEST = """
from retry_contract.pytest_plugin import check_requirement

def test_retry_contract(retry_contract_result, retry_contract_requirement):
    check_requirement(retry_contract_result, retry_contract_requirement)
"""


@pytest.mark.slow
def test_a_users_suite_gets_one_passing_test_per_requirement(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_contract=USER_TEST)
    result = pytester.runpytest_subprocess("--retry-contract-max-examples=5", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(CATALOGUE))


def test_the_options_are_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--retry-contract-url*", "*--retry-contract-app*"])


def test_an_unreachable_server_fails_the_tests_with_a_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDF_TOKEN", "plugin-test-token-1")
    pytester.makepyfile(test_contract=USER_TEST)
    result = pytester.runpytest_subprocess(
        "--retry-contract-url=http://127.0.0.1:9", "--retry-contract-project=p", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(errors=len(CATALOGUE))
    result.stdout.fnmatch_lines(["*retry-contract could not run: cannot reach*"])
