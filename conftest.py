"""Command-line options of the self-tests, registered at the repository's root so that they exist
whichever tests pytest is given; the fixtures are in tests/conftest.py.

`--target-url`/`--target-project` point the live-target tests at another server (credentials from
CDF_TOKEN / CDF_READONLY_TOKEN); without them those tests use the embedded mock.
"""

from __future__ import annotations

import pytest

# pytester runs the pytest plugins in fresh pytest projects (tests/e2e/test_pytest_plugin.py); a plugin
# list is honoured only in the root conftest.
pytest_plugins = ["pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("retry-contract")
    group.addoption(
        "--target-url", default=None, help="Server for the live-target tests (default: embedded mock)"
    )
    group.addoption("--target-project", default=None, help="Project on --target-url")
