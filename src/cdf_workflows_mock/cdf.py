"""The facts of Cognite Data Fusion's workflow API that the mock implements, as CDF documents them.

Sources: the public API documentation of *Retry workflow execution* (the execution statuses; the
identifier and metadata limits: "Keys have a maximum length of 32 characters, values a maximum of 255,
and there can be a maximum of 10 key-value pairs"), the neighbouring endpoints' documentation and the
official Python SDK (task statuses, task types, retries 0-10 default 3, timeout default 3600 s,
capabilities). They are written here, not taken from a contract-testing suite, on purpose: a fake of
CDF that read its facts from the suite judging it would agree with the suite's mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    TERMINATED = "TERMINATED"


class TaskStatus(StrEnum):
    # An attempt that is queued but not started yet (listed by Cognite's own OpenAPI document).
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    FAILED_WITH_TERMINAL_ERROR = "FAILED_WITH_TERMINAL_ERROR"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    TIMED_OUT = "TIMED_OUT"
    SKIPPED = "SKIPPED"


class OnFailure(StrEnum):
    ABORT_WORKFLOW = "abortWorkflow"
    SKIP_TASK = "skipTask"


class TaskType(StrEnum):
    FUNCTION = "function"
    TRANSFORMATION = "transformation"
    CDF = "cdf"
    DYNAMIC = "dynamic"
    SUBWORKFLOW = "subworkflow"
    SIMULATION = "simulation"


# "restarts a previously failed, timed out, or terminated workflow execution".
RETRYABLE_EXECUTION_STATUSES = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.TERMINATED}
)
# "Only retries tasks that have stopped in a terminal state such as CANCELED, FAILED,
# FAILED_WITH_TERMINAL_ERROR, and TIMED_OUT".
RETRYABLE_TASK_STATUSES = frozenset(
    {TaskStatus.CANCELED, TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR, TaskStatus.TIMED_OUT}
)
# A task whose latest attempt ended in one of these has succeeded (or was skipped) and never runs again.
COMPLETED_TASK_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.COMPLETED_WITH_ERRORS, TaskStatus.SKIPPED}
)
# A task attempt that has not ended.
PENDING_TASK_STATUSES = frozenset({TaskStatus.SCHEDULED, TaskStatus.IN_PROGRESS})
# Statuses a client may set through `POST /workflows/tasks/{taskId}/update`.
UPDATABLE_TASK_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR}
)
# Tasks that hold other tasks: their nested tasks are retried, never the container itself.
CONTAINER_TASK_TYPES = frozenset({TaskType.SUBWORKFLOW, TaskType.DYNAMIC})

# Bounds of a task definition.
TASK_RETRIES_MAX = 10
TASK_RETRIES_DEFAULT = 3
TASK_TIMEOUT_DEFAULT_SECONDS = 3600

# Capabilities, as CDF names them in a token's groups.
WORKFLOW_READ = "workflowOrchestrationACL:READ"
WORKFLOW_WRITE = "workflowOrchestrationACL:WRITE"
SESSIONS_CREATE = "sessionsACL:CREATE"
# Listing and reading sessions, and revoking them (Cognite's OpenAPI document: `sessionsAcl:LIST`, `:DELETE`).
SESSIONS_LIST = "sessionsACL:LIST"
SESSIONS_DELETE = "sessionsACL:DELETE"

# workflowExternalId, version and other identifiers: at most 255 characters.
IDENTIFIER_MAX_LENGTH = 255


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    max_pairs: int
    max_key_length: int
    max_value_length: int


# An execution's metadata: at most 10 pairs, keys of at most 32 characters, values of at most 255.
METADATA_LIMITS = MetadataLimits(max_pairs=10, max_key_length=32, max_value_length=255)
