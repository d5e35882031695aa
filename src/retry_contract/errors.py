"""The root of every error the user can cause or meet: a refused setting, unusable credentials, an
unreachable target, a file that cannot be read. The CLI catches this one class (`cli/errors.py` maps
each subclass to an exit status and prints one line); anything else is an internal error.

Imports nothing of the project, so that every layer may derive its errors from it.
"""

from __future__ import annotations


class RetryContractError(Exception):
    """Something the user can fix; its message says what, in one line, never with a secret's value."""
