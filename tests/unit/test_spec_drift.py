"""The reviewed list of differences from Cognite's own OpenAPI document explains exactly the current
ones, the committed copy is the real document, and a change on either side is caught and named by
its location — in the module and through `retry-contract spec-drift`."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from retry_contract import contract, spec_drift
from retry_contract.spec_drift import ABSENT, Difference, Reviewed, SpecDriftError
from support.project import CLI, SHARED_REFERENCE

SHARED_OFFICIAL = SHARED_REFERENCE / "upstream" / spec_drift.OFFICIAL_FILENAME
RETRY = contract.RETRY_PATH_TEMPLATE
NONCE_MIN_LENGTH = "requestBody /properties/authentication/properties/nonce/minLength"
METADATA_MAX_PROPERTIES = "response 200 /properties/metadata/maxProperties"
STATUS_ENUM = "response 200 /properties/status/enum"

Document = dict[str, Any]


@cache
def _committed_official() -> Document:
    return spec_drift.load_document(spec_drift.official_path())


def official() -> Document:
    return copy.deepcopy(_committed_official())


def curated() -> Document:
    return copy.deepcopy(contract.raw_spec())


def retry_operation(document: Document) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][RETRY]["post"]
    return operation


def schemas(document: Document) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def audit_of(official_document: Document, curated_document: Document) -> spec_drift.Audit:
    return spec_drift.audit(official_document, curated_document, spec_drift.load_reviewed())


def unexplained_at(audit: spec_drift.Audit, location: str) -> Difference:
    matches = [d for d in audit.unexplained if d.location == location]
    assert matches, f"{location} not reported; unexplained: {[str(d) for d in audit.unexplained]}"
    return matches[0]


# --- the committed evidence --------------------------------------------------------------------


def test_reviewed_list_explains_exactly_the_current_differences() -> None:
    audit = spec_drift.audit_committed()
    assert not audit.unexplained, "add these to spec/upstream/differences.yaml with a reason:\n" + "\n".join(
        str(d) for d in audit.unexplained
    )
    assert not audit.stale, "these entries of differences.yaml no longer hold:\n" + "\n".join(
        str(e.difference) for e in audit.stale
    )
    current = spec_drift.differences(_committed_official(), contract.raw_spec())
    assert len(current) == len(spec_drift.load_reviewed()) > 0


def test_committed_copy_is_byte_for_byte_the_shared_reference() -> None:
    if not SHARED_OFFICIAL.is_file():
        pytest.skip(f"{SHARED_OFFICIAL} is not on this machine: nothing to compare the committed copy with")
    assert spec_drift.official_path().read_bytes() == SHARED_OFFICIAL.read_bytes()


def test_provenance_states_the_sha256_of_the_committed_copy() -> None:
    digest = hashlib.sha256(spec_drift.official_path().read_bytes()).hexdigest()
    assert digest in (spec_drift.upstream_dir() / "PROVENANCE.md").read_text()


def test_upstream_lives_beside_the_spec_it_is_compared_with() -> None:
    assert spec_drift.upstream_dir() == contract.spec_path().parent / "upstream"
    assert spec_drift.official_path().is_file() and spec_drift.differences_path().is_file()


def test_official_retry_operation_is_the_one_compared() -> None:
    assert retry_operation(official())["operationId"] == "WorkflowExecutionRetry"


# --- a changed official document ---------------------------------------------------------------


def _nonce_min_length(document: Document) -> None:
    schemas(document)["Authentication"]["properties"]["nonce"]["minLength"] = 10


def _without_404(document: Document) -> None:
    del retry_operation(document)["responses"]["404"]


def _new_status(document: Document) -> None:
    schemas(document)["WorkflowStatus"]["enum"].append("PAUSED")


def _metadata_unbounded(document: Document) -> None:
    del schemas(document)["metadata"]["maxProperties"]


def _nullable_reason(document: Document) -> None:
    schemas(document)["ReasonForIncompletion"]["type"] = ["string", "null"]


def _anonymous(document: Document) -> None:
    retry_operation(document)["security"] = [{}]


@pytest.mark.parametrize(
    ("mutate", "location", "official_value"),
    [
        (_nonce_min_length, NONCE_MIN_LENGTH, 10),
        (_without_404, "response 404", ABSENT),
        (_new_status, STATUS_ENUM, ["COMPLETED", "FAILED", "PAUSED", "RUNNING", "TERMINATED", "TIMED_OUT"]),
        (_metadata_unbounded, METADATA_MAX_PROPERTIES, ABSENT),
        (_nullable_reason, "response 200 /properties/reasonForIncompletion/type", ["null", "string"]),
        (_anonymous, "security", [[]]),
    ],
    ids=["nonce-minLength", "404-removed", "new-status", "metadata-maxProperties", "nullable", "security"],
)
def test_a_changed_official_document_is_an_unexplained_difference(
    mutate: Callable[[Document], None], location: str, official_value: Any
) -> None:
    changed = official()
    mutate(changed)
    difference = unexplained_at(audit_of(changed, curated()), location)
    assert spec_drift.render(difference.official) == spec_drift.render(official_value)
    assert [c.location for c in spec_drift.snapshot_changes(official(), changed)] == [location]


def test_a_changed_value_at_a_listed_location_is_unexplained_and_its_entry_stale() -> None:
    changed = official()
    _nonce_min_length(changed)
    audit = audit_of(changed, curated())
    assert unexplained_at(audit, NONCE_MIN_LENGTH).curated == 1
    assert [e.difference.location for e in audit.stale] == [NONCE_MIN_LENGTH]


def test_a_removed_response_is_one_difference_and_what_was_inside_it_goes_stale() -> None:
    changed = official()
    _without_404(changed)
    audit = audit_of(changed, curated())
    assert [d.location for d in audit.unexplained] == ["response 404"]
    assert {e.difference.location for e in audit.stale} >= {"response 404 header x-request-id"}


# --- a changed curated spec --------------------------------------------------------------------


def test_a_changed_curated_constraint_is_an_unexplained_difference() -> None:
    changed = curated()
    schemas(changed)["WorkflowExecution"]["properties"]["metadata"]["maxProperties"] = 12
    difference = unexplained_at(audit_of(official(), changed), METADATA_MAX_PROPERTIES)
    assert (difference.official, difference.curated) == (10, 12)


def test_a_curated_constraint_that_now_matches_the_official_makes_its_entry_stale() -> None:
    changed = curated()
    del schemas(changed)["RetryRequest"]["properties"]["authentication"]["properties"]["nonce"]["minLength"]
    audit = audit_of(official(), changed)
    assert not audit.unexplained
    assert [e.difference.location for e in audit.stale] == [NONCE_MIN_LENGTH]


def test_prose_examples_and_extensions_are_not_compared() -> None:
    changed = curated()
    status = schemas(changed)["WorkflowExecution"]["properties"]["status"]
    status.update(description="reworded", example="FAILED", title="Status", **{"x-requirement": "OTHER"})
    retry_operation(changed)["summary"] = "something else"
    assert audit_of(official(), changed).clean


# --- the flattening ----------------------------------------------------------------------------


def _document(schema: Any, **components: Any) -> Document:
    response = {"description": "ok", "content": {"application/json": {"schema": schema}}}
    return {
        "openapi": "3.1.0",
        "paths": {RETRY: {"post": {"responses": {"200": response}}}},
        "components": {"schemas": components},
    }


def test_a_server_prefix_in_the_path_is_tolerated() -> None:
    prefixed = official()
    item = prefixed["paths"].pop(RETRY)
    item["post"]["parameters"].append({"name": "project", "in": "path", "required": True})
    prefixed["paths"][contract.API_PREFIX + RETRY] = item
    assert spec_drift.snapshot_changes(official(), prefixed) == []


def test_json_and_yaml_give_the_same_facts(tmp_path: Path) -> None:
    as_yaml = tmp_path / "official.yaml"
    as_yaml.write_text(yaml.safe_dump(official()))
    assert spec_drift.flatten(spec_drift.load_document(as_yaml)) == spec_drift.flatten(official())


def test_openapi_30_nullable_equals_a_31_type_array() -> None:
    old = _document({"type": "object", "properties": {"r": {"type": "string", "nullable": True}}})
    new = _document({"type": "object", "properties": {"r": {"type": ["null", "string"]}}})
    assert spec_drift.snapshot_changes(old, new) == []


def test_recursive_schemas_terminate_and_say_where_they_loop() -> None:
    node = {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}
    facts = spec_drift.flatten(_document({"$ref": "#/components/schemas/Node"}, Node=node))
    assert facts["response 200 /properties/child/$recursive"].value == "/"


def test_a_reference_cycle_outside_schemas_is_refused() -> None:
    document = _document({"type": "object"})
    document["paths"][RETRY]["post"]["responses"]["404"] = {"$ref": "#/components/responses/A"}
    document["components"]["responses"] = {"A": {"$ref": "#/components/responses/A"}}
    with pytest.raises(SpecDriftError, match="cycle"):
        spec_drift.flatten(document)


def test_a_property_only_one_side_has_is_one_difference() -> None:
    old = _document({"type": "object", "properties": {}})
    new = _document({"type": "object", "properties": {"extra": {"type": "string", "maxLength": 3}}})
    changes = spec_drift.snapshot_changes(old, new)
    assert [(c.location, c.before, c.after) for c in changes] == [
        ("response 200 /properties/extra", ABSENT, "present")
    ]


def test_a_document_without_the_retry_operation_is_refused() -> None:
    document = official()
    del document["paths"][RETRY]
    with pytest.raises(SpecDriftError, match="no POST operation"):
        spec_drift.flatten(document)


# --- the reviewed list itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"location": "response 400", "curated": "present"}], "no `reason`"),
        ([{"location": "x", "reason": "r"}, {"location": "x", "reason": "s"}], "more than once"),
        ([{"reason": "r"}], "no `location`"),
    ],
)
def test_an_entry_without_reason_location_or_twice_is_refused(
    tmp_path: Path, entries: list[dict[str, Any]], message: str
) -> None:
    listed = tmp_path / "differences.yaml"
    listed.write_text(yaml.safe_dump({"differences": entries}))
    with pytest.raises(SpecDriftError, match=message):
        spec_drift.load_reviewed(listed)


def test_an_entry_of_no_difference_is_stale() -> None:
    invented = Reviewed(Difference("response 200 /properties/id/maxLength", 36, 40), "invented")
    audit = spec_drift.audit(official(), curated(), [*spec_drift.load_reviewed(), invented])
    assert audit.stale == (invented,)


# --- retry-contract spec-drift -----------------------------------------------------------------


def spec_drift_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "spec-drift", str(path)], capture_output=True, text=True, timeout=120)


# Each starts the CLI in a fresh interpreter (seconds, not milliseconds): out of the fast tier.
@pytest.mark.slow
def test_cli_exits_0_when_the_retry_operation_is_unchanged(tmp_path: Path) -> None:
    same = tmp_path / "snapshot.json"
    document = official()
    document["info"]["description"] = "a reworded introduction"
    same.write_text(json.dumps(document))
    result = spec_drift_cli(same)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no change to the retry operation" in result.stdout
    assert "explains every difference" in result.stdout


@pytest.mark.slow
def test_cli_exits_1_and_names_what_changed(tmp_path: Path) -> None:
    changed = official()
    _nonce_min_length(changed)
    newer = tmp_path / "snapshot.json"
    newer.write_text(json.dumps(changed))
    result = spec_drift_cli(newer)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{NONCE_MIN_LENGTH}: (absent) -> 10" in result.stdout
    assert f"not explained by the reviewed list: {NONCE_MIN_LENGTH}: official 10, curated 1" in result.stdout
    assert f"stale in the reviewed list (no longer so): {NONCE_MIN_LENGTH}" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{{{ not: [json", "neither JSON nor YAML"),
        ("openapi: 3.1.0\npaths:\n  /other:\n    get: {}\n", "no POST operation"),
        ("just words", "not an OpenAPI document"),
    ],
    ids=["missing", "not-json-or-yaml", "no-retry-operation", "not-openapi"],
)
def test_cli_exits_2_with_one_line_when_file_cannot_be_compared(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "snapshot.json"
    if content is not None:
        path.write_text(content)
    result = spec_drift_cli(path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
