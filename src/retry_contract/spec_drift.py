"""How the curated spec differs from Cognite's own OpenAPI document, and what Cognite changed.

Why: the curated spec (`spec/retry-workflow-execution.yaml`) is written by hand from the
documentation and the requirement catalogue; Cognite's document (`spec/upstream/`, copied from the
JavaScript SDK) is what Cognite itself publishes. Each deliberate difference between the two is
reviewed once, with its reason, in `spec/upstream/differences.yaml`. This module recomputes the
differences so that a test fails when one appears without a reason (someone edited the spec, or a
new snapshot of Cognite's document changed the endpoint) or when a listed one no longer exists.

Both documents are reduced to the retry operation (`post` on the retry path, whatever server
prefix the path carries) and flattened into *facts*: a location such as
`response 200 /properties/status/enum` mapped to the constraint found there, with every `$ref`
resolved. Descriptions, summaries, titles, examples and `x-*` extensions are not facts: they are
prose or annotations, and comparing them would bury the constraints under wording.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retry_contract import contract
from retry_contract.errors import RetryContractError

OFFICIAL_FILENAME = "cognite-openapi-workflows.json"
DIFFERENCES_FILENAME = "differences.yaml"
JSON_MEDIA = "application/json"

# Prose and annotations: never compared (see the module docstring).
IGNORED_KEYS = frozenset(
    {"description", "summary", "title", "example", "examples", "$comment", "externalDocs"}
)
# Keywords whose value is an unordered set in JSON Schema: compared sorted.
_SET_KEYWORDS = frozenset({"required", "enum", "type"})
_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "$defs")
_SCHEMA_SINGLES = (
    "items",
    "additionalProperties",
    "propertyNames",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
)
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_PRESENT = "present"


class SpecDriftError(RetryContractError, ValueError):
    """A document that cannot be compared: unreadable, not OpenAPI, or without the retry operation."""


class _Absent:
    """What a document says at a location where it says nothing."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True, slots=True)
class Fact:
    """One constraint at one location; `under` are the locations of the things that contain it."""

    value: Any
    under: tuple[str, ...] = ()


Facts = dict[str, Fact]


@dataclass(frozen=True, slots=True)
class Difference:
    """The official document and the curated spec disagree at `location`."""

    location: str
    official: Any
    curated: Any

    def __str__(self) -> str:
        return f"{self.location}: official {render(self.official)}, curated {render(self.curated)}"


@dataclass(frozen=True, slots=True)
class Change:
    """Cognite's document changed at `location` between two snapshots."""

    location: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.location}: {render(self.before)} -> {render(self.after)}"


@dataclass(frozen=True, slots=True)
class Reviewed:
    """An entry of differences.yaml: a difference someone looked at, and why it is there."""

    difference: Difference
    reason: str


@dataclass(frozen=True, slots=True)
class Audit:
    """Differences missing from the reviewed list, and listed entries that no longer hold."""

    unexplained: tuple[Difference, ...]
    stale: tuple[Reviewed, ...]

    @property
    def clean(self) -> bool:
        return not self.unexplained and not self.stale


def render(value: Any) -> str:
    """A value as one line of JSON (keys sorted), or `(absent)`."""
    return "(absent)" if value is ABSENT else _canonical(value)


# --- where the documents are -------------------------------------------------------------------


def upstream_dir() -> Path:
    """`spec/upstream/` beside the curated spec: the checkout's, else the packaged copy."""
    return contract.spec_path().parent / "upstream"


def official_path() -> Path:
    return upstream_dir() / OFFICIAL_FILENAME


def differences_path() -> Path:
    return upstream_dir() / DIFFERENCES_FILENAME


def load_document(path: Path) -> dict[str, Any]:
    """An OpenAPI document from a JSON or YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecDriftError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecDriftError(f"{path}: cannot be read as text ({error})") from None
    try:
        loaded = json.loads(text)
    except ValueError:
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError:
            raise SpecDriftError(f"{path}: neither JSON nor YAML") from None
    if not isinstance(loaded, dict) or "paths" not in loaded:
        raise SpecDriftError(f"{path}: not an OpenAPI document (no `paths`)")
    return loaded


# --- flattening ----------------------------------------------------------------------------------


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _set_value(key: str, value: Any) -> Any:
    """A set keyword sorted; a one-element type array as the plain type it means."""
    if not isinstance(value, list):
        return value
    items = sorted(value, key=_canonical)
    return items[0] if key == "type" and len(items) == 1 else items


class _Flattener:
    """Turns the retry operation of one document into facts, resolving `$ref`s as it goes."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def resolve(self, node: Any) -> Any:
        """Follow `$ref`s until a node that is not one (for everything but schemas)."""
        seen: set[str] = set()
        while isinstance(node, dict) and "$ref" in node:
            reference = str(node["$ref"])
            if reference in seen:
                raise SpecDriftError(f"$ref cycle through {reference}")
            seen.add(reference)
            node = self._target(reference)
        return node

    def _target(self, reference: str) -> Any:
        if not reference.startswith("#/"):
            raise SpecDriftError(f"only local $refs are supported, not {reference!r}")
        node: Any = self.document
        for part in reference[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or key not in node:
                raise SpecDriftError(f"$ref {reference!r} points at nothing")
            node = node[key]
        return node

    def operation(self, path_item: Mapping[str, Any], prefix_parameters: frozenset[str]) -> Facts:
        operation = path_item["post"]
        facts: Facts = {
            "security": Fact(self._security(operation)),
            "operation deprecated": Fact(bool(operation.get("deprecated", False))),
        }
        facts.update(self._parameters(path_item, operation, prefix_parameters))
        if "requestBody" in operation:
            facts.update(self._request_body(self.resolve(operation["requestBody"])))
        for status, response in (operation.get("responses") or {}).items():
            facts.update(self._response(f"response {status}", self.resolve(response)))
        return facts

    def _security(self, operation: Mapping[str, Any]) -> list[list[str]]:
        """Each accepted alternative, as the schemes it combines; scheme names are not compared."""
        requirements = operation.get("security", self.document.get("security", []))
        schemes = (self.document.get("components") or {}).get("securitySchemes") or {}
        alternatives: set[tuple[str, ...]] = set()
        for requirement in requirements:
            described = []
            for name, scopes in requirement.items():
                if name not in schemes:
                    raise SpecDriftError(f"security scheme {name!r} is not defined")
                described.append(_scheme(self.resolve(schemes[name]), scopes))
            alternatives.add(tuple(sorted(described)))
        return [list(alternative) for alternative in sorted(alternatives)]

    def _parameters(
        self, path_item: Mapping[str, Any], operation: Mapping[str, Any], prefix_parameters: frozenset[str]
    ) -> Facts:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for parameter in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
            resolved = self.resolve(parameter)
            merged[(str(resolved["in"]), str(resolved["name"]))] = resolved
        facts: Facts = {}
        for (where, name), parameter in merged.items():
            if where == "path" and name in prefix_parameters:
                continue  # bound by the server prefix, as a server variable elsewhere
            facts.update(self._value_holder(f"parameter {where} {name}", parameter, ()))
        return facts

    def _value_holder(self, node: str, holder: Mapping[str, Any], under: tuple[str, ...]) -> Facts:
        """A parameter or a header: present, required (false if unsaid), its other keys, its schema."""
        inside = (*under, node)
        facts: Facts = {
            node: Fact(_PRESENT, under),
            f"{node} required": Fact(bool(holder.get("required", False)), inside),
        }
        for key, value in holder.items():
            if key not in ("name", "in", "required", "schema", "content") and _compared(key):
                facts[f"{node} {key}"] = Fact(value, inside)
        if "schema" in holder:
            facts.update(self.schema(node, holder["schema"], inside))
        facts.update(self._content(node, holder.get("content") or {}, inside))
        return facts

    def _request_body(self, body: Mapping[str, Any]) -> Facts:
        node = "requestBody"
        facts: Facts = {
            node: Fact(_PRESENT),
            f"{node} required": Fact(bool(body.get("required", False)), (node,)),
        }
        facts.update(self._content(node, body.get("content") or {}, (node,)))
        return facts

    def _response(self, node: str, response: Mapping[str, Any]) -> Facts:
        facts: Facts = {node: Fact(_PRESENT)}
        for name, header in (response.get("headers") or {}).items():
            facts.update(self._value_holder(f"{node} header {name.lower()}", self.resolve(header), (node,)))
        facts.update(self._content(node, response.get("content") or {}, (node,)))
        return facts

    def _content(self, node: str, content: Mapping[str, Any], under: tuple[str, ...]) -> Facts:
        """One presence fact per media type; schema locations name the media type unless it is JSON."""
        facts: Facts = {}
        for media, body in content.items():
            media_node = f"{node} content {media}"
            facts[media_node] = Fact(_PRESENT, under)
            if isinstance(body, dict) and "schema" in body:
                prefix = node if media == JSON_MEDIA else f"{node} {media}"
                facts.update(self.schema(prefix, body["schema"], (*under, media_node)))
        return facts

    def schema(self, prefix: str, schema: Any, under: tuple[str, ...]) -> Facts:
        """The facts of one schema, each at `prefix` + its JSON pointer inside the schema."""
        return dict(self._schema_facts(prefix, "", schema, under, {}))

    def _schema_facts(
        self, prefix: str, pointer: str, schema: Any, under: tuple[str, ...], expanding: dict[str, str]
    ) -> Iterator[tuple[str, Fact]]:
        if isinstance(schema, bool):
            if schema is False:
                yield f"{prefix} {pointer or '/'}", Fact(False, under)
            return
        if not isinstance(schema, dict):
            raise SpecDriftError(f"{prefix} {pointer or '/'}: a schema must be an object or a boolean")
        if "$ref" in schema:
            reference = str(schema["$ref"])
            if reference in expanding:
                # A recursive schema: say where it loops back to (a name-independent location).
                yield f"{prefix} {pointer}/$recursive", Fact(expanding[reference] or "/", under)
                return
            siblings = {key: value for key, value in schema.items() if key != "$ref"}
            target = self._target(reference)
            merged = {**target, **siblings} if isinstance(target, dict) else target
            yield from self._schema_facts(prefix, pointer, merged, under, {**expanding, reference: pointer})
            return
        yield from self._keyword_facts(prefix, pointer, _normalised(schema), under, expanding)

    def _keyword_facts(
        self,
        prefix: str,
        pointer: str,
        schema: dict[str, Any],
        under: tuple[str, ...],
        expanding: dict[str, str],
    ) -> Iterator[tuple[str, Fact]]:
        for key, value in schema.items():
            if not _compared(key):
                continue
            here = f"{pointer}/{_escape(key)}"
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                for name, subschema in value.items():
                    node = f"{prefix} {here}/{_escape(name)}"
                    yield node, Fact(_PRESENT, under)
                    yield from self._schema_facts(
                        prefix, f"{here}/{_escape(name)}", subschema, (*under, node), expanding
                    )
            elif key in _SCHEMA_SINGLES:
                yield from self._schema_facts(prefix, here, value, under, expanding)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                for index, subschema in enumerate(value):
                    yield from self._schema_facts(prefix, f"{here}/{index}", subschema, under, expanding)
            else:
                yield (
                    f"{prefix} {here}",
                    Fact(_set_value(key, value) if key in _SET_KEYWORDS else value, under),
                )


def _compared(key: str) -> bool:
    return key not in IGNORED_KEYS and not key.startswith("x-")


def _normalised(schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 `nullable` as a 3.1 type array, so that both dialects compare alike."""
    result = dict(schema)
    if result.pop("nullable", False) is True and "type" in result:
        types = result["type"] if isinstance(result["type"], list) else [result["type"]]
        result["type"] = [*types, "null"] if "null" not in types else types
    return result


def _scheme(scheme: Mapping[str, Any], scopes: Iterable[str]) -> str:
    """What a security scheme asks of a request, without its name or prose."""
    kind = str(scheme.get("type"))
    if kind == "http":
        described = f"http {str(scheme.get('scheme', '')).lower()}"
    elif kind == "apiKey":
        described = f"apiKey {scheme.get('in')} {scheme.get('name')}"
    elif kind == "oauth2":
        described = f"oauth2 {'+'.join(sorted(scheme.get('flows') or {}))}"
    elif kind == "openIdConnect":
        described = f"openIdConnect {scheme.get('openIdConnectUrl')}"
    else:
        described = kind
    scope_list = sorted(scopes)
    return f"{described} scopes={','.join(scope_list)}" if scope_list else described


def find_retry_path(document: Mapping[str, Any]) -> str:
    """The key of the retry path: the template itself, or the template after a server prefix."""
    template = contract.RETRY_PATH_TEMPLATE
    candidates: list[str] = [
        str(path)
        for path, item in (document.get("paths") or {}).items()
        if path.rstrip("/").endswith(template) and isinstance(item, dict) and "post" in item
    ]
    if not candidates:
        raise SpecDriftError(f"no POST operation on a path ending in {template}")
    return min(candidates, key=len)


def flatten(document: Mapping[str, Any]) -> Facts:
    """The facts of the retry operation of `document`, keyed by location."""
    path = find_retry_path(document)
    prefix = path.rstrip("/")[: -len(contract.RETRY_PATH_TEMPLATE)]
    prefix_parameters = frozenset(part[1:-1] for part in prefix.split("/") if part.startswith("{"))
    flattener = _Flattener(document)
    return flattener.operation(flattener.resolve(document["paths"][path]), prefix_parameters)


# --- comparing ---------------------------------------------------------------------------------


def _compare(left: Facts, right: Facts) -> list[tuple[str, Any, Any]]:
    """Locations whose values differ, leaving out what lies inside a thing only one side has."""
    differing = {
        location
        for location in left.keys() | right.keys()
        if location not in left
        or location not in right
        or _canonical(left[location].value) != _canonical(right[location].value)
    }
    result = []
    for location in sorted(differing):
        containers = {*_under(left, location), *_under(right, location)}
        if containers & differing:
            continue
        before = left[location].value if location in left else ABSENT
        after = right[location].value if location in right else ABSENT
        result.append((location, before, after))
    return result


def _under(facts: Facts, location: str) -> tuple[str, ...]:
    return facts[location].under if location in facts else ()


def differences(official: Mapping[str, Any], curated: Mapping[str, Any]) -> list[Difference]:
    """Every difference between the official retry operation and the curated one."""
    return [Difference(*triple) for triple in _compare(flatten(official), flatten(curated))]


def snapshot_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """What changed in the retry operation and its schemas between two official snapshots."""
    return [Change(*triple) for triple in _compare(flatten(old), flatten(new))]


# --- the reviewed list -------------------------------------------------------------------------


def load_reviewed(path: Path | None = None) -> list[Reviewed]:
    """The entries of differences.yaml; a missing side means that document says nothing there."""
    source = path or differences_path()
    try:
        loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SpecDriftError(f"{source}: cannot be read ({error})") from None
    entries = loaded.get("differences") if isinstance(loaded, dict) else None
    if not isinstance(entries, list):
        raise SpecDriftError(f"{source}: expected a mapping with a `differences` list")
    reviewed = [_entry(source, index, entry) for index, entry in enumerate(entries)]
    locations = [entry.difference.location for entry in reviewed]
    duplicated = sorted({location for location in locations if locations.count(location) > 1})
    if duplicated:
        raise SpecDriftError(f"{source}: listed more than once: {', '.join(duplicated)}")
    return reviewed


def _entry(source: Path, index: int, entry: Any) -> Reviewed:
    if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
        raise SpecDriftError(f"{source}: entry {index} has no `location`")
    if not str(entry.get("reason") or "").strip():
        raise SpecDriftError(f"{source}: {entry['location']} has no `reason`")
    difference = Difference(entry["location"], entry.get("official", ABSENT), entry.get("curated", ABSENT))
    return Reviewed(difference, str(entry["reason"]))


def _key(difference: Difference) -> tuple[str, str, str]:
    return difference.location, render(difference.official), render(difference.curated)


def audit(official: Mapping[str, Any], curated: Mapping[str, Any], reviewed: Iterable[Reviewed]) -> Audit:
    """Compare the current differences with the reviewed list (location and both values must match)."""
    current = differences(official, curated)
    listed = list(reviewed)
    listed_keys = {_key(entry.difference) for entry in listed}
    current_keys = {_key(difference) for difference in current}
    return Audit(
        unexplained=tuple(d for d in current if _key(d) not in listed_keys),
        stale=tuple(entry for entry in listed if _key(entry.difference) not in current_keys),
    )


def audit_committed() -> Audit:
    """The committed official copy and the curated spec against the committed reviewed list."""
    return audit(load_document(official_path()), contract.raw_spec(), load_reviewed())


# --- a newer snapshot ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    """What a newer official snapshot changed, and how the reviewed list fares with it."""

    changes: tuple[Change, ...]
    audit: Audit


def check_snapshot(path: Path) -> SnapshotReport:
    """Compare a newer official snapshot with the committed copy, then with the curated spec."""
    new = _load_official(path)
    committed = _load_official(official_path())
    return SnapshotReport(
        changes=tuple(snapshot_changes(committed, new)),
        audit=audit(new, contract.raw_spec(), load_reviewed()),
    )


def _load_official(path: Path) -> dict[str, Any]:
    """A document whose retry operation can be flattened; any failure names the file."""
    document = load_document(path)
    try:
        flatten(document)
    except SpecDriftError as error:
        raise SpecDriftError(f"{path}: {error}") from None
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as error:
        raise SpecDriftError(f"{path}: malformed retry operation ({type(error).__name__}: {error})") from None
    return document
