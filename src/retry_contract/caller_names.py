"""How errors name what the user set: options and environment variables on the command line, the
action's inputs when `retry-contract run` is run by the GitHub Action (action.yml), whose users set
`token:` and `project:`, never CDF_TOKEN or --project.

The action sets CALLER_ENV; the CLI passes every error line it prints through `for_caller`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from retry_contract.credentials import (
    CLIENT_ID_ENV,
    CLIENT_SECRET_ENV,
    READONLY_TOKEN_ENV,
    SCOPES_ENV,
    TOKEN_ENV,
    TOKEN_URL_ENV,
)

# Set by action.yml to ACTION: errors name the action's inputs.
CALLER_ENV = "RETRY_CONTRACT_CALLER"
ACTION = "github-action"

# What the action's run step turns each input into (action.yml, step `run`); a self-test checks that
# every input named here is one action.yml declares.
ACTION_INPUT_OF: dict[str, str] = {
    TOKEN_ENV: "token",
    CLIENT_ID_ENV: "client-id",
    CLIENT_SECRET_ENV: "client-secret",
    TOKEN_URL_ENV: "token-url",
    SCOPES_ENV: "scopes",
    READONLY_TOKEN_ENV: "readonly-token",
    "--base-url": "base-url",
    "--project": "project",
    "--function-external-id": "function-external-id",
    "--max-requests": "max-requests",
    "--rate": "rate",
    "--require-all-must": "require-all-must",
    "--strict": "strict",
    "--report-dir": "report-dir",
    "--format": "formats",
    "--baseline": "baseline",
}
# An environment variable or an option as a whole word (CDF_TOKEN, not the start of CDF_TOKEN_URL),
# also quoted as click quotes it ('--project').
_NAME = re.compile(r"(?<![\w-])'?(CDF_[A-Z_]+|--[a-z][a-z-]*)'?(?![\w-])")


def for_caller(text: str, environ: Mapping[str, str] = os.environ) -> str:
    """`text` with the options and variables it names put as the caller set them."""
    if environ.get(CALLER_ENV) != ACTION:
        return text

    def named(match: re.Match[str]) -> str:
        name = ACTION_INPUT_OF.get(match[1])
        return match[0] if name is None else f"input `{name}`"

    return _NAME.sub(named, text)
