"""Defects in the values of the retry's answer: serializer bugs that rewrite the answer, and retries that
rewrite the stored execution (metadata, times, engine id) or answer what they loaded, not what they saved.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType

from cdf_workflows_mock.cdf import METADATA_LIMITS
from cdf_workflows_mock.defects.base import Patch, SteppedStore
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


# How each defect of this family is made (the catalogue says what each does and breaks).
PATCHES: Mapping[str, Patch] = MappingProxyType(
    {
        "response-id-uppercase": Patch(answer=_id_uppercase),
        "response-id-without-dashes": Patch(answer=_id_without_dashes),
        "engine-id-truncated": Patch(answer=_engine_id_truncated),
        "engine-id-missing": Patch(answer=_engine_id_missing),
        "engine-id-uuid1": Patch(engine=_NewEngineIdV1),
        "xid-trailing-space": Patch(answer=_xid_trailing_space),
        "version-as-number": Patch(answer=_version_as_number),
        "version-empty": Patch(answer=_version_empty),
        "status-lowercase": Patch(answer=_status_lowercase),
        "status-stale": Patch(store=_StaleAnswer),
        "time-as-string": Patch(answer=_time_as_string),
        "time-as-float-seconds": Patch(answer=_time_as_float_seconds),
        "time-beyond-int64": Patch(answer=_start_time_unsigned_sentinel),
        "time-negative-sentinel": Patch(answer=_end_time_negative_sentinel),
        "metadata-stamped": Patch(engine=_StampsMetadata),
        "metadata-as-pairs": Patch(answer=_metadata_as_pairs),
        "empty-metadata-omitted": Patch(answer=_empty_metadata_omitted),
        "reason-null": Patch(answer=_reason_null),
        "created-time-reset": Patch(engine=_ResetsCreatedTime),
        "metadata-cleared": Patch(engine=_ClearsMetadata),
        "metadata-stamped-when-room": Patch(engine=_StampsMetadataWhenRoom),
        "metadata-utf8-double-encoded": Patch(answer=_metadata_double_encoded),
    }
)
