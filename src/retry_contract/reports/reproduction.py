"""A failing exchange as a curl command anyone can paste, with every secret replaced."""

from __future__ import annotations

import json
import shlex

from retry_contract.exchange import Exchange
from retry_contract.secrets_registry import SecretRegistry

# Shown instead of the real values: the reader supplies their own token and a fresh nonce.
TOKEN_PLACEHOLDER = "$CDF_TOKEN"
NONCE_PLACEHOLDER = "$NONCE"
_SKIPPED_HEADERS = frozenset(
    {"content-length", "host", "user-agent", "accept-encoding", "connection", "accept"}
)


def curl(exchange: Exchange, secrets: SecretRegistry) -> str:
    parts = ["curl", "-i", "-X", exchange.method, _quote(exchange.url)]
    for name, value in exchange.request_headers.items():
        if name.lower() in _SKIPPED_HEADERS:
            continue
        if name.lower() == "authorization" and value.lower().startswith("bearer ") and len(value) > 7:
            value = f"Bearer {TOKEN_PLACEHOLDER}"
        parts += ["-H", _quote(f"{name}: {value}")]
    if exchange.request_body is not None:
        parts += ["--data-binary", _quote(_body_text(exchange))]
    return secrets.redact(" ".join(parts))


def _body_text(exchange: Exchange) -> str:
    body = exchange.request_json()
    if isinstance(body, dict) and isinstance(body.get("authentication"), dict):
        nonce = body["authentication"].get("nonce")
        if isinstance(nonce, str) and nonce:
            body = {**body, "authentication": {**body["authentication"], "nonce": NONCE_PLACEHOLDER}}
            return json.dumps(body)
    return exchange.request_body.decode("utf-8", "replace") if exchange.request_body else ""


def _quote(text: str) -> str:
    # Double quotes keep $CDF_TOKEN/$NONCE expandable; everything else is escaped for the shell.
    if TOKEN_PLACEHOLDER in text or NONCE_PLACEHOLDER in text:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
        escaped = escaped.replace("$", "\\$").replace(f"\\{TOKEN_PLACEHOLDER}", TOKEN_PLACEHOLDER)
        return '"' + escaped.replace(f"\\{NONCE_PLACEHOLDER}", NONCE_PLACEHOLDER) + '"'
    return shlex.quote(text)
