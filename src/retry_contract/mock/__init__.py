"""An embedded mock of the Cognite Data Fusion workflow API, for running the suite without CDF.

It implements the task model of `workflow-model.md` (runs, asynchronous tasks, automatic
retries, cancel, retry) behind the real endpoints, with the Cognite error envelope, bearer
tokens, sessions and gzip request bodies, so the official SDK and the suite use it like CDF.
`MockConfig(defects=...)` switches on realistic server bugs from `DEFECTS`, to check that the
suite catches them.

    >>> from retry_contract.mock import EmbeddedMock, MockConfig
    >>> with EmbeddedMock(MockConfig.with_tokens("my-project", "w-token", "r-token")) as mock:
    ...     ...  # point a client at mock.base_url, project "my-project", token "w-token"
"""

from __future__ import annotations

from retry_contract.mock.app import create_app
from retry_contract.mock.config import (
    DEFAULT_NONCE_TTL_SECONDS,
    DEFAULT_PROJECT,
    DEFAULT_READONLY_TOKEN,
    DEFAULT_WRITE_TOKEN,
    MockConfig,
    TokenGrant,
    epoch_millis,
)
from retry_contract.mock.defects import CATALOGUE as DEFECTS
from retry_contract.mock.defects import Defect
from retry_contract.mock.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    MockError,
    NotFound,
    Unauthorized,
)
from retry_contract.mock.server import EmbeddedMock, serve_forever
from retry_contract.mock.store import MockStore

__all__ = [
    "DEFAULT_NONCE_TTL_SECONDS",
    "DEFAULT_PROJECT",
    "DEFAULT_READONLY_TOKEN",
    "DEFAULT_WRITE_TOKEN",
    "DEFECTS",
    "Conflict",
    "Defect",
    "EmbeddedMock",
    "Forbidden",
    "InvalidRequest",
    "MockConfig",
    "MockError",
    "MockStore",
    "NotFound",
    "TokenGrant",
    "Unauthorized",
    "create_app",
    "epoch_millis",
    "serve_forever",
]
