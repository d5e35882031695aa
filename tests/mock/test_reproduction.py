"""A failure carries what a person needs to see it again: the placeholder of its credential's role,
the session that yields a nonce (never the nonce), the state the execution must be in, and a replay
record that survives the JSON report."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdf_workflows_mock import EmbeddedMock, MockConfig
from retry_contract import execution_view
from retry_contract.cdf_client import CdfClient
from retry_contract.credentials import StaticToken
from retry_contract.exchange import Credential, Exchange, Expectation, credential_of
from retry_contract.fixture_values import SUITE_WORKFLOW
from retry_contract.provisioning import FixtureShape, Provisioner
from retry_contract.reports.curl_script import curl
from retry_contract.reports.replay_record import (
    INVALID_TOKEN,
    NONCE_FIELD,
    NonceUse,
    Precondition,
    ReplayRecord,
    RunFacts,
    compact,
    expand,
    record,
)
from retry_contract.reports.reproduction import reproduce
from retry_contract.request_forms import RAW_UTF8, SDK
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
    "workflowDefinition": {
        "tasks": [
            {"externalId": "done", "type": "function", "parameters": {"function": {"externalId": "f"}}},
            {"externalId": "step", "type": "function", "dependsOn": [{"externalId": "done"}]},
        ]
    },
    "executedTasks": [
        {
            "id": "a1",
            "externalId": "step",
            "status": "FAILED_WITH_TERMINAL_ERROR",
            "startTime": 1,
            "endTime": 2,
        },
        {"id": "a0", "externalId": "done", "status": "COMPLETED", "startTime": 0, "endTime": 1},
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
    assert "`retry-contract replay <JSON report> --failure 4` (a fresh mock with the same" in steps[-1]
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
        step.startswith("The path's id is too long to show: EXECUTION_ID=\"$(python3") for step in steps
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


def run_script(path: Path, base_url: str, write: str, readonly: str) -> tuple[Any, dict[str, Any]]:
    """A reproduction script run by bash against `base_url`, and the execution it created, read."""
    environment = {"PATH": os.environ["PATH"], "CDF_BASE_URL": base_url}
    environment |= {"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly}
    ran = subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=120, env=environment)
    assert ran.returncode == 0, ran.stderr
    created = re.search(r"created execution (\S+) in status FAILED", ran.stderr)
    assert created is not None, ran.stderr
    client = CdfClient(base_url, "contract-test", StaticToken(write), SecretRegistry())
    recreated = client.detailed(created.group(1))
    client.close()
    return ran, recreated


@pytest.mark.parametrize("profile", ["classic", "recorded"])
def test_the_script_drives_a_new_execution_of_every_task_shape_to_the_recorded_state(
    profile: str, tmp_path: Path
) -> None:
    """The shapes fixture's history (a dynamic task's output, nested tasks, a task at its retries
    limit failing twice) recorded from one server and driven again on another by the script alone."""
    write, readonly = "shapes-write-token-5a6b", "shapes-readonly-token-7c8d"
    registry = SecretRegistry()
    with EmbeddedMock(MockConfig.with_tokens("contract-test", write, readonly, profile=profile)) as first:
        client = CdfClient(first.base_url, "contract-test", StaticToken(write), registry)
        recorded = client.detailed(Provisioner(client).shapes_execution())
        client.close()
    exchange = retry(readonly, Credential.READONLY, reading=recorded)
    exchange.url = URL.replace(EXECUTION, str(recorded["id"]))
    reproduction = reproduce(exchange, "AUTH-403", 1, FACTS, registry)
    assert len(reproduction.record.precondition.drive) == 7
    path = tmp_path / "reproduce.sh"
    path.write_text(reproduction.script)
    with EmbeddedMock(MockConfig.with_tokens("contract-test", write, readonly, profile=profile)) as second:
        ran, recreated = run_script(path, second.base_url, write, readonly)
    assert next(line for line in ran.stdout.splitlines() if line.startswith("HTTP/")).split()[1] == "403"

    def shape(reading: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": reading["status"],
            "attempts": execution_view.attempt_counts(reading),
            "latest": {task: a["status"] for task, a in execution_view.latest(reading).items()},
        }

    assert shape(recreated) == shape(recorded)


def test_values_that_shells_and_json_treat_specially_reach_the_server_as_they_were(tmp_path: Path) -> None:
    """Quotes, `$`, backticks, backslashes and non-ASCII in the workflow's name, metadata and input
    arrive unchanged: the script JSON-encodes and shell-quotes them, never splices them by hand."""
    write, readonly = "odd-write-token-9e0f", "odd-readonly-token-1a2b"
    odd = 'it\'s "$HOME" `id` \\n ü 😀 $(echo x)'
    registry = SecretRegistry()
    with EmbeddedMock(MockConfig.with_tokens("contract-test", write, readonly)) as first:
        client = CdfClient(first.base_url, "contract-test", StaticToken(write), registry)
        provisioner = Provisioner(client)
        shape = FixtureShape(
            "odd", {"k'$": odd}, {"text": odd}, RAW_UTF8, workflow_tail="a'b\"c$d", version="v'1"
        )
        recorded = client.detailed(provisioner.failed_execution(shape))
        client.close()
    exchange = retry(readonly, Credential.READONLY, reading=recorded)
    reproduction = reproduce(exchange, "AUTH-403", 1, FACTS, registry)
    path = tmp_path / "reproduce.sh"
    path.write_text(reproduction.script)
    with EmbeddedMock(MockConfig.with_tokens("contract-test", write, readonly)) as second:
        ran, recreated = run_script(path, second.base_url, write, readonly)
    assert next(line for line in ran.stdout.splitlines() if line.startswith("HTTP/")).split()[1] == "403"
    for key in ("workflowExternalId", "version", "metadata", "input"):
        assert recreated[key] == recorded[key]
    assert recreated["metadata"] == {"k'$": odd}


def test_a_script_of_client_credentials_takes_them_from_the_environment(secrets: SecretRegistry) -> None:
    facts = RunFacts(
        project="p",
        seed=1,
        session_item={"clientId": "client-4", "clientSecret": "client-secret-value-9"},
        client_credentials=True,
    )
    script = reproduce(retry(WRITE_TOKEN, Credential.WRITE), "AUTH-403", 1, facts, secrets).script
    assert "client-secret-value-9" not in script and "client-4" not in script
    assert WRITE_TOKEN not in script and NONCE not in script and "[REDACTED]" not in script
    [line] = [line for line in script.splitlines() if line.startswith("SESSION_BODY=")]
    environment = {"PATH": os.environ["PATH"], "CDF_CLIENT_ID": "id \"'$x", "CDF_CLIENT_SECRET": "s\\`y`"}
    body = subprocess.run(
        ["bash", "-c", f'{line}\nprintf "%s" "$SESSION_BODY"'],
        capture_output=True,
        text=True,
        timeout=30,
        env=environment,
        check=True,
    ).stdout
    assert json.loads(body) == {"items": [{"clientId": "id \"'$x", "clientSecret": "s\\`y`"}]}


def test_the_script_retries_where_the_recorded_execution_had_failed_in_between(tmp_path: Path) -> None:
    """A pooled execution: failed, retried, failed again; the script retries it where the run did."""
    write, readonly = "pool-write-token-2b3c", "pool-readonly-token-4d5e"
    registry = SecretRegistry()
    with EmbeddedMock(MockConfig.with_tokens("contract-test", write, readonly)) as first:
        client = CdfClient(first.base_url, "contract-test", StaticToken(write), registry)
        provisioner = Provisioner(client)
        execution_id = provisioner.failed_execution()
        client.send(
            "POST",
            client.retry_url(execution_id),
            json_body={"authentication": {"nonce": client.create_nonce()}},
        )
        recorded = provisioner.refailed(execution_id)
        client.close()
    assert recorded is not None
    exchange = retry(readonly, Credential.READONLY, reading=recorded)
    reproduction = reproduce(exchange, "AUTH-403", 1, FACTS, registry)
    assert [(u.task, u.retry_first) for u in reproduction.record.precondition.drive] == [
        ("step", False),
        ("step", True),
    ]
    path = tmp_path / "reproduce.sh"
    path.write_text(reproduction.script)
    with EmbeddedMock(MockConfig.with_tokens("contract-test", write, readonly)) as second:
        _, recreated = run_script(path, second.base_url, write, readonly)
    assert execution_view.attempt_counts(recreated) == execution_view.attempt_counts(recorded) == {"step": 2}


def test_a_megabyte_of_path_id_is_sent_by_the_script_as_recorded(tmp_path: Path) -> None:
    long_id = ("059edaa4-a17a-4102-910e-2c3591500cce" * 30_000)[: 1024 * 1024]
    registry = SecretRegistry()
    registry.add(NONCE)
    exchange = retry(WRITE_TOKEN, Credential.WRITE, reading=None)
    exchange.url, exchange.execution_id = URL.replace(EXECUTION, long_id), long_id
    script = reproduce(exchange, "ROBUST", 1, FACTS, registry).script
    assert len(script) < 10_000 and long_id not in script
    path = tmp_path / "reproduce.sh"
    path.write_text(script)
    write, readonly = "long-write-token-6f7a", "long-readonly-token-8b9c"

    def answer(defects: frozenset[str]) -> str:
        config = MockConfig.with_tokens("contract-test", write, readonly, defects=defects)
        with EmbeddedMock(config) as mock:
            environment = {"PATH": os.environ["PATH"], "CDF_BASE_URL": mock.base_url}
            environment |= {"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly}
            ran = subprocess.run(
                ["bash", str(path)], capture_output=True, text=True, timeout=120, env=environment
            )
        assert ran.returncode == 0, ran.stderr
        return next(line for line in ran.stdout.splitlines() if line.startswith("HTTP/")).split()[1]

    assert answer(frozenset({"long-path-id-500"})) == "500"
    assert answer(frozenset()) in {"400", "404", "414"}
