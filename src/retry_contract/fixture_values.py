"""The values the suite's fixture executions are run with, generated from the contract.

A server's bug in how it stores or echoes a value shows only on a value that provokes it: lower-cased
metadata keys need an upper-case key, empty values turned into null need an empty value, a version
percent-encoded in the answer needs a character that a URL path must encode. Hand-picked values miss
whatever nobody picked, so the values are drawn from what the documents allow: the limits of the run
request (metadata, input, the workflow's external id and version) are read from Cognite's own document
(`spec/upstream/`) and from the curated spec (`contract`), never written here.

Boundary cases come first (empty, shortest, longest, mixed case, characters a path must encode,
non-ASCII in NFC and NFD, astral characters, inner and edge whitespace where the contract allows
it), then values drawn by `random.Random` from the run's seed: the same seed gives the same values,
another seed others. Nothing here runs Hypothesis, so drawing is safe beside the fuzzer's engine.

Only valid values are generated: an identifier has no leading or trailing whitespace and no NUL
(the spec's pattern), and is never `.` or `..` (a path segment clients and servers resolve away).
Lengths are kept within the limit counted in UTF-16 code units too, so a server counting characters
the way Java does is not pushed over a limit the contract counts in code points; only ASCII and
other Basic Multilingual Plane text reaches a limit exactly.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from retry_contract import contract, spec_drift
from retry_contract.request_forms import PLAIN, RAW_UTF8, RequestForm

# The version of a fixture whose values leave the version alone.
PLAIN_VERSION = "1"
# How many seeded fixtures follow the boundary ones in every run.
SEEDED_FIXTURES = 2

# The run request and the schemas of its values in Cognite's document.
_RUN_PATH_SUFFIX = "/versions/{version}/run"


@dataclass(frozen=True, slots=True)
class RunRequestRules:
    """What the run request accepts, as the documents state it."""

    workflow_external_id_max_length: int
    version_max_length: int
    identifier_pattern: re.Pattern[str]
    max_pairs: int
    max_key_length: int
    max_value_length: int
    run_body_fields: frozenset[str]

    def valid_identifier(self, value: str, max_length: int) -> bool:
        return (
            _utf16_length(value) > 0
            and len(value) <= max_length
            and _utf16_length(value) <= max_length
            and self.identifier_pattern.fullmatch(value) is not None
            and value not in (".", "..")
        )

    def valid_metadata(self, metadata: Mapping[str, str] | None) -> bool:
        if metadata is None:
            return True
        return len(metadata) <= self.max_pairs and all(
            isinstance(key, str)
            and isinstance(value, str)
            and 0 < _utf16_length(key) <= self.max_key_length
            and _utf16_length(value) <= self.max_value_length
            and "\x00" not in key + value
            for key, value in metadata.items()
        )


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _upstream_run_body(document: Mapping[str, Any]) -> Mapping[str, Any]:
    for path, item in document["paths"].items():
        if path.endswith(_RUN_PATH_SUFFIX) and "post" in item:
            body: Mapping[str, Any] = item["post"]["requestBody"]["content"]["application/json"]["schema"]
            return body
    raise ValueError("Cognite's document has no run request (POST .../versions/{version}/run)")


def _resolve(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    reference = schema.get("$ref")
    if not isinstance(reference, str):
        return schema
    node: Any = document
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    resolved: Mapping[str, Any] = node
    return resolved


@cache
def rules() -> RunRequestRules:
    """The run request's rules: the stricter of Cognite's document and the curated spec."""
    document = spec_drift.load_document(spec_drift.official_path())
    run_path = next(p for p in document["paths"] if p.endswith(_RUN_PATH_SUFFIX))
    parameters = {
        parameter["name"]: _resolve(document, parameter["schema"])
        for parameter in document["paths"][run_path]["parameters"]
    }
    body = _upstream_run_body(document)
    metadata = _resolve(document, body["properties"]["metadata"])
    curated_xid = contract.property_schema("WorkflowExecution", "workflowExternalId")
    curated_version = contract.property_schema("WorkflowExecution", "version")
    limits = contract.METADATA_LIMITS
    return RunRequestRules(
        workflow_external_id_max_length=min(
            int(parameters["workflowExternalId"]["maxLength"]), int(curated_xid["maxLength"])
        ),
        version_max_length=min(int(parameters["version"]["maxLength"]), int(curated_version["maxLength"])),
        # The same rule for both identifiers, as their descriptions say; the curated spec states it.
        identifier_pattern=re.compile(str(curated_xid["pattern"])),
        max_pairs=min(int(metadata["maxProperties"]), limits.max_pairs),
        max_key_length=limits.max_key_length,
        max_value_length=min(int(metadata["additionalProperties"]["maxLength"]), limits.max_value_length),
        run_body_fields=frozenset(body["properties"]),
    )


@dataclass(frozen=True)
class FixtureShape:
    """How an execution is started: the values of its run request and their wire form.

    `workflow_tail` goes into the workflow's external id (see `workflow_external_id`) and `version`
    names the version run; both are path segments of the run request.
    """

    label: str
    metadata: dict[str, str] | None
    workflow_input: dict[str, Any] | None
    form: RequestForm = PLAIN
    workflow_tail: str = ""
    version: str = PLAIN_VERSION

    def as_record(self) -> dict[str, Any]:
        """The values as the JSON report names them, so a failure's reproduction has them exactly."""
        return {
            "label": self.label,
            "workflow_external_id_tail": self.workflow_tail,
            "version": self.version,
            "metadata": self.metadata,
            "input": self.workflow_input,
            "form": self.form.name,
        }


# A workflow the suite created: its run's id, the fixture's tail if any, and its purpose last.
SUITE_WORKFLOW = re.compile(r"^retry-contract-[0-9a-f]{8}-(?:(?P<tail>.*)-)?(?P<purpose>[a-z]+)$", re.DOTALL)


def workflow_external_id(base: str, purpose: str, tail: str) -> str:
    """`<base>-<tail>-<purpose>`, the tail cut so that the whole fits the identifier's limit; the
    purpose stays last, so cleanup and reports still read it after the last `-`."""
    if not tail:
        return f"{base}-{purpose}"
    room = rules().workflow_external_id_max_length - len(base) - len(purpose) - 2
    cut = tail[: max(0, room)]
    # A cut in a UTF-16 sense too: an astral character counts twice where a server counts so.
    while _utf16_length(f"{base}-{cut}-{purpose}") > rules().workflow_external_id_max_length:
        cut = cut[:-1]
    return f"{base}-{cut}-{purpose}" if cut else f"{base}-{purpose}"


# --- the alphabet ----------------------------------------------------------------------------------

LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = LOWER.upper()
DIGITS = "0123456789"
# Every character a path segment must percent-encode that an identifier may hold.
PATH_ENCODED = " /%?#+&=;"
BMP_NFC = unicodedata.normalize("NFC", "åøæÅØÆüéßñçĳ再試行ΩЖ")
# Base letters with combining marks: NFD spellings of what NFC writes as one character.
NFD_SEQUENCES = tuple(unicodedata.normalize("NFD", c) for c in "åÅéÜñøö")
# Emoji, a mathematical letter, a rare CJK character: beyond the Basic Multilingual Plane.
FRAKTUR_U = "\U0001d518"
ASTRAL = ("😀", "🛠", FRAKTUR_U, "🎉", "𠜎")
INNER_WHITESPACE = (" ", "\t", "\u00a0")

_CATEGORIES: tuple[tuple[str, ...], ...] = (
    tuple(LOWER),
    tuple(UPPER),
    tuple(DIGITS),
    tuple(PATH_ENCODED),
    tuple(BMP_NFC),
    NFD_SEQUENCES,
    ASTRAL,
)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# --- boundary cases --------------------------------------------------------------------------------


def _filled(prefix: str, length: int, filler: str) -> str:
    return (prefix + filler * length)[:length]


def _boundary_shapes(r: RunRequestRules) -> tuple[FixtureShape, ...]:
    at_limits = {
        _filled(f"RetryContract{index:02d}", r.max_key_length, "Kk"): _filled(
            f"Fixture Value {index} ", r.max_value_length, "vV"
        )
        for index in range(r.max_pairs)
    }
    return (
        FixtureShape(
            "metadata at every limit, mixed-case keys, identifiers at their longest",
            at_limits,
            None,
            workflow_tail=_filled("Longest-", r.workflow_external_id_max_length, "Xx"),
            version=_filled("V", r.version_max_length, "9z"),
        ),
        FixtureShape(
            "empty metadata values, empty input, identifiers a path must encode",
            {"empty": "", "EMPTY": "", "Empty-Key": "not empty"},
            {},
            workflow_tail="a b/c%d?e#f+g&h=i;j",
            version="v 1/2%3?4#5+6",
        ),
        # The version as most workflows name it: digits only, which a server may turn into a number.
        FixtureShape("no metadata field, no input, shortest identifiers, a digit version", None, None),
        FixtureShape(
            "non-ASCII metadata and input in NFC and NFD, raw UTF-8",
            {
                "nfc": "Åsa Ødegård",
                "nfd": nfd("Åsa Ødegård"),
                nfd("Überprüft"): "ja ✓ 再試行",
                "rtl": "\u200f\u05e2\u05d1\u05e8\u05d9\u05ea",
                "bmp-at-limit": _filled("Tromsø ", r.max_value_length, "ø"),
            },
            {"city": "Tromsø", nfd("Ærø"): nfd("Ålesund"), "emoji": "🛠️"},
            RAW_UTF8,
            workflow_tail="Tromsø-ÆØÅ",
            version=nfd("versjon-å"),
        ),
        FixtureShape(
            "astral characters, inner and edge whitespace, escaped JSON",
            {
                "emoji": "🛠️ 😀 🎉",
                # "Unicode" in Fraktur letters.
                f"Math {FRAKTUR_U}": FRAKTUR_U
                + "\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 𠜎",
                "padded": "  edge and inner\twhitespace\u00a0 ",
                "Key With  Spaces": " ",
            },
            {"emoji": "😀", "nested": {"list": [1, FRAKTUR_U, None, True], "empty": ""}},
            workflow_tail="emoji 😀 Tail",
            version="v 😀\u00a01",
        ),
    )


# --- seeded cases ----------------------------------------------------------------------------------


def _text(
    rng: random.Random, max_units: int, *, min_units: int = 0, spaces: tuple[str, ...] = INNER_WHITESPACE
) -> str:
    """Text of `min_units` to `max_units` UTF-16 units, drawn across the alphabet."""
    target = rng.randint(min_units, max_units)
    chosen = ""
    while True:
        piece = rng.choice(spaces) if rng.random() < 0.08 else rng.choice(rng.choice(_CATEGORIES))
        if _utf16_length(chosen + piece) > target:
            return chosen
        chosen += piece


def _identifier(rng: random.Random, r: RunRequestRules, max_length: int) -> str:
    for _ in range(100):
        # Only a space inside an identifier: the contract allows any, but a control character in a
        # path segment is more than a fixture needs to show an encoding defect.
        text = _text(rng, max_length, min_units=1, spaces=(" ",)).strip()
        if r.valid_identifier(text, max_length):
            return text
    return rng.choice(LOWER)


def _json_value(rng: random.Random, depth: int) -> Any:
    # No floats: their shortest text differs between languages, and the input is echoed.
    kind = rng.randrange(6 if depth < 2 else 4)
    if kind == 0:
        return _text(rng, 40)
    if kind == 1:
        return rng.randint(-(2**53), 2**53)
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return ""
    if kind == 4:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {_text(rng, 16): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _seeded_shape(rng: random.Random, r: RunRequestRules, label: str) -> FixtureShape:
    metadata: dict[str, str] | None = None
    if rng.random() < 0.85:
        metadata = {}
        for _ in range(rng.randint(0, r.max_pairs)):
            key = _text(rng, r.max_key_length, min_units=1) or rng.choice(UPPER)
            metadata[key] = "" if rng.random() < 0.15 else _text(rng, r.max_value_length)
    workflow_input = None
    if rng.random() < 0.8:
        workflow_input = {_text(rng, 24, min_units=1): _json_value(rng, 0) for _ in range(rng.randint(0, 4))}
    tail = _identifier(rng, r, 40)
    version = _identifier(rng, r, r.version_max_length if rng.random() < 0.3 else 40)
    text = json.dumps([metadata, workflow_input, tail, version], ensure_ascii=False)
    form = rng.choice((PLAIN, RAW_UTF8)) if not text.isascii() else PLAIN
    return FixtureShape(label, metadata, workflow_input, form, workflow_tail=tail, version=version)


@cache
def fixture_shapes(seed: int, seeded: int = SEEDED_FIXTURES) -> tuple[FixtureShape, ...]:
    """The boundary fixtures, then `seeded` drawn from `seed`: the cycle every run provisions in."""
    r = rules()
    # A string seed is hashed the same in every process, whatever PYTHONHASHSEED says.
    rng = random.Random(f"retry-contract fixture values {seed}")
    drawn = tuple(_seeded_shape(rng, r, f"values drawn from seed {seed}, #{n + 1}") for n in range(seeded))
    return _boundary_shapes(r) + drawn
