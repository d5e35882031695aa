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
# Longer URLs and bodies (the oversized-value probes) are cut in reports; the origin says what they held.
MAX_SHOWN_CHARACTERS = 2048


def abbreviated(text: str, limit: int = MAX_SHOWN_CHARACTERS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} characters in all)"


def curl(exchange: Exchange, secrets: SecretRegistry) -> str:
    parts = ["curl", "-i", "-X", exchange.method, _quote(abbreviated(exchange.url))]
    for name, value in exchange.request_headers.items():
        if name.lower() in _SKIPPED_HEADERS:
            continue
        if name.lower() == "authorization" and value.lower().startswith("bearer ") and len(value) > 7:
            value = f"Bearer {TOKEN_PLACEHOLDER}"
        parts += ["-H", _quote(f"{name}: {value}")]
    if exchange.request_body is None:
        return secrets.redact(" ".join(parts))
    body = abbreviated(_body_text(exchange))
    if not exchange.request_gzipped:
        return secrets.redact(" ".join([*parts, "--data-binary", _quote(body)]))
    # The body went out gzipped: compress it the same way on the reader's side.
    command = f"printf '%s' {_quote(body)} | gzip -c | {' '.join([*parts, '--data-binary', '@-'])}"
    return secrets.redact(command)


def _body_text(exchange: Exchange) -> str:
    body = exchange.request_json()
    if isinstance(body, dict) and isinstance(body.get("authentication"), dict):
        nonce = body["authentication"].get("nonce")
        if isinstance(nonce, str) and nonce:
            body = {**body, "authentication": {**body["authentication"], "nonce": NONCE_PLACEHOLDER}}
            return json.dumps(body)
    content = exchange.request_content()
    return content.decode("utf-8", "replace") if content else ""


def _quote(text: str) -> str:
    # Double quotes keep $CDF_TOKEN/$NONCE expandable; everything else is escaped for the shell.
    if TOKEN_PLACEHOLDER in text or NONCE_PLACEHOLDER in text:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
        escaped = escaped.replace("$", "\\$").replace(f"\\{TOKEN_PLACEHOLDER}", TOKEN_PLACEHOLDER)
        return '"' + escaped.replace(f"\\{NONCE_PLACEHOLDER}", NONCE_PLACEHOLDER) + '"'
    return shlex.quote(text)
