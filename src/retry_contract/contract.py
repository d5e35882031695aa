"""The spec of the retry endpoint as data: its location, its hash and the limits it states.

Code that needs a limit of the contract (the mock validating run metadata, a scenario building
values at the edge) reads it here, from the spec, so the spec stays the only place it is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

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
