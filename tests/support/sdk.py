"""The official Cognite SDK's client as the self-tests build it against a mock."""

from __future__ import annotations

from cognite.client import ClientConfig, CogniteClient, global_config
from cognite.client.credentials import Token

from support.project import PROJECT


def make_client(base_url: str, token: str) -> CogniteClient:
    # Otherwise constructing a client starts a thread that asks PyPI for the latest version.
    global_config.disable_pypi_version_check = True
    return CogniteClient(
        ClientConfig(
            client_name="retry-contract-tests", project=PROJECT, credentials=Token(token), base_url=base_url
        )
    )
