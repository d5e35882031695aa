"""The click options of the run settings, made from their declarations (`run_settings`), and the
checks the command line makes of some of them before anything else runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from retry_contract import settings
from retry_contract.caller_names import for_caller
from retry_contract.credentials import CLIENT_ID_ENV, CLIENT_SECRET_ENV, TOKEN_ENV, has_userinfo
from retry_contract.run_settings import BY_NAME, COMMAND_LINE, SETTINGS_FILENAME, Setting
from retry_contract.verdict import ExitCode

F = TypeVar("F", bound=Callable[..., Any])
# Where the settings file's credentials go until the command reads its environment.
SETTINGS_ENVIRONMENT = "settings_environment"


def _base_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if has_userinfo(value):
        # Said without the value: it holds a password, and httpx would send it as Basic auth in place
        # of the bearer token. One line, like every refusal of the credentials.
        click.echo(
            for_caller(
                "retry-contract: --base-url must not carry credentials (user:password@host); give the "
                f"token in {TOKEN_ENV}, or the client credentials in {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}"
            ),
            err=True,
        )
        ctx.exit(ExitCode.COULD_NOT_RUN)
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        valid = False
    if not valid:
        raise click.BadParameter(f"{value!r} is not an http(s) URL, e.g. https://api.cognitedata.com")
    return value


def _project(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A CDF project URL name, checked before anything else is done, let alone sent."""
    from retry_contract import contract

    if value is None:
        return None
    try:
        return contract.check_project_name(value)
    except contract.InvalidProjectName as error:
        click.echo(for_caller(f"retry-contract: --project: {error}"), err=True)
        ctx.exit(ExitCode.COULD_NOT_RUN)


def _settings_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Load the settings file before the other options, as their defaults."""
    path = value or (Path(SETTINGS_FILENAME) if Path(SETTINGS_FILENAME).is_file() else None)
    if path is not None:
        try:
            defaults, environment = settings.load(path)
        except settings.SettingsError as error:
            raise click.BadParameter(str(error)) from None
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
        ctx.meta[SETTINGS_ENVIRONMENT] = environment
    return path


# What the command line does with some settings beyond taking their value.
_COMMAND_LINE_CHECKS: dict[str, dict[str, Any]] = {
    "base-url": {"callback": _base_url},
    "project": {"callback": _project},
    # Read first, since it gives the other options their defaults; the file's path is no parameter.
    "config": {"callback": _settings_file, "is_eager": True, "expose_value": False},
}


def setting_option(name: str, **overrides: Any) -> Callable[[F], F]:
    """The click option of the run setting `name`; `overrides` for a command that reads it its own
    way (`replay --project` defaults to the report's)."""
    setting = BY_NAME[name]
    return click.option(*_names(setting), **{**_option_arguments(setting), **overrides})


def command_line_settings(command: F) -> F:
    """Every run setting of the command line as an option of `command`, in declaration order."""
    for setting in reversed(COMMAND_LINE):
        command = setting_option(setting.name)(command)
    return command


def _names(setting: Setting) -> list[str]:
    return [*([setting.short] if setting.short else []), setting.option, setting.python_name]


def _option_arguments(setting: Setting) -> dict[str, Any]:
    arguments: dict[str, Any] = {"help": setting.help}
    if setting.flag:
        arguments["is_flag"] = True
    else:
        arguments.update(type=setting.param_type, default=setting.default, multiple=setting.multiple)
        if setting.metavar is not None:
            arguments["metavar"] = setting.metavar
        if setting.shown_default is not None:
            # click shows a default value as it is, a text in parentheses.
            arguments["show_default"] = setting.default_text or True
    return {**arguments, **_COMMAND_LINE_CHECKS.get(setting.name, {})}
