"""How errors name what the user set: options and environment variables on the command line, the
action's inputs when `retry-contract run` is run by the GitHub Action (action.yml), whose users set
`token:` and `project:`, never CDF_TOKEN or --project.

The action sets CALLER_ENV; the CLI passes every error line it prints through `for_caller`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from retry_contract.run_settings import RUN_SETTINGS

# Set by action.yml to ACTION: errors name the action's inputs.
CALLER_ENV = "RETRY_CONTRACT_CALLER"
ACTION = "github-action"

# What the action's run step turns each input into (its variable for a credential, else its option),
# from the settings' declarations, as action.yml's run step is made from them.
ACTION_INPUT_OF: dict[str, str] = {
    setting.env or setting.option: setting.action.name or setting.name
    for setting in RUN_SETTINGS
    if setting.action is not None
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
