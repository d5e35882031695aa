"""How every command ends on an error: one line on stderr saying what went wrong, never a traceback,
and the exit status of its kind, decided here and nowhere else.

Every error the user can cause derives from `errors.RetryContractError`; a command wraps its work in
`failing(...)` with the words that start its line ("could not run", "could not replay"). Anything
else is an internal error: one line too, the traceback only with RETRY_CONTRACT_DEBUG=1.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from retry_contract import output_guard
from retry_contract.caller_names import for_caller
from retry_contract.errors import RetryContractError
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import ExitCode

DEBUG_ENV = "RETRY_CONTRACT_DEBUG"
# How the line of a command that could not do its work starts, after "retry-contract: ".
COULD_NOT_RUN = "could not run"
# The exit status of each kind of error, the most specific class first found along the error's MRO.
# Every error a user can cause so far means the command could not do its work.
EXIT_CODES: dict[type[BaseException], ExitCode] = {RetryContractError: ExitCode.COULD_NOT_RUN}


def exit_code(error: BaseException) -> ExitCode:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return ExitCode.COULD_NOT_RUN


def debugging() -> bool:
    return bool(os.environ.get(DEBUG_ENV))


def fail(what: str, message: str, code: int = ExitCode.COULD_NOT_RUN) -> NoReturn:
    """`retry-contract: WHAT: MESSAGE` on stderr, redacted by the process's registry, then exit."""
    click.echo(for_caller(f"retry-contract: {what}: {output_guard.redacted(message)}"), err=True)
    output_guard.drain()
    sys.exit(code)


@contextmanager
def failing(what: str) -> Iterator[None]:
    """Turn a `RetryContractError` raised inside into `fail(what, ...)` with its exit status."""
    try:
        yield
    except RetryContractError as error:
        fail(what, str(error), exit_code(error))


def internal_error_message(error: BaseException) -> str:
    return f"internal error ({type(error).__name__}: {error}); set {DEBUG_ENV}=1 for details"


def report_internal_error(error: BaseException, registry: SecretRegistry) -> None:
    """One line on stderr after a run that still reports (the traceback too with RETRY_CONTRACT_DEBUG=1),
    redacted either way."""
    if debugging():
        text = "".join(traceback.format_exception(error))
        click.echo(registry.redact(text.rstrip()), err=True)
    click.echo(
        registry.redact(
            f"retry-contract: internal error ({type(error).__name__}: {error}); the reports hold what was "
            f"judged until then" + ("" if debugging() else f"; set {DEBUG_ENV}=1 for details")
        ),
        err=True,
    )


def exit_now(code: int, *, abandoned: bool) -> NoReturn:
    """Exit with `code`. After abandoned work, at once: a thread of a concurrent.futures pool (the
    fuzzer's, cleanup's) stuck in a request would otherwise be joined at interpreter exit, for as long
    as the server keeps it. The reports are written and closed by then; only the standard streams
    need flushing, since os._exit skips it."""
    if abandoned:
        output_guard.drain()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    # Python's exit still joins the threads, runs the exit handlers and flushes the streams; what it
    # no longer does is collect a heap of a whole run's objects, all about to go at once (a quarter of
    # a second). Its objects' finalizers are not promised at exit anyway.
    gc.freeze()
    sys.exit(code)
