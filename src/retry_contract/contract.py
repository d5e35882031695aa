"""The spec of the retry endpoint as data: its location, its hash and the limits it states.

Code that needs a limit of the contract (the mock validating run metadata, a scenario building
values at the edge) reads it here, from the spec, so the spec stays the only place it is written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from retry_contract.errors import RetryContractError

SPEC_FILENAME = "retry-workflow-execution.yaml"
RETRY_PATH_TEMPLATE = "/workflows/executions/{executionId}/retry"
API_PREFIX = "/api/v1/projects/{project}"


def spec_path() -> Path:
    """The spec file: the repository's `spec/` in a checkout, the packaged copy in a wheel."""
    checkout = Path(__file__).resolve().parents[2] / "spec" / SPEC_FILENAME
    if checkout.is_file():
        return checkout
    return Path(__file__).resolve().parent / "spec" / SPEC_FILENAME


@cache
def spec_bytes() -> bytes:
    return spec_path().read_bytes()


@cache
def raw_spec() -> dict[str, Any]:
    loaded = yaml.safe_load(spec_bytes())
    if not isinstance(loaded, dict):
        raise ValueError(f"{spec_path()} is not an OpenAPI document")
    return loaded


def spec_sha256() -> str:
    return hashlib.sha256(spec_bytes()).hexdigest()


def schema(name: str) -> dict[str, Any]:
    """A schema of `components/schemas` by name."""
    schemas: dict[str, Any] = raw_spec()["components"]["schemas"]
    return dict(schemas[name])


def property_schema(schema_name: str, property_name: str) -> dict[str, Any]:
    return dict(schema(schema_name)["properties"][property_name])


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    max_pairs: int
    max_key_length: int
    max_value_length: int


def _metadata_limits() -> MetadataLimits:
    metadata = property_schema("WorkflowExecution", "metadata")
    return MetadataLimits(
        max_pairs=int(metadata["maxProperties"]),
        max_key_length=int(metadata["propertyNames"]["maxLength"]),
        max_value_length=int(metadata["additionalProperties"]["maxLength"]),
    )


METADATA_LIMITS = _metadata_limits()
IDENTIFIER_MAX_LENGTH = int(property_schema("WorkflowExecution", "workflowExternalId")["maxLength"])


class InvalidProjectName(RetryContractError, ValueError):
    """A project name no CDF project has: put in a URL, it would not name one project."""


# `fullmatch`, not the `search` of JSON Schema: there `$` also matches before a final newline.
PROJECT_URL_NAME = re.compile(str(schema("ProjectUrlName")["pattern"]))
# A name shown in an error is cut here: it comes from the user, or from a report file.
_SHOWN_NAME_LENGTH = 80


def check_project_name(name: str) -> str:
    """`name` when it is a CDF project URL name, else :class:`InvalidProjectName` saying what one is."""
    if PROJECT_URL_NAME.fullmatch(name) is None:
        shown = name if len(name) <= _SHOWN_NAME_LENGTH else f"{name[:_SHOWN_NAME_LENGTH]}..."
        raise InvalidProjectName(
            f"{shown!r} is not a CDF project URL name: letters, digits and hyphens only, "
            "and no hyphen first or last"
        )
    return name


def project_base_url(base_url: str, project: str) -> str:
    """Where a project's API starts, `{base_url}/api/v1/projects/{project}`, with the project
    percent-encoded as one path segment: every request of the suite, fuzzed or not, is built on it."""
    return base_url.rstrip("/") + API_PREFIX.format(project=quote(project, safe=""))
