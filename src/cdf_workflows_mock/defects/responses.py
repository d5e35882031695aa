"""Defects in the values of the retry's answer: serializer bugs that rewrite the answer, and retries that
rewrite the stored execution (metadata, times, engine id) or answer what they loaded, not what they saved.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from cdf_workflows_mock.cdf import METADATA_LIMITS
from cdf_workflows_mock.defects.base import Defect, Patch, SteppedStore
from cdf_workflows_mock.defects.probing import (
    NON_ASCII_METADATA,
    Prober,
    boundary_metadata,
    retry_answer,
)
from cdf_workflows_mock.engine import RetryPlan, TaskEngine
from cdf_workflows_mock.model import Execution, JSONObject


class _StaleAnswer(SteppedStore):
    """The retry answers with the execution it loaded, not the one it saved."""

    def retry_answer(self, execution: Execution, before: JSONObject) -> JSONObject:
        return before


class _StampsMetadata(TaskEngine):
    """The retry records who retried in the execution's metadata, however many pairs it has already."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        if self.has_room_for_stamp(execution.metadata):
            execution.metadata.update(self.stamp())

    def has_room_for_stamp(self, metadata: Mapping[str, str]) -> bool:
        return True

    def stamp(self) -> dict[str, str]:
        return {"retriedBy": "workflow-engine"}


class _StampsMetadataWhenRoom(_StampsMetadata):
    """The retry records when it retried in the execution's metadata, minding the documented limit:
    at 10 pairs it leaves the stamp out, so only executions with room for it show the change."""

    def has_room_for_stamp(self, metadata: Mapping[str, str]) -> bool:
        return len(metadata) < METADATA_LIMITS.max_pairs

    def stamp(self) -> dict[str, str]:
        return {"retriedAt": str(self._clock())}


class _ClearsMetadata(TaskEngine):
    """The retry rebuilds the execution record and forgets its metadata."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        execution.metadata = {}


class _ResetsCreatedTime(TaskEngine):
    """The retry rebuilds the execution record and stamps it created now."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        execution.created_time = self._clock()


class _NewEngineIdV1(TaskEngine):
    """The retry starts a new engine run, with a time-based (version 1) UUID."""

    def apply_retry(self, execution: Execution, plan: RetryPlan) -> None:
        super().apply_retry(execution, plan)
        execution.engine_execution_id = str(uuid.uuid1())


_TIMES = ("createdTime", "startTime", "endTime")


def _id_uppercase(answer: JSONObject) -> None:
    answer["id"] = str(answer["id"]).upper()


def _id_without_dashes(answer: JSONObject) -> None:
    answer["id"] = str(answer["id"]).replace("-", "")


def _engine_id_truncated(answer: JSONObject) -> None:
    answer["engineExecutionId"] = str(answer["engineExecutionId"])[:35]


def _engine_id_missing(answer: JSONObject) -> None:
    answer.pop("engineExecutionId", None)


def _xid_trailing_space(answer: JSONObject) -> None:
    answer["workflowExternalId"] = f"{answer['workflowExternalId']} "


def _version_as_number(answer: JSONObject) -> None:
    version = answer.get("version")
    if isinstance(version, str) and version.isdecimal():
        answer["version"] = int(version)


def _version_empty(answer: JSONObject) -> None:
    answer["version"] = ""


def _status_lowercase(answer: JSONObject) -> None:
    answer["status"] = str(answer["status"]).lower()


def _time_as_string(answer: JSONObject) -> None:
    for key in _TIMES:
        if key in answer:
            answer[key] = str(answer[key])


def _time_as_float_seconds(answer: JSONObject) -> None:
    for key in _TIMES:
        if key in answer:
            answer[key] = answer[key] / 1000.0


def _start_time_unsigned_sentinel(answer: JSONObject) -> None:
    answer["startTime"] = 2**64 - 1


def _end_time_negative_sentinel(answer: JSONObject) -> None:
    answer.setdefault("endTime", -1)


def _metadata_as_pairs(answer: JSONObject) -> None:
    answer["metadata"] = [{"key": key, "value": value} for key, value in answer["metadata"].items()]


def _empty_metadata_omitted(answer: JSONObject) -> None:
    # A serializer configured to omit empty values (omitempty, NON_EMPTY) drops the required field.
    if answer.get("metadata") == {}:
        del answer["metadata"]


def _metadata_double_encoded(answer: JSONObject) -> None:
    # The retry reloads the execution through a connection that takes the stored UTF-8 for latin-1
    # and answers what it read as UTF-8: ASCII is unchanged, every other character turns to mojibake.
    answer["metadata"] = {
        key.encode().decode("latin-1"): value.encode().decode("latin-1")
        for key, value in answer["metadata"].items()
    }


def _reason_null(answer: JSONObject) -> None:
    answer.setdefault("reasonForIncompletion", None)


# --- probes: each defect's change, shown on the mock through its API (`probing`) -----------


def _probe_response_id_uppercase(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert answer["id"] == execution_id.upper() != execution_id


def _probe_response_id_without_dashes(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert answer["id"] == execution_id.replace("-", "") and len(answer["id"]) == 32


def _probe_engine_id_truncated(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert len(answer["engineExecutionId"]) == 35
    assert p.api.detail(execution_id)["engineExecutionId"].startswith(answer["engineExecutionId"])


def _probe_engine_id_missing(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert "engineExecutionId" not in answer


def _probe_engine_id_uuid1(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert uuid.UUID(answer["engineExecutionId"]).version == 1
    assert p.api.detail(execution_id)["engineExecutionId"] == answer["engineExecutionId"]


def _probe_xid_trailing_space(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert answer["workflowExternalId"] == p.api.detail(execution_id)["workflowExternalId"] + " "


def _probe_version_as_number(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert answer["version"] == 1 and isinstance(answer["version"], int)


def _probe_version_empty(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert answer["version"] == ""


def _probe_status_lowercase(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert answer["status"] == "running"


def _probe_status_stale(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert answer["status"] == "FAILED" and "endTime" in answer and "reasonForIncompletion" in answer
    assert p.api.detail(execution_id)["status"] == "RUNNING"


def _probe_time_as_string(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert isinstance(answer["createdTime"], str) and isinstance(answer["startTime"], str)
    assert int(answer["createdTime"]) == p.clock()


def _probe_time_as_float_seconds(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert isinstance(answer["createdTime"], float) and answer["createdTime"] == p.clock() / 1000


def _probe_time_beyond_int64(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert answer["startTime"] == 2**64 - 1


def _probe_time_negative_sentinel(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert answer["endTime"] == -1 and "endTime" not in p.api.detail(execution_id)


def _probe_metadata_stamped(p: Prober) -> None:
    metadata = boundary_metadata()
    execution_id, answer = retry_answer(p, p.failed(metadata))
    assert len(metadata) == 10 and answer["metadata"] == {**metadata, "retriedBy": "workflow-engine"}
    assert p.api.detail(execution_id)["metadata"] == answer["metadata"]


def _probe_metadata_as_pairs(p: Prober) -> None:
    _, answer = retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == [{"key": "team", "value": "data"}]


def _probe_empty_metadata_omitted(p: Prober) -> None:
    execution_id, answer = retry_answer(p)
    assert "metadata" not in answer and p.api.detail(execution_id)["metadata"] == {}
    _, answer = retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == {"team": "data"}


def _probe_reason_null(p: Prober) -> None:
    _, answer = retry_answer(p)
    assert "reasonForIncompletion" in answer and answer["reasonForIncompletion"] is None


def _probe_created_time_reset(p: Prober) -> None:
    execution_id = p.failed()
    created = p.api.detail(execution_id)["createdTime"]
    p.clock.advance(5)
    _, answer = retry_answer(p, execution_id)
    assert answer["createdTime"] == created + 5000 > answer["startTime"]
    assert p.api.detail(execution_id)["createdTime"] == created + 5000


def _probe_metadata_cleared(p: Prober) -> None:
    execution_id, answer = retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == {} and p.api.detail(execution_id)["metadata"] == {}


def _probe_metadata_stamped_when_room(p: Prober) -> None:
    metadata = boundary_metadata()
    execution_id, answer = retry_answer(p, p.failed(metadata))
    assert answer["metadata"] == metadata == p.api.detail(execution_id)["metadata"]
    execution_id, answer = retry_answer(p, p.failed({"team": "data"}))
    assert answer["metadata"] == {"team": "data", "retriedAt": str(p.clock())}
    assert p.api.detail(execution_id)["metadata"] == answer["metadata"]


def _probe_metadata_utf8_double_encoded(p: Prober) -> None:
    execution_id, answer = retry_answer(p, p.failed(NON_ASCII_METADATA))
    assert answer["metadata"] == {"owner": "J\u00c3\u00bcrgen", "team": "data"}
    assert p.api.detail(execution_id)["metadata"] == NON_ASCII_METADATA


# Every defect of this family, in the catalogue's order.
DEFECTS: tuple[Defect, ...] = (
    Defect(
        name="response-id-uppercase",
        breaks=("RESP-ID", "RESP-UNCHANGED"),
        description="The retry's answer spells its id in upper case",
        patch=Patch(answer=_id_uppercase),
        probe=_probe_response_id_uppercase,
    ),
    Defect(
        name="response-id-without-dashes",
        breaks=("RESP-ID", "RESP-UNCHANGED"),
        description="The retry's answer gives its id as 32 hex digits without dashes",
        patch=Patch(answer=_id_without_dashes),
        probe=_probe_response_id_without_dashes,
    ),
    Defect(
        name="engine-id-truncated",
        breaks=("RESP-ENGINE-ID",),
        description="The retry's answer cuts engineExecutionId to 35 characters",
        patch=Patch(answer=_engine_id_truncated),
        probe=_probe_engine_id_truncated,
    ),
    Defect(
        name="engine-id-missing",
        breaks=("RESP-ENGINE-ID", "RESP-200"),
        description="The retry's answer has no engineExecutionId",
        patch=Patch(answer=_engine_id_missing),
        probe=_probe_engine_id_missing,
    ),
    Defect(
        name="engine-id-uuid1",
        breaks=("RESP-ENGINE-ID",),
        description="The retry gives the execution a new engineExecutionId, a time-based version-1 UUID",
        patch=Patch(engine=_NewEngineIdV1),
        probe=_probe_engine_id_uuid1,
    ),
    Defect(
        name="xid-trailing-space",
        breaks=("RESP-XID", "RESP-UNCHANGED"),
        description="The retry's answer pads workflowExternalId with a trailing space",
        patch=Patch(answer=_xid_trailing_space),
        probe=_probe_xid_trailing_space,
    ),
    Defect(
        name="version-as-number",
        breaks=("RESP-VERSION", "RESP-UNCHANGED"),
        description='The retry\'s answer renders a numeric-looking version as a JSON number ("1" -> 1)',
        patch=Patch(answer=_version_as_number),
        probe=_probe_version_as_number,
    ),
    Defect(
        name="version-empty",
        breaks=("RESP-VERSION", "RESP-UNCHANGED"),
        description="The retry's answer has an empty version",
        patch=Patch(answer=_version_empty),
        probe=_probe_version_empty,
    ),
    Defect(
        name="status-lowercase",
        breaks=("RESP-STATUS",),
        description="The retry's answer spells the status in lower case (running)",
        patch=Patch(answer=_status_lowercase),
        probe=_probe_status_lowercase,
    ),
    Defect(
        name="status-stale",
        breaks=("RESP-STATUS",),
        description="The retry answers with the execution as it was before the retry (status FAILED)",
        patch=Patch(store=_StaleAnswer),
        probe=_probe_status_stale,
    ),
    Defect(
        name="time-as-string",
        breaks=("RESP-TIME", "RESP-UNCHANGED"),
        description="The retry's answer gives its times as strings",
        patch=Patch(answer=_time_as_string),
        probe=_probe_time_as_string,
    ),
    Defect(
        name="time-as-float-seconds",
        breaks=("RESP-TIME", "RESP-UNCHANGED"),
        description="The retry's answer gives its times as float seconds, not integer milliseconds",
        patch=Patch(answer=_time_as_float_seconds),
        probe=_probe_time_as_float_seconds,
    ),
    Defect(
        name="time-beyond-int64",
        breaks=("RESP-TIME",),
        description="The retry's answer gives startTime as 2**64-1, an unsigned 'not set' sentinel",
        patch=Patch(answer=_start_time_unsigned_sentinel),
        probe=_probe_time_beyond_int64,
    ),
    Defect(
        name="time-negative-sentinel",
        breaks=("RESP-TIME",),
        description="The retry's answer gives the cleared endTime as -1 instead of leaving it out",
        patch=Patch(answer=_end_time_negative_sentinel),
        probe=_probe_time_negative_sentinel,
    ),
    Defect(
        name="metadata-stamped",
        breaks=("RESP-METADATA", "RESP-UNCHANGED"),
        description="The retry adds retriedBy to the stored metadata: 10 pairs become 11",
        patch=Patch(engine=_StampsMetadata),
        probe=_probe_metadata_stamped,
    ),
    Defect(
        name="metadata-as-pairs",
        breaks=("RESP-METADATA", "RESP-UNCHANGED"),
        description='The retry\'s answer gives metadata as a list of {"key", "value"} objects',
        patch=Patch(answer=_metadata_as_pairs),
        probe=_probe_metadata_as_pairs,
    ),
    Defect(
        name="empty-metadata-omitted",
        breaks=("RESP-METADATA", "RESP-200", "RESP-UNCHANGED"),
        description=(
            "The retry's answer leaves metadata out when it is empty (a serializer that omits empty values)"
        ),
        patch=Patch(answer=_empty_metadata_omitted),
        probe=_probe_empty_metadata_omitted,
    ),
    Defect(
        name="reason-null",
        breaks=("RESP-REASON",),
        description="The retry's answer sends reasonForIncompletion: null instead of leaving it out",
        patch=Patch(answer=_reason_null),
        probe=_probe_reason_null,
    ),
    Defect(
        name="created-time-reset",
        breaks=("RESP-UNCHANGED",),
        description="The retry sets the stored createdTime to the time of the retry",
        patch=Patch(engine=_ResetsCreatedTime),
        probe=_probe_created_time_reset,
    ),
    Defect(
        name="metadata-cleared",
        breaks=("RESP-UNCHANGED",),
        description="The retry drops the stored metadata",
        patch=Patch(engine=_ClearsMetadata),
        probe=_probe_metadata_cleared,
    ),
    Defect(
        name="metadata-stamped-when-room",
        breaks=("RESP-UNCHANGED",),
        description="The retry adds retriedAt to the stored metadata when it has fewer than 10 pairs",
        patch=Patch(engine=_StampsMetadataWhenRoom),
        probe=_probe_metadata_stamped_when_room,
    ),
    Defect(
        name="metadata-utf8-double-encoded",
        breaks=("RESP-UNCHANGED", "RESP-METADATA"),
        description=(
            "The retry's answer double-encodes non-ASCII metadata (UTF-8 read as latin-1): 'ü' becomes 'Ã¼'"
        ),
        patch=Patch(answer=_metadata_double_encoded),
        probe=_probe_metadata_utf8_double_encoded,
    ),
)
