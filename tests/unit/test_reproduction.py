"""A failure carries what a person needs to see it again: the placeholder of its credential's role,
the session that yields a nonce (never the nonce), the state the execution must be in, and a replay
record that survives the JSON report."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from retry_contract.cdf_client import CdfClient
from retry_contract.credentials import StaticToken
from retry_contract.exchange import Credential, Exchange, Expectation, credential_of
from retry_contract.fixture_values import SUITE_WORKFLOW
from retry_contract.reports.reproduction import (
    INVALID_TOKEN,
    NONCE_FIELD,
    NonceUse,
    Precondition,
    ReplayRecord,
    RunFacts,
    compact,
    curl,
    expand,
    record,
    reproduce,
)
from retry_contract.request_forms import SDK
from retry_contract.secrets_registry import SecretRegistry

WRITE_TOKEN = "write-token-5d1c0e9a"
READONLY_TOKEN = "readonly-token-7b2f4a61"
MADE_UP_TOKEN = "unknown-c0ffee1234567890"
NONCE = "issued-nonce-3e8d5b7c"
EXECUTION = "5f0c4a8e-1b2d-4c3e-9f60-7a8b9c0d1e2f"
URL = f"http://127.0.0.1:9/api/v1/projects/contract-test/workflows/executions/{EXECUTION}/retry"
REFUSED = Expectation("AUTH-403", frozenset({403}), "read-only token")
FAILED_READING: dict[str, Any] = {
    "id": EXECUTION,
    "workflowExternalId": "retry-contract-0a1b2c3d-simple",
    "version": "1",
    "status": "FAILED",
    "metadata": {"owner": "Åsa"},
    "input": {"batch": 7},
    "executedTasks": [
        {"id": "a1", "externalId": "step", "status": "FAILED_WITH_TERMINAL_ERROR", "startTime": 1},
        {"id": "a0", "externalId": "done", "status": "COMPLETED", "startTime": 0},
    ],
}
FACTS = RunFacts(project="contract-test", seed=7, embedded_mock=True, mock_defects=("readonly-can-retry",))


@pytest.fixture
def secrets() -> SecretRegistry:
    registry = SecretRegistry()
    for secret in (WRITE_TOKEN, READONLY_TOKEN, MADE_UP_TOKEN, NONCE):
        registry.add(secret)
    return registry


def retry(
    token: str | None,
    credential: Credential,
    *,
    nonce: str = NONCE,
    reading: dict[str, Any] | None = FAILED_READING,
    nonce_spent: bool = False,
) -> Exchange:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return Exchange(
        "POST",
        URL,
        headers,
        json.dumps({"authentication": {"nonce": nonce}}).encode(),
        200,
        expectation=REFUSED,
        execution_id=EXECUTION,
        credential=credential,
        reading=reading,
        nonce_spent=nonce_spent,
    )


def test_the_readonly_request_names_the_readonly_token(secrets: SecretRegistry) -> None:
    command = curl(retry(READONLY_TOKEN, Credential.READONLY), secrets)
    assert "Bearer $CDF_READONLY_TOKEN" in command
    assert "$CDF_TOKEN" not in command and READONLY_TOKEN not in command


def test_the_unknown_token_request_carries_a_made_up_token_only(secrets: SecretRegistry) -> None:
    command = curl(retry(MADE_UP_TOKEN, Credential.UNKNOWN_TOKEN), secrets)
    assert f"Bearer {INVALID_TOKEN}" in command
    assert MADE_UP_TOKEN not in command and "$CDF_TOKEN" not in command and "[REDACTED]" not in command


def test_a_request_without_credentials_has_no_authorization_header(secrets: SecretRegistry) -> None:
    assert "authorization" not in curl(retry(None, Credential.NONE), secrets).lower()


def test_a_literal_authorization_header_is_shown_as_sent(secrets: SecretRegistry) -> None:
    exchange = retry(None, Credential.OTHER)
    exchange.request_headers = {**exchange.request_headers, "authorization": "Basic dXNlcjpwYXNzd29yZA=="}
    assert "authorization: Basic dXNlcjpwYXNzd29yZA==" in curl(exchange, secrets)


def test_a_nonce_comes_with_its_session_recipe_and_never_itself(secrets: SecretRegistry) -> None:
    reproduction = reproduce(retry(WRITE_TOKEN, Credential.WRITE), "AUTH-403", 1, FACTS, secrets)
    text = "\n".join(reproduction.steps)
    assert NONCE not in text and WRITE_TOKEN not in text and "[REDACTED]" not in text
    session = next(step for step in reproduction.steps if step.startswith("Nonce:"))
    assert "/api/v1/projects/contract-test/sessions" in session
    assert "Bearer $CDF_TOKEN" in session and '"tokenExchange": true' in session
    assert NONCE_FIELD in session and "jq -r '.items[0].nonce'" in session
    assert '\\"nonce\\": \\"$NONCE\\"' in reproduction.curl
    assert reproduction.record.nonce is NonceUse.FRESH
    assert reproduction.record.body == {"authentication": {"nonce": "$NONCE"}}


def test_a_reused_nonce_is_spent_once_before_the_request(secrets: SecretRegistry) -> None:
    exchange = retry(WRITE_TOKEN, Credential.WRITE, nonce_spent=True)
    reproduction = reproduce(exchange, "NONCE-REUSE", 2, FACTS, secrets)
    assert reproduction.record.nonce is NonceUse.SPENT
    assert any(step.startswith("Spend that nonce once first") for step in reproduction.steps)


def test_a_nonce_no_session_issued_is_shown_as_it_was(secrets: SecretRegistry) -> None:
    exchange = retry(WRITE_TOKEN, Credential.WRITE, nonce="forged-never-issued")
    reproduction = reproduce(exchange, "BODY-NONCE", 1, FACTS, secrets)
    assert "forged-never-issued" in reproduction.curl and "$NONCE" not in reproduction.curl
    assert reproduction.record.nonce is None
    assert not any(step.startswith("Nonce:") for step in reproduction.steps)


def test_client_credentials_get_placeholders_in_the_session_request(secrets: SecretRegistry) -> None:
    facts = RunFacts(
        project="p",
        seed=1,
        session_item={"clientId": "client-4", "clientSecret": "client-secret-value-9"},
        client_credentials=True,
    )
    steps = reproduce(retry(WRITE_TOKEN, Credential.WRITE), "AUTH-403", 1, facts, secrets).steps
    text = "\n".join(steps)
    assert "client-secret-value-9" not in text and "client-4" not in text
    assert '\\"clientSecret\\": \\"$CDF_CLIENT_SECRET\\"' in text
    assert "$CDF_TOKEN_URL" in text


def test_the_precondition_is_stated_from_the_reading(secrets: SecretRegistry) -> None:
    reproduction = reproduce(retry(READONLY_TOKEN, Credential.READONLY), "AUTH-403", 3, FACTS, secrets)
    assert reproduction.precondition == (
        "an execution of workflow retry-contract-0a1b2c3d-simple version '1' (the suite's fixture of one "
        "asynchronous function task) in status FAILED, whose tasks a retry must run again are: step "
        "(FAILED_WITH_TERMINAL_ERROR); run with 1 metadata pairs, non-ASCII; run with an input"
    )
    assert reproduction.steps[0] == f"Precondition: {reproduction.precondition}."
    # The execution the run used is gone: the reader puts the one they created in its place.
    assert "/executions/${EXECUTION_ID}/retry" in reproduction.curl and EXECUTION not in reproduction.curl
    assert "Expected: AUTH-403: status 403 (read-only token)." in reproduction.steps


def test_a_before_reading_is_the_precondition_and_an_unknown_id_says_so(secrets: SecretRegistry) -> None:
    running = retry(WRITE_TOKEN, Credential.WRITE, reading=None)
    running.before = {**FAILED_READING, "status": "RUNNING", "executedTasks": []}
    assert Precondition.of(running).status == "RUNNING"
    assert "in status RUNNING, an attempt still in progress" in Precondition.of(running).describe()
    unknown = retry(WRITE_TOKEN, Credential.WRITE, reading=None)
    precondition = Precondition.of(unknown)
    assert not precondition.exists
    assert precondition.describe().startswith("no execution has the id in the path")
    # The id named no execution: it is part of the reproduction as it was.
    assert EXECUTION in reproduce(unknown, "STATE-404", 1, FACTS, secrets).curl


def test_an_embedded_mock_run_says_how_to_see_it_again(secrets: SecretRegistry) -> None:
    steps = reproduce(retry(READONLY_TOKEN, Credential.READONLY), "AUTH-403", 4, FACTS, secrets).steps
    assert steps[-1].startswith("The target was the run's embedded mock; its port is gone with it.")
    assert "`retry-contract run --seed 7 --mock-defect readonly-can-retry`" in steps[-1]
    assert "--failure 4 --mock-defect readonly-can-retry`" in steps[-1]
    real = RunFacts(project="contract-test", seed=7)
    assert not any(
        "gone" in step
        for step in reproduce(retry(READONLY_TOKEN, Credential.READONLY), "AUTH-403", 4, real, secrets).steps
    )


def test_a_generated_workflow_tail_and_version_are_recorded_for_the_replay() -> None:
    exchange = retry(WRITE_TOKEN, Credential.WRITE, reading=None)
    workflow = "retry-contract-0a1b2c3d-a b/c%d-ü 😀-simple"
    exchange.before = {**FAILED_READING, "workflowExternalId": workflow, "version": "v 1/2%3"}
    precondition = Precondition.from_json(json.loads(json.dumps(Precondition.of(exchange).to_json())))
    assert (precondition.fixture, precondition.version) == ("simple", "v 1/2%3")
    match = SUITE_WORKFLOW.match(workflow)
    assert match is not None and match.group("tail") == "a b/c%d-ü 😀"
    assert "retry-contract-0a1b2c3d-a b/c%d-ü 😀-simple version 'v 1/2%3'" in precondition.describe()


def test_the_replay_record_round_trips_through_json(secrets: SecretRegistry) -> None:
    exchange = retry(READONLY_TOKEN, Credential.READONLY, nonce_spent=True)
    exchange.request_form = "charset"
    original = record(exchange, "AUTH-403", 5, FACTS, secrets)
    written = secrets.redact(json.dumps(original.to_json(secrets)))
    assert NONCE not in written and READONLY_TOKEN not in written
    loaded = ReplayRecord.from_json(json.loads(written))
    assert loaded == original
    assert loaded.credential == "readonly" and loaded.request_form == "charset"
    assert loaded.path == f"/api/v1/projects/contract-test/workflows/executions/{EXECUTION}/retry"
    assert (loaded.project, loaded.execution_id) == ("contract-test", EXECUTION)
    assert loaded.expectation == REFUSED and loaded.precondition.status == "FAILED"
    assert loaded.body_with_nonce("fresh-one") == {"authentication": {"nonce": "fresh-one"}}
    assert loaded.run["seed"] == 7 and loaded.run["mock_defects"] == ["readonly-can-retry"]


def test_long_values_are_recorded_as_a_repeated_unit(secrets: SecretRegistry) -> None:
    long_id = ("059edaa4-a17a-4102-910e-2c3591500cce" * 30_000)[: 1024 * 1024]
    exchange = retry(WRITE_TOKEN, Credential.WRITE, reading=None)
    exchange.url = URL.replace(EXECUTION, long_id)
    written = json.dumps(record(exchange, "PATH-UUID", 1, FACTS, secrets).to_json(secrets))
    assert len(written) < 10_000
    assert ReplayRecord.from_json(json.loads(written)).execution_id == long_id
    steps = reproduce(exchange, "PATH-UUID", 1, FACTS, secrets).steps
    assert any(
        step.startswith("The path's id is too long to show: export EXECUTION_ID=\"$(python3")
        for step in steps
    )
    no_repetition = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(5000))
    with pytest.raises(ValueError, match="5000 characters was cut"):
        expand(compact(no_repetition, secrets))


def test_a_record_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not a replay record"):
        ReplayRecord.from_json({"failure": 1})


def test_the_client_tags_each_request_with_its_role_form_reading_and_nonce_use() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=FAILED_READING)
        return httpx.Response(200, json={"id": EXECUTION})

    registry = SecretRegistry()
    client = CdfClient(
        "http://target",
        "contract-test",
        StaticToken(WRITE_TOKEN),
        registry,
        transport=httpx.MockTransport(answer),
    )
    client.name_credential(READONLY_TOKEN, Credential.READONLY)
    client.detailed(EXECUTION)
    url, body = client.retry_url(EXECUTION), {"authentication": {"nonce": NONCE}}
    first = client.send("POST", url, json_body=body, execution_id=EXECUTION, form=SDK)
    again = client.send("POST", url, json_body=body, token=READONLY_TOKEN)
    bare = client.send("POST", url, json_body=body, token=None)
    basic = client.send("POST", url, json_body=body, token=None, headers={"Authorization": "Basic eDp5"})
    assert (first.credential, again.credential, bare.credential, basic.credential) == (
        "write",
        "readonly",
        "none",
        "other",
    )
    assert (first.request_form, again.request_form) == ("sdk", "plain")
    assert first.reading == FAILED_READING and again.reading is None
    assert (first.nonce_spent, again.nonce_spent) == (False, True)
    client.close()


def test_fuzzed_requests_are_tagged_from_their_header() -> None:
    ours = {f"Bearer {WRITE_TOKEN}"}
    assert credential_of(f"Bearer {WRITE_TOKEN}", ours) is Credential.WRITE
    assert credential_of(None, ours) is Credential.NONE
    assert credential_of("Bearer something-else", ours) is Credential.OTHER


def test_an_id_made_from_the_execution_s_keeps_what_was_added(secrets: SecretRegistry) -> None:
    exchange = retry(WRITE_TOKEN, Credential.WRITE)
    exchange.url, exchange.execution_id = URL.replace(EXECUTION, EXECUTION + "0"), EXECUTION + "0"
    reproduction = reproduce(exchange, "PATH-UUID", 1, FACTS, secrets)
    assert reproduction.precondition.endswith("; the path's id is its id followed by '0'")
    assert "/executions/${EXECUTION_ID}0/retry" in reproduction.curl
    assert f"(the run used {EXECUTION}, since cancelled by its cleanup)" in reproduction.steps[1]
    loaded = ReplayRecord.from_json(json.loads(json.dumps(reproduction.record.to_json(secrets))))
    assert (loaded.precondition.id_prefix, loaded.precondition.id_suffix) == ("", "0")
