"""Vocabulary of the workflow API for the suite: provisioning, the client, the checks, the scenarios,
exploration, replay and the reports.

Statuses are defined here once for the suite. The mock does not use this module: it states the same
facts itself (`cdf_workflows_mock.cdf`), so that a mistake here is not silently shared by the fake the
suite is tested against, and a self-test (tests/mock/test_mock_package.py) checks that the two agree.

Numeric limits of the retry contract live in the spec and are read through
:mod:`retry_contract.contract`. What is here is mostly what the spec of the retry endpoint does not
describe (task statuses, task types and bounds belong to the neighbouring endpoints); the execution
statuses, which its response schema lists too (`enum`, `x-retryable`), sit beside them.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    TERMINATED = "TERMINATED"


class TaskStatus(StrEnum):
    # Queued but not started yet (Cognite's own OpenAPI document, upstream/README.md).
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


# STATE-RETRYABLE: the execution states a retry may start from.
RETRYABLE_EXECUTION_STATUSES = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.TERMINATED}
)
# SEM-TARGETED: a task whose latest attempt ended in one of these gets a new attempt.
RETRYABLE_TASK_STATUSES = frozenset(
    {TaskStatus.CANCELED, TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR, TaskStatus.TIMED_OUT}
)
# SEM-COMPLETED: a task whose latest attempt ended in one of these is never run again.
COMPLETED_TASK_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.COMPLETED_WITH_ERRORS, TaskStatus.SKIPPED}
)
# A task attempt that has not ended: what a retry's new attempt reads when first seen (SEM-TARGETED).
PENDING_TASK_STATUSES = frozenset({TaskStatus.SCHEDULED, TaskStatus.IN_PROGRESS})
# Statuses a client may set through `POST /workflows/tasks/{taskId}/update`.
UPDATABLE_TASK_STATUSES = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR}
)
CONTAINER_TASK_TYPES = frozenset({TaskType.SUBWORKFLOW, TaskType.DYNAMIC})

# Documented bounds of a task definition (workflow-model.md).
TASK_RETRIES_MAX = 10
TASK_RETRIES_DEFAULT = 3
TASK_TIMEOUT_DEFAULT_SECONDS = 3600

# Items of one `POST /workflows/delete` at most (Cognite's OpenAPI document: maxItems 100).
WORKFLOW_DELETE_MAX_ITEMS = 100

# Capabilities as CDF names them, as a token needs them (the mock names them too, in its own `cdf`).
WORKFLOW_READ = "workflowOrchestrationACL:READ"
WORKFLOW_WRITE = "workflowOrchestrationACL:WRITE"
SESSIONS_CREATE = "sessionsACL:CREATE"
