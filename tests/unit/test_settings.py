"""retry-contract.toml: settings but never secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from retry_contract.settings import SettingsError, load


def test_settings_become_defaults_and_credential_environment(tmp_path: Path) -> None:
    path = tmp_path / "retry-contract.toml"
    path.write_text(
        'base-url = "https://api.example.com"\nproject = "p"\nmax-requests = 100\n'
        '[credentials]\nclient-id = "cid"\ntoken-url = "https://idp/token"\nscopes = ["a", "b"]\n'
    )
    defaults, environment = load(path)
    assert defaults == {"base_url": "https://api.example.com", "project": "p", "max_requests": 100}
    assert environment == {"CDF_CLIENT_ID": "cid", "CDF_TOKEN_URL": "https://idp/token", "CDF_SCOPES": "a b"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('token = "x"', "secrets belong in the environment"),
        ('[credentials]\nclient-secret = "x"', "secrets belong in the environment"),
        ('colour = "blue"', "unknown settings colour"),
        ("project = ", "not valid TOML"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "retry-contract.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load(path)
