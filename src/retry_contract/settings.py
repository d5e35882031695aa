"""`retry-contract.toml`: the settings of a run, everything but secrets.

    base-url = "https://api.cognitedata.com"
    project = "myproj"
    function-external-id = "my-async-function"
    max-requests = 2000
    rate = 20
    explore = 50             # generated operation sequences (nightly); the default run explores a few
    [credentials]            # client credentials without the secret (CDF_CLIENT_SECRET stays in the env)
    client-id = "..."
    token-url = "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"
    scopes = ["https://api.cognitedata.com/.default"]

Command-line flags override the file; the environment overrides its credentials section.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from retry_contract.credentials import CLIENT_ID_ENV, SCOPES_ENV, TOKEN_URL_ENV

DEFAULT_FILENAME = "retry-contract.toml"
RUN_KEYS = frozenset(
    {
        "base-url",
        "app",
        "project",
        "report-dir",
        "seed",
        "max-examples",
        "strict",
        "function-external-id",
        "timeout",
        "max-response-mib",
        "max-requests",
        "rate",
        "no-fuzz",
        "explore",
        "fail-fast",
        "format",
        "quiet",
        "require-all-must",
        "concurrency",
        "max-duration",
        "cleanup-timeout",
    }
)
CREDENTIAL_KEYS = {"client-id": CLIENT_ID_ENV, "token-url": TOKEN_URL_ENV, "scopes": SCOPES_ENV}
SECRET_KEYS = frozenset({"token", "client-secret", "readonly-token", "secret", "password"})


class SettingsError(Exception):
    pass


def load(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(defaults for `run` keyed by parameter name, environment defaults for the credentials)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from None
    credentials = data.pop("credentials", {})
    if not isinstance(credentials, dict):
        raise SettingsError(f"{path}: [credentials] must be a table")
    secrets = sorted((SECRET_KEYS & set(data)) | (SECRET_KEYS & set(credentials)))
    if secrets:
        raise SettingsError(
            f"{path} holds {', '.join(secrets)}: secrets belong in the environment "
            "(CDF_TOKEN, CDF_READONLY_TOKEN, CDF_CLIENT_SECRET), never in a file"
        )
    unknown = sorted((set(data) - RUN_KEYS) | (set(credentials) - set(CREDENTIAL_KEYS)))
    if unknown:
        raise SettingsError(f"{path}: unknown settings {', '.join(unknown)}")
    environment = {
        CREDENTIAL_KEYS[key]: " ".join(value) if isinstance(value, list) else str(value)
        for key, value in credentials.items()
    }
    return {key.replace("-", "_"): value for key, value in data.items()}, environment
