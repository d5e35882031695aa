"""Defects in how the retry keeps the values an execution was run with: a retry that saves the record
again through a layer that changes its text (case-insensitive maps, trimming, normalising, a 3-byte
UTF-8 column, a column counted in bytes), or that answers its identifiers as they appear in a URL.

Each shows only on a value that provokes it (an upper-case key, an empty value, NFD text, an astral
character, a 255-character non-ASCII value, a version a path must encode), so the suite's fixtures
must hold such values for any of them to be seen.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, unquote_plus

from cdf_workflows_mock.cdf import METADATA_LIMITS
from cdf_workflows_mock.defects.base import Defect, Patch
from cdf_workflows_mock.defects.probing import (
    Prober,
    retried_in,
    retried_metadata,
)
from cdf_workflows_mock.engine import RetryPlan, TaskEngine
from cdf_workflows_mock.model import Execution, JSONObject

# What a database with 3-byte UTF-8 (MySQL's utf8mb3) stores for a character it cannot hold.
REPLACEMENT_CHARACTER = "\ufffd"


class _ResavesMetadata(TaskEngine):
    """The retry saves the execution's metadata again, each key and value through the layer below."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        execution.metadata = {
            self.resaved_key(key): self.resaved(value) for key, value in execution.metadata.items()
        }

    def resaved_key(self, key: str) -> str:
        return self.resaved(key)

    def resaved(self, text: str) -> str:
        return text


class _LowercasesMetadataKeys(_ResavesMetadata):
    """The retry copies the metadata into a case-insensitive map, which lower-cases its keys (and keeps
    one of two keys that differ only in case)."""

    def resaved_key(self, key: str) -> str:
        return key.lower()


class _TrimsMetadataValues(_ResavesMetadata):
    """The retry's save passes metadata values through a validator that strips surrounding whitespace."""

    def resaved_key(self, key: str) -> str:
        return key

    def resaved(self, text: str) -> str:
        return text.strip()


class _NormalisesMetadata(_ResavesMetadata):
    """The retry's save normalises metadata text to NFC: decomposed characters are composed."""

    def resaved(self, text: str) -> str:
        return unicodedata.normalize("NFC", text)


class _ReplacesAstralCharacters(_ResavesMetadata):
    """The retry's save goes through a 3-byte UTF-8 column: every character beyond the Basic
    Multilingual Plane (emoji, mathematical letters, rare CJK) becomes U+FFFD."""

    def resaved(self, text: str) -> str:
        return "".join(REPLACEMENT_CHARACTER if ord(c) > 0xFFFF else c for c in text)


class _CutsMetadataAtBytes(_ResavesMetadata):
    """The retry's save goes through a column of as many bytes as the documented limit has characters:
    a non-ASCII value near the limit loses its end (cut on a character boundary)."""

    def resaved(self, text: str) -> str:
        limit = METADATA_LIMITS.max_value_length
        return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _empty_metadata_value_null(answer: JSONObject) -> None:
    # A serializer (or a database) that holds an empty string as "no value" answers null for it.
    metadata = answer.get("metadata")
    if isinstance(metadata, dict):
        answer["metadata"] = {key: (None if value == "" else value) for key, value in metadata.items()}


def _version_percent_encoded(answer: JSONObject) -> None:
    # The retry reads the version back from the execution's resource path, where it is percent-encoded.
    version = answer.get("version")
    if isinstance(version, str):
        answer["version"] = quote(version, safe="")


def _workflow_plus_as_space(answer: JSONObject) -> None:
    # The retry reads the workflow's external id back from its URL with form decoding: '+' turns into
    # a space (and an escape such as %41 in the id turns into what it encodes).
    workflow = answer.get("workflowExternalId")
    if isinstance(workflow, str):
        answer["workflowExternalId"] = unquote_plus(workflow)


# --- probes: each defect's change, shown on the mock through its API (`probing`) -----------


def _probe_metadata_keys_lowercased(p: Prober) -> None:
    assert retried_metadata(p, {"Team": "Data", "EMPTY": ""}) == ({"team": "Data", "empty": ""},) * 2
    assert retried_metadata(p, {"team": "data"})[0] == {"team": "data"}


def _probe_empty_metadata_value_null(p: Prober) -> None:
    answer, stored = retried_metadata(p, {"empty": "", "team": "data"})
    assert answer == {"empty": None, "team": "data"} and stored == {"empty": "", "team": "data"}


def _probe_metadata_values_trimmed(p: Prober) -> None:
    answer, stored = retried_metadata(p, {"padded": "  inner  space ", "blank": " ", "team": "data"})
    assert answer == stored == {"padded": "inner  space", "blank": "", "team": "data"}


def _probe_metadata_normalised_to_nfc(p: Prober) -> None:
    decomposed = unicodedata.normalize("NFD", "Åsa")
    answer, stored = retried_metadata(p, {decomposed: decomposed, "nfc": "Åsa"})
    assert answer == stored == {"Åsa": "Åsa", "nfc": "Åsa"} and decomposed != "Åsa"


def _probe_astral_chars_replaced(p: Prober) -> None:
    answer, stored = retried_metadata(p, {"emoji 😀": "🛠 ok ✓", "plain": "Tromsø"})
    assert answer == stored == {"emoji \ufffd": "\ufffd ok ✓", "plain": "Tromsø"}


def _probe_metadata_cut_at_limit_in_bytes(p: Prober) -> None:
    longest = "ø" * METADATA_LIMITS.max_value_length
    answer, stored = retried_metadata(p, {"long": longest, "ascii": "v" * METADATA_LIMITS.max_value_length})
    cut = "ø" * (METADATA_LIMITS.max_value_length // 2)
    assert answer == stored == {"long": cut, "ascii": "v" * METADATA_LIMITS.max_value_length}


def _probe_version_percent_encoded_in_answer(p: Prober) -> None:
    assert retried_in(p, "wf-encoded", "v 1/2%")["version"] == "v%201%2F2%25"
    assert retried_in(p, "wf-plain", "v1")["version"] == "v1"


def _probe_workflow_id_plus_as_space(p: Prober) -> None:
    assert retried_in(p, "wf+a%41", "1")["workflowExternalId"] == "wf aA"
    assert retried_in(p, "wf-plain", "1")["workflowExternalId"] == "wf-plain"


# Every defect of this family, in the catalogue's order.
DEFECTS: tuple[Defect, ...] = (
    Defect(
        name="metadata-keys-lowercased",
        breaks=("RESP-UNCHANGED",),
        description="The retry saves metadata through a case-insensitive map: keys come back lower-cased",
        patch=Patch(engine=_LowercasesMetadataKeys),
        probe=_probe_metadata_keys_lowercased,
    ),
    Defect(
        name="empty-metadata-value-null",
        breaks=("RESP-METADATA", "RESP-UNCHANGED"),
        description="The retry's answer gives an empty-string metadata value as null",
        patch=Patch(answer=_empty_metadata_value_null),
        probe=_probe_empty_metadata_value_null,
    ),
    Defect(
        name="metadata-values-trimmed",
        breaks=("RESP-UNCHANGED",),
        description="The retry saves metadata values stripped of surrounding whitespace",
        patch=Patch(engine=_TrimsMetadataValues),
        probe=_probe_metadata_values_trimmed,
    ),
    Defect(
        name="metadata-normalised-to-nfc",
        breaks=("RESP-UNCHANGED",),
        description="The retry saves metadata normalised to NFC: decomposed (NFD) text comes back composed",
        patch=Patch(engine=_NormalisesMetadata),
        probe=_probe_metadata_normalised_to_nfc,
    ),
    Defect(
        name="astral-chars-replaced",
        breaks=("RESP-UNCHANGED",),
        description=(
            "The retry saves metadata in 3-byte UTF-8: emoji and other astral characters become U+FFFD"
        ),
        patch=Patch(engine=_ReplacesAstralCharacters),
        probe=_probe_astral_chars_replaced,
    ),
    Defect(
        name="metadata-cut-at-limit-in-bytes",
        breaks=("RESP-UNCHANGED",),
        description=(
            "The retry saves metadata values in a column sized in bytes: long non-ASCII values lose the end"
        ),
        patch=Patch(engine=_CutsMetadataAtBytes),
        probe=_probe_metadata_cut_at_limit_in_bytes,
    ),
    Defect(
        name="version-percent-encoded-in-answer",
        breaks=("RESP-UNCHANGED",),
        description=(
            "The retry's answer gives the version percent-encoded as in its URL: 'v 1/2' becomes 'v%201%2F2'"
        ),
        patch=Patch(answer=_version_percent_encoded),
        probe=_probe_version_percent_encoded_in_answer,
    ),
    Defect(
        name="workflow-id-plus-as-space",
        breaks=("RESP-UNCHANGED",),
        description="The retry's answer form-decodes the workflow's external id: '+' becomes a space",
        patch=Patch(answer=_workflow_plus_as_space),
        probe=_probe_workflow_id_plus_as_space,
    ),
)
