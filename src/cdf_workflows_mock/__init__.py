"""A stateful fake of Cognite Data Fusion's workflow API, for testing clients without CDF.

It implements the task model of CDF workflows (runs, asynchronous tasks, automatic retries, cancel,
retry) behind the real endpoints, with the Cognite error envelope, bearer tokens, sessions and gzip
request bodies, so the official SDK and test suites use it like CDF. `MockConfig(defects=...)`
switches on realistic server bugs from `DEFECTS`, to check that a test suite catches them.

    >>> from cdf_workflows_mock import EmbeddedMock, MockConfig
    >>> with EmbeddedMock(MockConfig.with_tokens("my-project", "w-token", "r-token")) as mock:
    ...     ...  # point a client at mock.base_url, project "my-project", token "w-token"

It depends on no test suite: the facts of CDF it needs are its own (`cdf`).
"""

from __future__ import annotations

from cdf_workflows_mock.chaos import ChaosConfig
from cdf_workflows_mock.config import (
    DEFAULT_NONCE_TTL_SECONDS,
    DEFAULT_PROJECT,
    DEFAULT_READONLY_TOKEN,
    DEFAULT_WRITE_TOKEN,
    MockConfig,
    Profile,
    TokenGrant,
    epoch_millis,
)
from cdf_workflows_mock.defects import CATALOGUE as DEFECTS
from cdf_workflows_mock.defects import Defect, create_app
from cdf_workflows_mock.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    MockError,
    NotFound,
    Unauthorized,
)
from cdf_workflows_mock.hosting import EmbeddedMock, serve_forever
from cdf_workflows_mock.state_file import InitialState, StateFileError, create_seeded_app, load_state_file
from cdf_workflows_mock.store import MockStore

__all__ = [
    "DEFAULT_NONCE_TTL_SECONDS",
    "DEFAULT_PROJECT",
    "DEFAULT_READONLY_TOKEN",
    "DEFAULT_WRITE_TOKEN",
    "DEFECTS",
    "ChaosConfig",
    "Conflict",
    "Defect",
    "EmbeddedMock",
    "Forbidden",
    "InitialState",
    "InvalidRequest",
    "MockConfig",
    "MockError",
    "MockStore",
    "NotFound",
    "Profile",
    "StateFileError",
    "TokenGrant",
    "Unauthorized",
    "create_app",
    "create_seeded_app",
    "epoch_millis",
    "load_state_file",
    "serve_forever",
]
