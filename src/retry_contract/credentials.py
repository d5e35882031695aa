"""Credentials as CDF users have them: a bearer token, or OAuth2 client credentials.

Client credentials are exchanged once for a token (authlib), which is refreshed shortly before it
expires, so long runs keep working. Every secret is registered for redaction as soon as it is known.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from retry_contract.secrets_registry import SecretRegistry

TOKEN_ENV = "CDF_TOKEN"
READONLY_TOKEN_ENV = "CDF_READONLY_TOKEN"
CLIENT_ID_ENV = "CDF_CLIENT_ID"
CLIENT_SECRET_ENV = "CDF_CLIENT_SECRET"
TOKEN_URL_ENV = "CDF_TOKEN_URL"
SCOPES_ENV = "CDF_SCOPES"
# Refresh this many seconds before the token expires: a request in flight must not carry a dead token.
REFRESH_MARGIN_SECONDS = 60


class CredentialsError(Exception):
    """The credentials are incomplete, or the identity provider refused or could not be reached."""


class Credentials(Protocol):
    def bearer(self) -> str:
        """A currently valid access token."""
        ...

    def session_request(self) -> dict[str, Any]:
        """The item of `POST /sessions` that creates a session for these credentials."""
        ...


@dataclass(frozen=True)
class StaticToken:
    token: str

    def bearer(self) -> str:
        return self.token

    def session_request(self) -> dict[str, Any]:
        return {"tokenExchange": True}


class ClientCredentials:
    def __init__(
        self,
        client_id: str,
        client_secret: str,
        token_url: str,
        scopes: list[str],
        registry: SecretRegistry,
        *,
        timeout: float = 30.0,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        registry.add(client_secret)
        self.client_id = client_id
        self._client_secret = client_secret
        self._token_url = token_url
        self._registry = registry
        self._lock = threading.Lock()
        self._oauth = OAuth2Client(
            client_id, client_secret, scope=" ".join(scopes) or None, timeout=timeout, transport=transport
        )
        self.fetches = 0

    def bearer(self) -> str:
        with self._lock:
            token = self._oauth.token
            if not token or token.is_expired(leeway=REFRESH_MARGIN_SECONDS) is not False:
                token = self._fetch()
            access_token = str(token["access_token"])
        return access_token

    def _fetch(self) -> Any:
        try:
            token = self._oauth.fetch_token(self._token_url, grant_type="client_credentials")
        except OAuthError as error:
            raise CredentialsError(
                f"the identity provider at {self._token_url} refused the client credentials ({error.error})"
            ) from None
        except httpx2.HTTPError as error:
            # authlib speaks httpx2 (a declared dependency: without it authlib falls back to httpx and
            # warns on every import), so its network errors are httpx2's, not httpx's.
            raise CredentialsError(f"cannot reach the token endpoint {self._token_url}: {error}") from None
        if "access_token" not in token:
            raise CredentialsError(f"the token endpoint {self._token_url} answered without an access_token")
        self._registry.add(str(token["access_token"]))
        self.fetches += 1
        return token

    def session_request(self) -> dict[str, Any]:
        return {"clientId": self.client_id, "clientSecret": self._client_secret}


def from_environment(
    env: Mapping[str, str], registry: SecretRegistry, *, timeout: float = 30.0
) -> Credentials | None:
    """CDF_TOKEN, else client credentials; None when neither is set."""
    if token := env.get(TOKEN_ENV):
        registry.add(token)
        return StaticToken(token)
    names = (CLIENT_ID_ENV, CLIENT_SECRET_ENV, TOKEN_URL_ENV)
    given = [name for name in names if env.get(name)]
    if not given:
        return None
    if len(given) < len(names):
        missing = ", ".join(name for name in names if name not in given)
        raise CredentialsError(f"client credentials need {', '.join(names)}; missing {missing}")
    scopes = [s for s in re.split(r"[\s,]+", env.get(SCOPES_ENV, "")) if s]
    return ClientCredentials(
        env[CLIENT_ID_ENV], env[CLIENT_SECRET_ENV], env[TOKEN_URL_ENV], scopes, registry, timeout=timeout
    )
