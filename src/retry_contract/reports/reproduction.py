"""What a person reads to see a failure again: the steps, in order.

The state the execution must be in, the script that recreates it and sends the request
(`curl_script`), the session that yields a fresh nonce (never the nonce), the credential of the
request's role as a placeholder, the request as curl, what was expected, and where the target was
when it is gone with the run. The machine-readable record beside it is `replay_record`.
"""

from __future__ import annotations

from dataclasses import dataclass

from retry_contract.exchange import RESENT_NOTE, Credential, Exchange
from retry_contract.reports.curl_script import (
    curl,
    long_id_command,
    long_id_request,
    script,
    session_curl,
)
from retry_contract.reports.replay_record import (
    EXECUTION_VARIABLE,
    NONCE_FIELD,
    READONLY_TOKEN_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    NonceUse,
    ReplayRecord,
    RunFacts,
    record,
    role_of,
)
from retry_contract.secrets_registry import SecretRegistry


@dataclass(frozen=True)
class Reproduction:
    """A failure's reproduction: the request's curl, the precondition, every step in order, and the
    bash script that recreates the precondition and sends the request."""

    curl: str
    precondition: str
    steps: tuple[str, ...]
    record: ReplayRecord
    script: str


def _credential_step(role: Credential, facts: RunFacts) -> str:
    if role is Credential.READONLY:
        return (
            f"Credential: {READONLY_TOKEN_PLACEHOLDER}, a valid token for project {facts.project} "
            "without workflowOrchestrationACL:WRITE."
        )
    if role is Credential.UNKNOWN_TOKEN:
        return "Credential: a made-up bearer token that no identity provider issued (as shown)."
    if role is Credential.NONE:
        return "Credential: none; the request has no Authorization header."
    if role is Credential.OTHER:
        return "Credential: the Authorization header exactly as shown."
    where = (
        " (with client credentials: an access token fetched from $CDF_TOKEN_URL with grant_type "
        "client_credentials)"
        if facts.client_credentials
        else ""
    )
    return (
        f"Credential: {TOKEN_PLACEHOLDER}, a token of the main credentials with "
        f"workflowOrchestrationACL:READ+WRITE in project {facts.project}{where}."
    )


def _rerun_note(failure: int, facts: RunFacts) -> str | None:
    """Where the target was gone with the run's process: how to get it back."""
    if facts.embedded_mock:
        options = [f"--seed {facts.seed}"]
        options += [f"--mock-defect {name}" for name in facts.mock_defects]
        options += [f"--mock-profile {facts.mock_profile}"] if facts.mock_profile != "classic" else []
        options += ["--no-fuzz"] if not facts.fuzz else []
        options += [f"--max-examples {facts.max_examples}"] if facts.max_examples else []
        return (
            "The target was the run's embedded mock; its port is gone with it. See it again with "
            f"`retry-contract run {' '.join(options)}` or "
            f"`retry-contract replay <JSON report> --failure {failure}` (a fresh mock with the same "
            "defects and profile)."
        )
    if facts.app is not None:
        return (
            f"The target was {facts.app} served in-process on a port gone with the run. See it again with "
            f"`retry-contract run --app {facts.app} --project {facts.project} --seed {facts.seed}`."
        )
    return None


def _execution_of(exchange: Exchange) -> str | None:
    """The id of the execution whose state the precondition describes."""
    reading = exchange.before if exchange.before is not None else exchange.reading
    known = reading.get("id") if reading is not None else None
    return known if isinstance(known, str) else exchange.execution_id


def reproduce(
    exchange: Exchange,
    requirement: str,
    failure: int,
    facts: RunFacts,
    secrets: SecretRegistry,
    judge: str = "",
) -> Reproduction:
    """Everything a person needs to see `exchange`'s failure of `requirement` (found by `judge`)
    again, redacted."""
    replay = record(exchange, requirement, failure, facts, secrets, judge)
    precondition = replay.precondition
    if replay.sequence is not None:
        return _reproduce_sequence(exchange, replay, failure, facts, secrets)
    steps = [f"Precondition: {precondition.describe()}."]
    long_id = long_id_command(replay.execution_id, secrets) if not precondition.exists else None
    if precondition.exists and precondition.tasks is not None:
        steps.append(
            "Create such an execution with the failure's script (`reproduce_script` in the JSON report: "
            "bash with curl and jq, credentials from the environment, CDF_BASE_URL for another server): "
            f"it creates workflow {precondition.workflow_external_id} and its version with the recorded "
            f"task graph, runs it with a session's nonce, ends {len(precondition.drive)} task attempts "
            "through task update as the run's execution ended them, waits for status "
            f"{precondition.status} and exports {EXECUTION_VARIABLE}, then sends the request below "
            f"(the run used {_execution_of(exchange)}, since cancelled by its cleanup)."
        )
    elif precondition.exists:
        steps.append(
            f"Create such an execution through the API and `export {EXECUTION_VARIABLE}=<its id>` "
            f"(the report has no task graph of its workflow; the run used {_execution_of(exchange)}, "
            "since cancelled by its cleanup)."
        )
    elif long_id is not None:
        steps.append(f"The path's id is too long to show: {long_id}")
    if replay.nonce is not None:
        steps.append(
            f"Nonce: create a session of the same write credentials; the nonce is {NONCE_FIELD} of "
            f"its answer: {session_curl(exchange, facts)}"
        )
    if replay.nonce is NonceUse.SPENT:
        steps.append(
            "Spend that nonce once first: a retry of another execution in status FAILED with it, "
            "answered 200; the request below uses it again."
        )
    if exchange.maybe_replayed:
        steps.append(
            f"The run's request was {RESENT_NOTE}"
            + (
                "; a reading showed it had. Retry the execution once first (answered 200): the request "
                "below met it already retried."
                if exchange.first_attempt_took_effect
                else "."
            )
        )
    steps.append(_credential_step(role_of(exchange), facts))
    command = curl(exchange, secrets, execution_placeholder=precondition.exists or long_id is not None)
    # A megabyte of id: no curl argument holds it (see `long_id_request`); the step says how.
    sender = long_id_request(exchange, secrets) if long_id is not None else None
    steps.append(f"Send: {command}" if sender is None else f"Send (with BASE_URL set):\n{sender}")
    if exchange.expectation is not None:
        statuses = ", ".join(str(s) for s in sorted(exchange.expectation.statuses))
        note = f" ({exchange.expectation.note})" if exchange.expectation.note else ""
        steps.append(f"Expected: {exchange.expectation.requirement}: status {statuses}{note}.")
    if (rerun := _rerun_note(failure, facts)) is not None:
        steps.append(rerun)
    return Reproduction(
        curl=command,
        precondition=secrets.redact(precondition.describe()),
        steps=tuple(secrets.redact(step) for step in steps),
        record=replay,
        script=script(exchange, replay, facts, secrets),
    )


def _reproduce_sequence(
    exchange: Exchange, replay: ReplayRecord, failure: int, facts: RunFacts, secrets: SecretRegistry
) -> Reproduction:
    """A failure found by a generated sequence: the sequence, shrunk, step by step; then the request."""
    sequence = replay.sequence or {}
    shrunk_from = sequence.get("shrunk_from_steps")
    steps = [
        f"Generated operation sequence (seed {sequence.get('seed')}"
        + (f", shrunk from {shrunk_from} steps" if shrunk_from else "")
        + "): create a workflow version of this task graph, run it, then apply the steps in order "
        f"(`retry-contract replay <JSON report> --failure {failure}` does all of it):",
        *(f"  {step}" for step in sequence.get("steps", [])),
    ]
    command = curl(exchange, secrets, execution_placeholder=True)
    steps.append(f"The failing request, {exchange.origin}: {command}")
    if exchange.expectation is not None:
        statuses = ", ".join(str(s) for s in sorted(exchange.expectation.statuses))
        steps.append(f"Expected: {exchange.expectation.requirement}: status {statuses}.")
    if (rerun := _rerun_note(failure, facts)) is not None:
        steps.append(rerun)
    return Reproduction(
        curl=command,
        precondition=secrets.redact(replay.precondition.describe()),
        steps=tuple(secrets.redact(step) for step in steps),
        record=replay,
        script=script(exchange, replay, facts, secrets),
    )
