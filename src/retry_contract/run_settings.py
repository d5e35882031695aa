"""Every setting of a run, declared once: its name, type, default, help, whether it is a secret, and
its environment variable if it has one.

Everything else is derived from `RUN_SETTINGS`: the options of `retry-contract run` (`cli/options.py`),
the keys of `retry-contract.toml` (`settings.py`), the options of the pytest plugin (`--retry-contract-
NAME`), how `runner.RunOptions` is filled from them, the inputs of `action.yml` and the tables of the
README (`scripts/settings_tables.py`, kept equal by `tests/unit/test_settings_tables.py`). A new setting is
one more `Setting` here (and, when it changes what a run does, its `RunOptions` field).

This module is plumbing: it imports no judge, no driver and no runner, so the CLI's `--help` stays fast
and the runner can take its defaults from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB
from retry_contract.credentials import (
    CLIENT_ID_ENV,
    CLIENT_SECRET_ENV,
    READONLY_TOKEN_ENV,
    SCOPES_ENV,
    TOKEN_ENV,
    TOKEN_URL_ENV,
)

if TYPE_CHECKING:
    from retry_contract.baseline import Baseline

DEFAULT_SEED = 20230101
DEFAULT_MAX_EXAMPLES = 40
# Generated operation sequences a default run explores (`exploration`): a taste within the run's speed
# goal; nightly jobs ask for more.
DEFAULT_EXPLORE = 4
# ... and each run of the kill matrix (`mutants`): deeper, as a nightly job, since some defects show only
# in a sequence (a retry after a cancel of an execution retried before).
MATRIX_EXPLORE = 15
# Worker threads: scenarios and fuzzing run this many at a time (cleanup too), each with at most one
# request in flight but for a few bounded helpers (the concurrency race, the fuzzer's pool).
DEFAULT_CONCURRENCY = 8
# The project of the embedded mock, when none is given.
MOCK_PROJECT = "contract-test"
# The function the provisioned async tasks call; on a real project, one that exists must be named.
DEFAULT_FUNCTION_EXTERNAL_ID = "retry-contract-async-noop"
# Total seconds per request: connecting, sending and reading the whole answer.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 30.0
# Cleanup gets this long (RunOptions.cleanup_timeout) before it is abandoned and what it may have left
# is listed: enough for a few hundred cancels and one delete on a slow server, short enough for CI.
DEFAULT_CLEANUP_TIMEOUT_SECONDS = 60.0
DEFAULT_MOCK_PROFILE = "classic"
SETTINGS_FILENAME = "retry-contract.toml"


def _report_formats() -> Sequence[str]:
    # Only the registry's names (reports/__init__ imports no reporter): read when the option is built.
    from retry_contract.reports import FORMATS

    return FORMATS


@dataclass(frozen=True)
class ActionInput:
    """How a setting is an input of `action.yml`, whose defaults suit CI (bounded, strict about MUSTs)."""

    default: str = ""
    required: bool = False
    # The input's name when it is not the setting's (kept for callers of older versions of the action).
    name: str | None = None
    # What the input means when the setting's help speaks of the command line only.
    help: str | None = None


@dataclass(frozen=True)
class Setting:
    # The option `--NAME`, the key in retry-contract.toml, the action's input, `--retry-contract-NAME`.
    name: str
    # One sentence or two, without the default: that is shown from `default` / `default_text`.
    help: str
    # A click type (its ranges are checked everywhere the setting is read); None for text and flags.
    type: click.ParamType[Any] | None = None
    default: Any = None
    # How the default reads when `default` is None (e.g. "no bound"); None: no default shown.
    default_text: str | None = None
    flag: bool = False
    multiple: bool = False
    metavar: str | None = None
    short: str | None = None
    # The Python name of the value (a parameter of `run`) when it is not NAME in snake case.
    dest: str | None = None
    # The `runner.RunOptions` field it sets, and how its value becomes that field's; None: no field.
    field: str | None = None
    to_field: Callable[[Any], Any] | None = None
    # Read from the environment only, never from a flag or a file when a secret.
    env: str | None = None
    secret: bool = False
    # A key of retry-contract.toml (a credential's: of its [credentials] table).
    in_file: bool = False
    # An option of `retry-contract run` (a credential is not: it comes from the environment).
    on_command_line: bool = True
    # Valid values computed when asked (the report formats' registry).
    choices: Callable[[], Sequence[str]] | None = None
    action: ActionInput | None = None

    @property
    def option(self) -> str:
        return f"--{self.name}"

    @property
    def python_name(self) -> str:
        return self.dest or self.name.replace("-", "_")

    @property
    def param_type(self) -> click.ParamType[Any] | None:
        return click.Choice(list(self.choices())) if self.choices is not None else self.type

    @property
    def shown_default(self) -> str | None:
        """The default as help texts and tables say it; None when there is none worth saying."""
        if self.default_text is not None:
            return self.default_text
        if self.flag or self.default is None:
            return None
        return str(self.default)

    def field_value(self, value: Any) -> Any:
        return self.to_field(value) if self.to_field is not None else value


def _frozen(values: Sequence[str]) -> frozenset[str]:
    return frozenset(values)


def _project_or_mock(value: str | None) -> str:
    return value or MOCK_PROJECT


def _fuzz(no_fuzz: bool) -> bool:
    return not no_fuzz


def _known_failures(path: Path | None) -> Baseline | None:
    """The baseline file read (imported only then: reading one needs the catalogue and the spec)."""
    if path is None:
        return None
    from retry_contract import baseline

    try:
        return baseline.load(path)
    except baseline.BaselineError as error:
        raise baseline.BaselineError(f"--baseline: {error}") from None


_CLIENT_CREDENTIALS = "OAuth2 client credentials, instead of a token: "

RUN_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "config",
        f"Settings file (default: ./{SETTINGS_FILENAME} if present); no secrets in it.",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
    ),
    Setting(
        "base-url",
        "Server to test, e.g. https://api.cognitedata.com. Without it: the embedded mock.",
        metavar="URL",
        field="base_url",
        in_file=True,
        action=ActionInput(required=True, help="Server to test, e.g. https://api.cognitedata.com."),
    ),
    Setting(
        "app",
        "An ASGI or WSGI app to test in-process (e.g. mypkg.mock:app), instead of --base-url.",
        metavar="MODULE:ATTR",
        field="app",
        in_file=True,
    ),
    Setting(
        "project",
        "CDF project (URL name). Required with --base-url and --app.",
        metavar="NAME",
        default_text=f"{MOCK_PROJECT} with the embedded mock",
        field="project",
        to_field=_project_or_mock,
        in_file=True,
        action=ActionInput(required=True, help="The CDF project (URL name)."),
    ),
    Setting(
        "report-dir",
        "Where the reports go.",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("reports"),
        metavar="DIR",
        in_file=True,
        action=ActionInput(default="retry-contract-reports"),
    ),
    Setting(
        "seed",
        "Seed of the generated cases (fixed: runs are reproducible).",
        type=click.INT,
        default=DEFAULT_SEED,
        metavar="N",
        field="seed",
        in_file=True,
    ),
    Setting(
        "max-examples",
        "Cases per fuzzing phase.",
        type=click.IntRange(1, 10_000),
        default=DEFAULT_MAX_EXAMPLES,
        metavar="N",
        field="max_examples",
        in_file=True,
    ),
    Setting(
        "strict",
        "Fail the run on SHOULD violations too.",
        flag=True,
        field="strict",
        in_file=True,
        action=ActionInput(default="false"),
    ),
    Setting(
        "function-external-id",
        "Function the provisioned async tasks call (on a real project: an existing function).",
        default=DEFAULT_FUNCTION_EXTERNAL_ID,
        metavar="XID",
        field="function_external_id",
        in_file=True,
        action=ActionInput(),
    ),
    Setting(
        "timeout",
        "Total seconds per request: connecting, sending, and the whole answer (a slower one is a fault, "
        "never a violation).",
        type=click.FloatRange(0.1, 600),
        default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
        metavar="SECONDS",
        field="request_timeout",
        in_file=True,
    ),
    Setting(
        "max-response-mib",
        "Read at most this many MiB of an answer (as sent and as decoded); a larger one is a finding.",
        type=click.IntRange(1, 1024),
        default=DEFAULT_MAX_RESPONSE_MIB,
        metavar="N",
        field="max_response_mib",
        in_file=True,
    ),
    Setting(
        "no-fuzz", "Run only the scenario checks.", flag=True, field="fuzz", to_field=_fuzz, in_file=True
    ),
    Setting(
        "explore",
        "Generated operation sequences around the retry to run (task graphs, task outcomes, cancels and "
        "retries); more for nightly jobs, 0 for none.",
        type=click.IntRange(0, 100_000),
        default=DEFAULT_EXPLORE,
        metavar="N",
        field="explore",
        in_file=True,
    ),
    Setting("fail-fast", "Stop at the first MUST failure.", flag=True, field="fail_fast", in_file=True),
    Setting(
        "retry-execution",
        "Also retry this execution, which the suite did not create (once; judged). Repeatable.",
        multiple=True,
        metavar="ID",
        dest="named_executions",
        field="named_executions",
    ),
    Setting(
        "max-requests",
        "Send at most this many requests (cleanup exempt).",
        type=click.IntRange(1),
        default_text="no bound",
        metavar="N",
        field="max_requests",
        in_file=True,
        action=ActionInput(default="2000"),
    ),
    Setting(
        "rate",
        "Send at most this many requests per second.",
        type=click.FloatRange(0.01),
        default_text="no bound",
        metavar="R",
        field="rate",
        in_file=True,
        action=ActionInput(default="10"),
    ),
    Setting(
        "dry-run", "Print what the run would create and send, and send nothing to the target.", flag=True
    ),
    Setting(
        "require-all-must",
        "Exit 2 (inconclusive) unless every MUST requirement was judged, e.g. under --max-requests.",
        flag=True,
        field="require_all_must",
        in_file=True,
        action=ActionInput(default="true"),
    ),
    Setting(
        "mock-defect",
        "Switch on a defect in the embedded mock (see `retry-contract defects`). Repeatable.",
        multiple=True,
        metavar="NAME",
        dest="mock_defects",
        field="mock_defects",
        to_field=_frozen,
    ),
    Setting(
        "concurrency",
        "Requests in flight at once over kept-alive connections; 1 runs everything in turn. The verdict "
        "and the reports are the same either way.",
        type=click.IntRange(1, 64),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        field="concurrency",
        in_file=True,
    ),
    Setting(
        "mock-profile",
        "Faithful shape of the embedded mock: classic, recorded (shaped like a real CDF recording) or "
        "proxied (classic behind a front-end proxy that answers 413/414/431 with HTML pages).",
        default=DEFAULT_MOCK_PROFILE,
        metavar="NAME",
        field="mock_profile",
    ),
    Setting(
        "format",
        "A report to write (repeatable; default: all): console (the table on the terminal), junit "
        "(retry-contract-junit.xml, for CI test views), json (retry-contract.json, for tools), html "
        "(retry-contract.html, for people), markdown (retry-contract-summary.md, for pull requests). "
        "With GITHUB_STEP_SUMMARY set, the Markdown summary is appended there whatever the choice.",
        multiple=True,
        choices=_report_formats,
        dest="formats",
        in_file=True,
        action=ActionInput(
            default="console junit json html markdown",
            name="formats",
            help="Reports to write.",
        ),
    ),
    Setting(
        "quiet",
        "Print nothing but the verdict line, and errors on stderr.",
        flag=True,
        short="-q",
        in_file=True,
    ),
    Setting("no-color", "No colours or other escape sequences (as with NO_COLOR set).", flag=True),
    Setting(
        "max-duration",
        "Stop sending after this long, clean up and report what was judged, marked incomplete.",
        type=click.FloatRange(0.1, clamp=False),
        default_text="no bound",
        metavar="SECONDS",
        field="max_duration",
        in_file=True,
    ),
    Setting(
        "cleanup-timeout",
        "Abandon cleanup after this long; the reports list the workflows it may have left.",
        type=click.FloatRange(0.1),
        default=DEFAULT_CLEANUP_TIMEOUT_SECONDS,
        metavar="SECONDS",
        field="cleanup_timeout",
        in_file=True,
    ),
    Setting(
        "baseline",
        "Known failures: a previous JSON report (retry-contract.json) or a file of accepted_failures. "
        "The exit status counts only findings not in it; the reports list new and known ones apart.",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        field="baseline",
        to_field=_known_failures,
        in_file=True,
        action=ActionInput(
            help="Known failures, relative to the workspace: a previous JSON report (retry-contract.json) "
            "or a file of accepted_failures; only findings not in it fail the step."
        ),
    ),
    # The credentials: from the environment only (the file may hold those that are not secrets).
    Setting(
        "token",
        "A bearer token with workflowOrchestrationACL:READ+WRITE and sessionsACL:CREATE.",
        env=TOKEN_ENV,
        secret=True,
        on_command_line=False,
        action=ActionInput(),
    ),
    Setting(
        "readonly-token",
        "Optional: a valid token without workflowOrchestrationACL:WRITE; without it AUTH-403 is judged "
        "only in part.",
        env=READONLY_TOKEN_ENV,
        secret=True,
        on_command_line=False,
        action=ActionInput(),
    ),
    Setting(
        "client-id",
        _CLIENT_CREDENTIALS + "the client id.",
        env=CLIENT_ID_ENV,
        in_file=True,
        on_command_line=False,
        action=ActionInput(),
    ),
    Setting(
        "client-secret",
        _CLIENT_CREDENTIALS + "the client secret.",
        env=CLIENT_SECRET_ENV,
        secret=True,
        on_command_line=False,
        action=ActionInput(),
    ),
    Setting(
        "token-url",
        _CLIENT_CREDENTIALS + "the identity provider's token endpoint.",
        env=TOKEN_URL_ENV,
        in_file=True,
        on_command_line=False,
        action=ActionInput(),
    ),
    Setting(
        "scopes",
        _CLIENT_CREDENTIALS + "the scopes, space- or comma-separated (a list in the file).",
        env=SCOPES_ENV,
        in_file=True,
        on_command_line=False,
        action=ActionInput(),
    ),
)
BY_NAME: Mapping[str, Setting] = {setting.name: setting for setting in RUN_SETTINGS}
# What `retry-contract run` takes as options, in the order its help lists them.
COMMAND_LINE = tuple(setting for setting in RUN_SETTINGS if setting.on_command_line)
# What the runner is told (the pytest plugin takes these as its options).
RUN_OPTION_SETTINGS = tuple(setting for setting in RUN_SETTINGS if setting.field is not None)
CREDENTIALS = tuple(setting for setting in RUN_SETTINGS if setting.env is not None)
SECRETS = tuple(setting for setting in RUN_SETTINGS if setting.secret)


def run_option_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `RunOptions` fields of the settings in `values` (keyed by Python name; missing ones keep
    the field's default)."""
    return {
        setting.field: setting.field_value(values[setting.python_name])
        for setting in RUN_OPTION_SETTINGS
        if setting.field is not None and setting.python_name in values
    }
