"""`retry-contract.toml`: the settings of a run, everything but secrets.

    base-url = "https://api.cognitedata.com"
    project = "myproj"
    function-external-id = "my-async-function"
    max-requests = 2000
    rate = 20
    [credentials]            # client credentials without the secret (CDF_CLIENT_SECRET stays in the env)
    client-id = "..."
    token-url = "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"
    scopes = ["https://api.cognitedata.com/.default"]

Command-line flags override the file; the environment overrides its credentials section. Which keys
it takes, and which it refuses as secrets, follows from the declarations in `run_settings`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from retry_contract.errors import RetryContractError
from retry_contract.run_settings import RUN_SETTINGS, SETTINGS_FILENAME

DEFAULT_FILENAME = SETTINGS_FILENAME
# Top-level keys: the settings of a run that a file may hold, keyed by name → Python name.
RUN_KEYS = {s.name: s.python_name for s in RUN_SETTINGS if s.in_file and s.env is None}
# Keys of [credentials]: the credentials that are not secrets → their environment variable.
CREDENTIAL_KEYS = {s.name: s.env for s in RUN_SETTINGS if s.in_file and s.env is not None}
# Refused wherever they appear: the secrets, and what a secret is often called.
SECRET_KEYS = frozenset({s.name for s in RUN_SETTINGS if s.secret} | {"secret", "password"})
_SECRET_VARIABLES = ", ".join(s.env for s in RUN_SETTINGS if s.secret and s.env is not None)


class SettingsError(RetryContractError):
    """The settings file cannot be read, or holds what it must not."""


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
            f"({_SECRET_VARIABLES}), never in a file"
        )
    unknown = sorted((set(data) - set(RUN_KEYS)) | (set(credentials) - set(CREDENTIAL_KEYS)))
    if unknown:
        raise SettingsError(f"{path}: unknown settings {', '.join(unknown)}")
    environment = {
        str(CREDENTIAL_KEYS[key]): " ".join(value) if isinstance(value, list) else str(value)
        for key, value in credentials.items()
    }
    return {RUN_KEYS[key]: value for key, value in data.items()}, environment
