"""Credentials as CDF users have them: a bearer token, or OAuth2 client credentials.

Client credentials are exchanged once for a token (authlib), which is refreshed shortly before it
expires, so long runs keep working. Every secret is registered for redaction as soon as it is known.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from retry_contract.errors import RetryContractError
from retry_contract.secrets_registry import SecretRegistry

if TYPE_CHECKING:
    import httpx2

TOKEN_ENV = "CDF_TOKEN"
READONLY_TOKEN_ENV = "CDF_READONLY_TOKEN"
CLIENT_ID_ENV = "CDF_CLIENT_ID"
CLIENT_SECRET_ENV = "CDF_CLIENT_SECRET"
TOKEN_URL_ENV = "CDF_TOKEN_URL"
SCOPES_ENV = "CDF_SCOPES"
# Refresh this many seconds before the token expires: a request in flight must not carry a dead token.
REFRESH_MARGIN_SECONDS = 60
# How much of what an identity provider said goes into an error message (redacted, on one line).
_QUOTED_CHARACTERS = 120
# The authority of a URL: after "scheme://" up to the path, or, without "//", up to the first "/".
_AUTHORITY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//(?P<authority>[^/?#]*)")


class CredentialsError(RetryContractError):
    """The credentials are incomplete, or the identity provider refused or could not be reached."""


class Credentials(Protocol):
    def bearer(self) -> str:
        """A currently valid access token."""
        ...

    def session_request(self) -> dict[str, Any]:
        """The item of `POST /sessions` that creates a session for these credentials."""
        ...


def has_userinfo(url: str) -> bool:
    """Whether `url` carries credentials (user:password@) before its host: refused everywhere, since
    they would be printed wherever the URL is, and httpx sends them as Basic auth."""
    match = _AUTHORITY.match(url)
    authority = match.group("authority") if match else url.split("/", 1)[0]
    return "@" in authority


@dataclass(frozen=True)
class StaticToken:
    # Out of the repr: a dataclass shows its fields wherever it is printed (a warning, a traceback).
    token: str = field(repr=False)

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
        # Imported only here: every command imports this module, few use client credentials (a tenth of
        # a second of the start-up of each).
        from authlib.integrations.httpx_client import OAuth2Client

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

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, token_url={self._token_url!r})"

    def bearer(self) -> str:
        with self._lock:
            token = self._oauth.token
            if not token or token.is_expired(leeway=REFRESH_MARGIN_SECONDS) is not False:
                token = self._fetch()
            access_token: str = token["access_token"]
        return access_token

    def _fetch(self) -> Any:
        import httpx2
        from authlib.common.errors import AuthlibBaseError
        from authlib.integrations.base_client.errors import OAuthError

        where = f"the token endpoint {self._token_url}"
        try:
            token = self._oauth.fetch_token(self._token_url, grant_type="client_credentials")
        except OAuthError as error:
            raise CredentialsError(
                f"the identity provider at {self._token_url} refused the client credentials "
                f"({self._quoted(error.error)})"
            ) from None
        except httpx2.HTTPStatusError as error:
            # authlib raises it for a 5xx, or for an answer that is not a JSON object.
            raise CredentialsError(f"{where} answered {error.response.status_code} without a token") from None
        except httpx2.HTTPError as error:
            # authlib speaks httpx2 (a declared dependency: without it authlib falls back to httpx and
            # warns on every import), so its network errors are httpx2's, not httpx's. Their message
            # can quote the server (a malformed header line): redacted, cut, on one line.
            raise CredentialsError(f"cannot reach {where}: {self._quoted(error)}") from None
        except httpx2.InvalidURL:
            raise CredentialsError(f"{TOKEN_URL_ENV} is not a URL the client can use") from None
        except (AuthlibBaseError, ValueError, TypeError, KeyError, AttributeError):
            # What authlib raises for an answer that is not a token: not a JSON object, or with an
            # expiry that is no number. Its message may hold the answer: not shown.
            raise CredentialsError(f"{where} answered something that is not an OAuth2 token") from None
        access_token = token.get("access_token") if isinstance(token, dict) else None
        if not isinstance(access_token, str) or not access_token:
            raise CredentialsError(f"{where} answered without an access_token string")
        self._registry.add(access_token)
        self.fetches += 1
        return token

    def _quoted(self, said: object) -> str:
        """What the identity provider said, fit for a one-line message: redacted, cut, one line."""
        text = " ".join(str(said).split())
        return self._registry.cut(text, _QUOTED_CHARACTERS) + (
            "..." if len(text) > _QUOTED_CHARACTERS else ""
        )

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
    if has_userinfo(env[TOKEN_URL_ENV]):
        # Not repeated: the URL holds a password.
        raise CredentialsError(f"{TOKEN_URL_ENV} must not carry credentials (user:password@host)")
    scopes = [s for s in re.split(r"[\s,]+", env.get(SCOPES_ENV, "")) if s]
    return ClientCredentials(
        env[CLIENT_ID_ENV], env[CLIENT_SECRET_ENV], env[TOKEN_URL_ENV], scopes, registry, timeout=timeout
    )


@dataclass(frozen=True)
class TargetCredentials:
    """What a real target is sent: the main credentials (None: none given, which preflight refuses) and
    the optional read-only token. The embedded mock brings its own and is given neither."""

    main: Credentials | None = None
    # Out of the repr, as every secret.
    readonly_token: str | None = field(default=None, repr=False)


def for_target(
    env: Mapping[str, str], registry: SecretRegistry, *, external: bool, timeout: float = 30.0
) -> TargetCredentials:
    """The credentials of a run or a replay: from `env` for a real target (`external`), none for the
    embedded mock. Every secret is registered in `registry` before anything else is done with it."""
    if not external:
        return TargetCredentials()
    readonly_token = env.get(READONLY_TOKEN_ENV) or None
    registry.add(readonly_token)
    return TargetCredentials(from_environment(env, registry, timeout=timeout), readonly_token)
