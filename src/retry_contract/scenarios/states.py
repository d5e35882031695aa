"""STATE-404 and STATE-RETRYABLE: a retry of each state, and of an execution that does not exist."""

from __future__ import annotations

import uuid

from retry_contract.exchange import Expectation
from retry_contract.provisioning import TIMEOUT_FIXTURE_SECONDS, TIMEOUT_GRACE_SECONDS
from retry_contract.scenarios.context import ScenarioContext

NOT_FOUND = Expectation("STATE-404", frozenset({404}), "well-formed id of no execution")
REFUSED = Expectation("STATE-RETRYABLE", frozenset({400, 409}), "execution not in a retryable state")
ACCEPTED = Expectation("STATE-RETRYABLE", frozenset({200}), "execution in a retryable state")


def unknown_execution(ctx: ScenarioContext) -> None:
    # uuid4 from a fixed seed would collide across runs on a shared project; a fresh one cannot.
    ctx.retry(str(uuid.uuid4()), expect=NOT_FOUND, origin="STATE-404 unknown execution, valid nonce")


def non_retryable_states(ctx: ScenarioContext) -> None:
    for label, make in (
        ("RUNNING", ctx.provisioner.running_execution),
        ("COMPLETED", ctx.provisioner.completed_execution),
    ):
        ctx.retry(make(), expect=REFUSED, origin=f"STATE-RETRYABLE retry of a {label} execution")


def _retry_in_state(ctx: ScenarioContext, label: str, execution_id: str) -> None:
    ctx.retry(execution_id, expect=ACCEPTED, origin=f"STATE-RETRYABLE retry of a {label} execution")


def retryable_states(ctx: ScenarioContext) -> None:
    _retry_in_state(ctx, "FAILED", ctx.provisioner.failed_execution())
    _retry_in_state(ctx, "TERMINATED", ctx.provisioner.terminated_execution())


def timed_out_state(ctx: ScenarioContext) -> None:
    """Judged last: the fixture started at the beginning of the run, so its timeout has passed during
    other work; only what is left of its grace is waited for."""
    execution_id = ctx.provisioner.timed_out_execution()
    if execution_id is None:
        ctx.judge.ledger.notes.append(
            "the execution whose task has a one-second timeout was not TIMED_OUT within "
            f"{TIMEOUT_FIXTURE_SECONDS + TIMEOUT_GRACE_SECONDS:g} s of its start: a retry of a TIMED_OUT "
            "execution was not judged"
        )
        return
    _retry_in_state(ctx, "TIMED_OUT", execution_id)


SCENARIOS = (unknown_execution, non_retryable_states, retryable_states)
# After fuzzing: they wait for the server, and the wait overlaps everything else this way.
LATE_SCENARIOS = (timed_out_state,)
