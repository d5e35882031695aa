"""The spec is valid OpenAPI 3.1, its examples validate, and it traces to the catalogue."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from retry_contract import contract
from retry_contract.checks.openapi import SpecIndex
from retry_contract.requirements import BY_ID, CATALOGUE, RETIRED
from support.project import README, SHARED_REFERENCE

SHARED_REQUIREMENTS = SHARED_REFERENCE / "requirements.md"


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def _resolved(schema: Any) -> Any:
    return SpecIndex(contract.raw_spec()).resolve(schema)


def _validator_for(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    root = {**contract.raw_spec(), **schema}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_spec_is_valid_openapi_31() -> None:
    spec, _ = read_from_filename(str(contract.spec_path()))
    validate(spec)
    assert contract.raw_spec()["openapi"].startswith("3.1")


def test_every_example_validates_against_its_schema() -> None:
    examples = [
        (path, node["example"], node["schema"])
        for path, node in _walk(contract.raw_spec())
        if "example" in node and "schema" in node
    ]
    examples += [
        (path, node["example"], node)
        for path, node in _walk(contract.raw_spec())
        if "example" in node and "type" in node
    ]
    assert len(examples) >= 8
    for path, example, schema in examples:
        errors = list(_validator_for(_resolved(schema)).iter_errors(example))
        assert not errors, f"{path}: {errors[0].message}"


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ("ExecutionIdParameter", "059edaa4-a17a-1102-910e-2c3591500cce"),  # UUIDv1
        ("ExecutionIdParameter", "059edaa4-a17a-4102-910e-2c3591500cc"),  # 35 characters
        ("EpochMillis", 2**63),
        ("EpochMillis", -1),
        ("EpochMillis", 1.5),
        ("EpochMillis", "1730204346000"),
    ],
)
def test_schemas_reject_values_at_the_edges(schema: str, value: Any) -> None:
    assert list(_validator_for(contract.schema(schema)).iter_errors(value))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("wf", True),
        ("a b", True),
        (" wf", False),
        ("wf ", False),
        ("w\x00f", False),
        ("", False),
        ("x" * 256, False),
    ],
)
def test_identifier_rule(value: str, valid: bool) -> None:
    schema = contract.property_schema("WorkflowExecution", "workflowExternalId")
    assert (not list(_validator_for(schema).iter_errors(value))) is valid


def test_metadata_limits_come_from_the_spec() -> None:
    assert (contract.METADATA_LIMITS.max_pairs, contract.METADATA_LIMITS.max_key_length) == (10, 32)
    assert contract.METADATA_LIMITS.max_value_length == 255


def test_every_x_requirement_is_in_the_catalogue() -> None:
    found: set[str] = set()
    for _, node in _walk(contract.raw_spec()):
        value = node.get("x-requirement", [])
        found.update([value] if isinstance(value, str) else value)
    assert found, "the spec names no requirement"
    assert found <= set(BY_ID), f"unknown IDs in the spec: {found - set(BY_ID)}"


def test_no_catch_all_default_response() -> None:
    responses = contract.raw_spec()["paths"][contract.RETRY_PATH_TEMPLATE]["post"]["responses"]
    assert "default" not in responses
    assert not any(code.upper().endswith("XX") for code in responses)


def test_readme_table_matches_the_catalogue() -> None:
    readme = README.read_text()
    rows = re.findall(r"^\| ([A-Z0-9-]+) \| (MUST|SHOULD) \|", readme, re.MULTILINE)
    assert [(r.id, r.level.value) for r in CATALOGUE] == rows


@pytest.mark.skipif(not SHARED_REQUIREMENTS.is_file(), reason="shared/ is not beside the checkout")
def test_retired_requirements_match_the_shared_catalogue() -> None:
    retired = SHARED_REQUIREMENTS.read_text().split("## Retired", 1)[1]
    assert set(re.findall(r"^\| ([A-Z0-9-]+) \| (?:MUST|SHOULD)", retired, re.MULTILINE)) == set(RETIRED)
    assert not set(RETIRED) & set(BY_ID)


@pytest.mark.skipif(not SHARED_REQUIREMENTS.is_file(), reason="shared/ is not beside the checkout")
def test_catalogue_matches_the_shared_requirements() -> None:
    current = SHARED_REQUIREMENTS.read_text().split("## Retired", 1)[0]
    rows = re.findall(r"^\| ([A-Z0-9-]+) \| (MUST|SHOULD) \|", current, re.MULTILINE)
    assert rows
    assert {(r.id, r.level.value) for r in CATALOGUE} == set(rows)
