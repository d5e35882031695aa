"""Known failures a run accepts (`retry-contract run --baseline FILE`): only findings outside them count.

A finding is matched by its *signature*, what stays the same when the same problem is found again in
another run: the requirement, the request's method and path template (the project and the execution
id replaced by their names in the spec), the status of the answer, and the kind of problem (the judge
and its message with the values that change from run to run taken out: ids, numbers, quoted values,
long opaque strings such as nonces). The case that found it (its origin) is not part of it: the same
problem found by another generated case, or with another seed, is the same known failure.

The baseline file is either a previous JSON report of `retry-contract run` (every distinct signature
of every failure it found, not only the ones it shows) or a small file, JSON or YAML, of accepted
failures, each a requirement and optionally the other parts of a signature (a part left out matches
anything)::

    accepted_failures:
      - requirement: HDR-REQUEST-ID               # every finding of it
      - {requirement: METHOD, method: TRACE, status: 405}

The exit status counts only new findings; the reports list new and accepted ones apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from retry_contract.contract import API_PREFIX, RETRY_PATH_TEMPLATE
from retry_contract.errors import RetryContractError
from retry_contract.requirements import BY_ID
from retry_contract.verdict import Observation

# Where a signature has no exchange to take a part from (a scenario's conclusion on no one request).
NO_EXCHANGE = "-"
NO_ANSWER = "no answer"
# A problem kind is the message's beginning: long enough to tell problems apart, short enough that a
# long list of what differed (which varies with the data) does not make each run's signature new.
_KIND_LIMIT = 160
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
# Quoted values (Python reprs of what a server sent or the suite generated): the value changes, the
# problem does not.
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
# Opaque runs (nonces, tokens, hashes, base64) and numbers (counts, lengths, times).
_OPAQUE = re.compile(r"[A-Za-z0-9_+/=-]{24,}")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_API_PREFIX = re.compile("^" + re.escape(API_PREFIX).replace(re.escape("{project}"), "[^/]*") + "(?=/|$)")
_RETRY_PATH = re.compile(
    "^" + re.escape(RETRY_PATH_TEMPLATE).replace(re.escape("{executionId}"), "[^/]*") + "/?$"
)


class BaselineError(RetryContractError):
    """The baseline file cannot be read or is neither a report nor a list of accepted failures."""


@dataclass(frozen=True, slots=True)
class Signature:
    """What identifies a finding across runs (see the module's documentation)."""

    requirement: str
    method: str
    path: str
    status: str
    kind: str

    def as_json(self) -> dict[str, str]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def path_template(url: str) -> str:
    """The path of `url` with the project and the execution id put back as the spec names them."""
    path = urlsplit(url).path
    prefixed = _API_PREFIX.match(path)
    if prefixed is None:
        return _UUID.sub("{id}", path)
    rest = path[prefixed.end() :]
    if _RETRY_PATH.match(rest):
        rest = RETRY_PATH_TEMPLATE
    return API_PREFIX + _UUID.sub("{id}", rest)


def problem_kind(judge: str, message: str) -> str:
    """The judge and its message with what varies between runs taken out."""
    text = _UUID.sub("{uuid}", " ".join(message.split()))
    text = _QUOTED.sub("'…'", text)
    text = _OPAQUE.sub("…", text)
    text = _NUMBER.sub("N", text)
    return f"{judge}: {text[:_KIND_LIMIT]}" if judge else text[:_KIND_LIMIT]


def signature(
    requirement: str, judge: str, message: str, method: str | None, url: str | None, status: int | None
) -> Signature:
    """The signature of a finding from its parts, as a report holds them or a ledger does."""
    if method is None or url is None:
        return Signature(requirement, NO_EXCHANGE, NO_EXCHANGE, NO_EXCHANGE, problem_kind(judge, message))
    return Signature(
        requirement,
        method.upper(),
        path_template(url),
        NO_ANSWER if status is None else str(status),
        problem_kind(judge, message),
    )


def signature_of(observation: Observation) -> Signature:
    exchange = observation.exchange
    return signature(
        observation.requirement,
        observation.judge,
        observation.message,
        exchange.method if exchange is not None else None,
        exchange.url if exchange is not None else None,
        exchange.status if exchange is not None else None,
    )


@dataclass(frozen=True, slots=True)
class AcceptedFailure:
    """One entry of a baseline: a requirement, and the parts of a signature it is limited to."""

    requirement: str
    method: str | None = None
    path: str | None = None
    status: str | None = None
    kind: str | None = None

    def matches(self, found: Signature) -> bool:
        return self.requirement == found.requirement and all(
            wanted is None or wanted == getattr(found, name)
            for name, wanted in (
                ("method", self.method),
                ("path", self.path),
                ("status", self.status),
                ("kind", self.kind),
            )
        )

    def describe(self) -> str:
        parts = [self.method, self.path, self.status, self.kind]
        return " ".join([self.requirement, *(part for part in parts if part is not None)])


@dataclass(frozen=True)
class Baseline:
    """The failures a run accepts, read from `source`."""

    source: str
    entries: tuple[AcceptedFailure, ...]

    def accepts(self, observation: Observation) -> bool:
        """Whether a failed observation is a known failure (a passed one never needs accepting)."""
        found = signature_of(observation)
        return any(entry.matches(found) for entry in self.entries)

    def unmatched(self, found: Iterable[Observation]) -> list[AcceptedFailure]:
        """The entries no failure of a run matched: problems fixed since, which the file may drop."""
        signatures = {signature_of(observation) for observation in found}
        return [entry for entry in self.entries if not any(entry.matches(s) for s in signatures)]


def _entry(raw: Any, where: str) -> AcceptedFailure:
    if not isinstance(raw, Mapping):
        raise BaselineError(f"{where} is not a mapping with a requirement")
    known = {field.name for field in fields(AcceptedFailure)}
    unknown = sorted(set(map(str, raw)) - known - {"count", "accepted"})
    if unknown:
        raise BaselineError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    requirement = raw.get("requirement")
    if requirement not in BY_ID:
        raise BaselineError(f"{where}: requirement {requirement!r} is not in the catalogue")
    parts = {name: raw.get(name) for name in ("method", "path", "status", "kind")}
    return AcceptedFailure(
        requirement=str(requirement),
        **{name: None if value is None else str(value) for name, value in parts.items()},
    )


def _from_report(report: Mapping[str, Any], source: str) -> list[AcceptedFailure]:
    """Every failure signature of a JSON report: the full list its rows keep, or, in a report written
    before they kept one, the signatures of the failures it shows."""
    entries: list[AcceptedFailure] = []
    for row in report.get("requirements") or []:
        if not isinstance(row, Mapping):
            raise BaselineError(f"{source}: a requirement of the report is not an object")
        listed = row.get("failure_signatures")
        if listed is not None:
            entries += [_entry(item, f"{source}: {row.get('id')}") for item in listed]
            continue
        for failure in row.get("failures") or []:
            method, _, url = str(failure.get("request") or "").partition(" ")
            found = signature(
                str(failure.get("requirement")),
                str(failure.get("judge") or ""),
                str(failure.get("message") or ""),
                method or None,
                url or None,
                failure.get("status"),
            )
            entries.append(_entry(found.as_json(), f"{source}: failure {failure.get('number')}"))
    return entries


def load(path: Path) -> Baseline:
    """A baseline from a previous JSON report or a file of accepted failures (JSON or YAML)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BaselineError(f"cannot read {path}: {error.strerror or error}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path} is neither JSON nor YAML: {str(error).splitlines()[0]}") from None
    source = str(path)
    if isinstance(document, Mapping) and "requirements" in document and "schema_version" in document:
        entries = _from_report(document, source)
    elif isinstance(document, Mapping) and isinstance(document.get("accepted_failures"), list):
        entries = [
            _entry(raw, f"{source}: accepted_failures[{index}]")
            for index, raw in enumerate(document["accepted_failures"])
        ]
    else:
        raise BaselineError(
            f"{path} is neither a JSON report of retry-contract run nor a file with accepted_failures"
        )
    # The same signature listed twice (a report's rows hold each once; hand-written files may not).
    return Baseline(source, tuple(dict.fromkeys(entries)))
