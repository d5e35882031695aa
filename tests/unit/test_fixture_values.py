"""The fixture values are drawn from the contract: valid by its schemas, at its boundaries, and the
same for the same seed."""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from retry_contract import contract, fixture_values, spec_drift
from retry_contract.fixture_values import FixtureShape, fixture_shapes, rules, workflow_external_id

UPSTREAM = spec_drift.load_document(spec_drift.official_path())
PURPOSES = ("simple", "shapes", "timeout")
RUN_BASE = "retry-contract-0123abcd"


def _upstream_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = UPSTREAM["components"]["schemas"][name]
    return schema


def _identifier_schema(name: str, curated_property: str) -> dict[str, Any]:
    """Cognite's schema of the path parameter with the curated rule on what it may hold."""
    return {
        "allOf": [_upstream_schema(name), contract.property_schema("WorkflowExecution", curated_property)]
    }


VALIDATORS = {
    "metadata": (
        Draft202012Validator(_upstream_schema("metadata")),
        Draft202012Validator(contract.property_schema("WorkflowExecution", "metadata")),
    ),
    "input": (Draft202012Validator(_upstream_schema("ExecutionInput")),),
    "version": (Draft202012Validator(_identifier_schema("Version", "version")),),
    "workflow": (Draft202012Validator(_identifier_schema("WorkflowExternalId", "workflowExternalId")),),
}


def _problems(shape: FixtureShape) -> list[str]:
    values: dict[str, Any] = {"version": shape.version}
    if shape.metadata is not None:
        values["metadata"] = shape.metadata
    if shape.workflow_input is not None:
        values["input"] = shape.workflow_input
    problems = [
        f"{shape.label}: {name}: {error.message}"
        for name, value in values.items()
        for validator in VALIDATORS[name]
        for error in validator.iter_errors(value)
    ]
    for purpose in PURPOSES:
        xid = workflow_external_id(RUN_BASE, purpose, shape.workflow_tail)
        problems += [
            f"{shape.label}: {xid!r}: {e.message}" for e in VALIDATORS["workflow"][0].iter_errors(xid)
        ]
        assert xid.startswith(RUN_BASE + "-") and xid.endswith("-" + purpose)
    for identifier in (shape.version, shape.workflow_tail or "x"):
        if identifier in (".", "..") or "\x00" in identifier:
            problems.append(f"{shape.label}: {identifier!r} is not a path segment")
    # Within each limit counted in UTF-16 code units too.
    r = rules()
    if not r.valid_metadata(shape.metadata) or not r.valid_identifier(shape.version, r.version_max_length):
        problems.append(f"{shape.label}: over a limit counted in UTF-16 units")
    return problems


def test_the_rules_are_read_from_the_documents() -> None:
    r = rules()
    assert r.max_pairs == contract.METADATA_LIMITS.max_pairs == _upstream_schema("metadata")["maxProperties"]
    assert r.version_max_length == _upstream_schema("Version")["maxLength"]
    assert r.workflow_external_id_max_length == _upstream_schema("WorkflowExternalId")["maxLength"]
    assert {"metadata", "input"} <= r.run_body_fields


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(min_value=0, max_value=2**64))
def test_every_seed_gives_values_the_contract_allows(seed: int) -> None:
    shapes = fixture_values.fixture_shapes(seed)
    assert not [p for shape in shapes for p in _problems(shape)]
    assert len({shape.label for shape in shapes}) == len(shapes)


def test_the_same_seed_gives_the_same_values_and_another_seed_others() -> None:
    fixture_values.fixture_shapes.cache_clear()
    first = fixture_shapes(1)
    fixture_values.fixture_shapes.cache_clear()
    assert fixture_shapes(1) == first
    assert fixture_shapes(2) != first
    # Boundary cases first, the same for every seed; the drawn ones follow.
    boundary = len(first) - fixture_values.SEEDED_FIXTURES
    assert first[:boundary] == fixture_shapes(2)[:boundary]
    assert first[boundary:] != fixture_shapes(2)[boundary:]


def _texts(shape: FixtureShape) -> list[str]:
    texts = [shape.version, shape.workflow_tail]
    for key, value in (shape.metadata or {}).items():
        texts += [key, value]
    texts += [json.dumps(shape.workflow_input, ensure_ascii=False)]
    return texts


def test_the_boundary_cases_are_there() -> None:
    r = rules()
    shapes = fixture_shapes(20230101)
    metadata = [shape.metadata for shape in shapes]
    texts = [text for shape in shapes for text in _texts(shape)]
    assert None in metadata and any(m is not None and "" in m.values() for m in metadata)
    assert {} in [shape.workflow_input for shape in shapes]
    assert any(m is not None and len(m) == r.max_pairs for m in metadata)
    assert any(len(key) == r.max_key_length for m in metadata for key in m or {})
    assert any(len(value) == r.max_value_length for m in metadata for value in (m or {}).values())
    assert any(len(shape.version) == r.version_max_length for shape in shapes)
    assert any(len(shape.version) == 1 and shape.version.isdecimal() for shape in shapes)
    assert any(
        len(workflow_external_id(RUN_BASE, "timeout", shape.workflow_tail))
        == r.workflow_external_id_max_length
        for shape in shapes
    )
    # Upper case keys beside lower case ones that differ only in case.
    assert any(
        m and {k.lower() for k in m} != set(m) and len({k.lower() for k in m}) < len(m) for m in metadata
    )
    for character in " /%?#+":
        assert any(character in shape.version for shape in shapes), character
        assert any(character in shape.workflow_tail for shape in shapes), character
    assert any(quote(shape.version, safe="") != shape.version for shape in shapes)
    assert any(unicodedata.normalize("NFC", t) != t for t in texts)
    assert any(not t.isascii() and unicodedata.normalize("NFC", t) == t for t in texts)
    assert any(any(ord(c) > 0xFFFF for c in t) for t in texts)
    assert any(v != v.strip() for m in metadata for v in (m or {}).values())


def test_a_long_tail_is_cut_to_the_identifier_limit_and_keeps_the_purpose() -> None:
    limit = rules().workflow_external_id_max_length
    for tail in ("x" * 600, "😀" * 300, "a " * 300):
        xid = workflow_external_id(RUN_BASE, "timeout", tail)
        assert len(xid.encode("utf-16-le")) // 2 <= limit and xid.endswith("-timeout")
    assert workflow_external_id(RUN_BASE, "simple", "") == f"{RUN_BASE}-simple"
