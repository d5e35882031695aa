"""`retry-contract replay`: one failure of a JSON report, sent again and judged again.

The execution the run used is gone (cancelled by cleanup, or with the embedded mock), so the failing
request alone would prove nothing. A replay recreates the precondition the report recorded — a fresh
execution in the same state, created through the real endpoints as the run's provisioning does — gets
a fresh nonce from a new session when the request carried one, sends the recorded request in its
recorded form with a credential of its recorded role, judges the answer with the run's judges, and
cleans up what it created. The answer: does the failed requirement hold now? Only on the report's own
target (`replay_target`) is that news about the failure; on another one it is news about that target.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from retry_contract import replay_target
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB, MIB
from retry_contract.cdf_client import CdfClient, ClientError
from retry_contract.checks import Judge
from retry_contract.credentials import READONLY_TOKEN_ENV, Credentials
from retry_contract.domain import ExecutionStatus
from retry_contract.errors import RetryContractError
from retry_contract.exchange import Credential, Exchange
from retry_contract.exploration import run_sequence
from retry_contract.fixture_values import PLAIN_VERSION, SUITE_WORKFLOW
from retry_contract.interrupts import signals_deferred
from retry_contract.provisioning import FixtureShape, Provisioner
from retry_contract.replay_target import ReplayTarget
from retry_contract.reports.replay_record import (
    INVALID_TOKEN,
    NonceUse,
    Precondition,
    ReplayRecord,
    request_form_named,
)
from retry_contract.request_forms import PLAIN, RAW_UTF8
from retry_contract.retry_readings import read_after
from retry_contract.run_settings import DEFAULT_FUNCTION_EXTERNAL_ID
from retry_contract.runner import MOCK_PROJECT, CouldNotRun, RunOptions, preflight, reach_target
from retry_contract.scenarios.context import JUDGE as SCENARIO_JUDGE
from retry_contract.scenarios.context import ScenarioContext
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.sequence_model import OperationSequence
from retry_contract.verdict import Ledger

JUDGE = "replay"


class ReplayError(RetryContractError):
    """The failure could not be replayed (bad report, unreachable target, refused credentials, a
    precondition that could not be recreated); the message is one line."""


@dataclass(frozen=True)
class ReportedFailure:
    number: int
    requirement: str
    message: str
    replay: Mapping[str, Any] | None


@dataclass(frozen=True)
class LoadedReport:
    failures: list[ReportedFailure]
    # The report's `target` (the base URL its run reached) and `project`, when it names them.
    target: str | None
    project: str | None


def load_report(path: Path) -> LoadedReport:
    """Every failure of a JSON report, in report order (the order of `--failure N`), and its target."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReplayError(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ReplayError(f"{path} is not JSON ({error})") from None
    rows = data.get("requirements") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ReplayError(f"{path} is not a retry-contract JSON report (no list of requirements)")
    found: list[ReportedFailure] = []
    for row in rows:
        for failure in row.get("failures") or []:
            if not isinstance(failure, dict):
                continue
            record = failure.get("replay")
            found.append(
                ReportedFailure(
                    number=len(found) + 1,
                    requirement=str(failure.get("requirement") or row.get("id")),
                    message=str(failure.get("message", "")),
                    replay=record if isinstance(record, dict) else None,
                )
            )
    assert isinstance(data, dict)
    target, project = data.get("target"), data.get("project")
    return LoadedReport(
        found,
        target if isinstance(target, str) else None,
        project if isinstance(project, str) else None,
    )


def report_target(report: LoadedReport, record: ReplayRecord) -> ReplayTarget | None:
    """Where the report's run saw the failure (see `replay_target.recorded`)."""
    return replay_target.recorded(record.run, report.target, report.project or MOCK_PROJECT)


def pick(failures: list[ReportedFailure], number: int, path: Path) -> ReplayRecord:
    """The replay record of failure `number` (1-based); out of range: an error listing them all."""
    if not failures:
        raise ReplayError(f"{path} has no failures to replay")
    if not 1 <= number <= len(failures):
        listed = ", ".join(f"{f.number} {f.requirement}" for f in failures)
        raise ReplayError(f"failure {number} is out of range: {path} has {len(failures)} failures ({listed})")
    chosen = failures[number - 1]
    if chosen.replay is None:
        raise ReplayError(
            f"failure {number} ({chosen.requirement}) has no request to replay "
            "(no exchange, or a report written before replay records)"
        )
    try:
        return ReplayRecord.from_json(chosen.replay)
    except ValueError as error:
        raise ReplayError(f"failure {number} of {path} cannot be replayed: {error}") from None


@dataclass(frozen=True)
class ReplayOptions:
    # Where the replay goes (an embedded mock is started for the replay only).
    target: ReplayTarget
    # Where the report's run saw the failure; None when the report does not say.
    report_target: ReplayTarget | None
    # For a server or an app: from the environment, as `run` takes them (the mock has its own).
    credentials: Credentials | None
    readonly_token: str | None = None
    function_external_id: str | None = None
    timeout: float = 30.0
    max_response_mib: int = DEFAULT_MAX_RESPONSE_MIB
    secrets: SecretRegistry = field(default_factory=SecretRegistry)


@dataclass(frozen=True)
class ReplayOutcome:
    requirement: str
    holds: bool
    # Why it still fails (the failed judgements, joined), empty when it holds.
    problem: str
    # The base URL the requests went to.
    target: str
    precondition: str
    request: str
    status: int | None
    # Why the requirement holds without a judgement (not at stake on this answer); empty when judged.
    note: str = ""
    cleanup_problems: tuple[str, ...] = ()
    # The report's target, described, when the replay went elsewhere (or the report did not say where
    # it ran): then the verdict is about this target only, never a fix of that one.
    elsewhere: str | None = None

    @property
    def verdict(self) -> str:
        note = f" ({self.note})" if self.note else ""
        if self.elsewhere is None:
            if self.holds:
                return f"{self.requirement} holds now{note}"
            return f"{self.requirement} still fails: {self.problem}"
        if self.holds:
            return (
                f"{self.requirement} does not reproduce here{note}; this says nothing about "
                f"{self.elsewhere}, where the report saw it fail"
            )
        return f"{self.requirement} reproduced elsewhere: {self.problem}"


def replay(record: ReplayRecord, options: ReplayOptions) -> ReplayOutcome:
    """Recreate the precondition on the target, send the request again, judge it, clean up."""
    registry = options.secrets
    target = options.target
    run_options = RunOptions(
        base_url=target.base_url,
        app=target.app,
        project=target.project,
        credentials=options.credentials,
        readonly_token=options.readonly_token,
        mock_defects=target.mock_defects,
        mock_profile=target.mock_profile,
        function_external_id=options.function_external_id
        or str(record.run.get("function_external_id") or DEFAULT_FUNCTION_EXTERNAL_ID),
        request_timeout=options.timeout,
        max_response_mib=options.max_response_mib,
        secrets=registry,
    )
    try:
        # The run's own way to reach a target: a server, an app served in-process, or an embedded
        # mock with throwaway tokens (its read-only one too), so the replay meets what the run met.
        with reach_target(run_options) as (base_url, effective):
            assert effective.credentials is not None
            registry.add(effective.readonly_token)
            client = CdfClient(
                base_url,
                effective.project,
                effective.credentials,
                registry,
                timeout=effective.request_timeout,
                max_response_bytes=effective.max_response_mib * MIB,
            )
            provisioner = Provisioner(client, effective.function_external_id)
            cleanup: list[str] = []
            try:
                preflight(client, base_url, effective.readonly_token)
                outcome = _Replayer(record, client, provisioner, base_url, effective).run()
            except ClientError as error:
                raise ReplayError(str(error)) from None
            finally:
                with signals_deferred():
                    cleanup = provisioner.cleanup()
                client.close()
    except CouldNotRun as error:
        raise ReplayError(str(error)) from None
    report = options.report_target
    elsewhere = None
    if report is None:
        elsewhere = "the report's own target (the report does not say where its run was)"
    elif not report.same_as(target):
        elsewhere = report.describe()
    return replace(outcome, cleanup_problems=tuple(cleanup), elsewhere=elsewhere)


class _Replayer:
    def __init__(
        self,
        record: ReplayRecord,
        client: CdfClient,
        provisioner: Provisioner,
        base_url: str,
        options: RunOptions,
    ) -> None:
        self.record = record
        self.client = client
        self.provisioner = provisioner
        self.base_url = base_url
        self.options = options

    def run(self) -> ReplayOutcome:
        record = self.record
        if record.sequence is not None:
            return self._run_sequence(record.sequence)
        if record.credential == Credential.READONLY and self.options.readonly_token is None:
            # Known before anything is created on the target.
            raise ReplayError(
                f"failure {record.failure} was sent with the read-only token: set {READONLY_TOKEN_ENV}"
            )
        precondition = record.precondition
        if record.execution_id is None or record.project is None:
            raise ReplayError(f"failure {record.failure} was not a request to the retry endpoint")
        execution_id = self._recreate(precondition) if precondition.exists else record.execution_id
        # The path names the execution, or an id made from its id as the run's was.
        path_id = precondition.id_prefix + execution_id + precondition.id_suffix
        before = self.client.detailed(execution_id) if precondition.exists else None
        nonce = self.client.create_nonce() if record.nonce is not None else None
        if nonce is not None and record.nonce is NonceUse.SPENT:
            self._spend(nonce)
        exchange = self._send(path_id, nonce)
        exchange.before = before
        if exchange.fault is not None:
            raise ReplayError(f"the target did not answer the replayed request: {exchange.fault}")
        # What the retry did, read as the run reads every retry (SEM-*, or nothing after a refusal).
        read_after(self.client, exchange, execution_id)
        observations = Judge(self.base_url, Ledger()).observe(exchange)
        judged = [o for o in observations if o.requirement == record.requirement]
        if not judged and record.judge == SCENARIO_JUDGE:
            raise ReplayError(
                f"{record.requirement} was judged by a scenario from several requests, not on this one "
                f"alone; re-run the suite with --seed {record.run.get('seed')}"
            )
        failed = [o for o in judged if not o.passed]
        return ReplayOutcome(
            requirement=record.requirement,
            holds=not failed,
            problem="; ".join(dict.fromkeys(o.message for o in failed)),
            # A judge of single answers that did not judge this one: what it checks is not at stake
            # (a response check on an answer that is no longer a success, say).
            note="" if judged else f"not at stake on an answer {exchange.status}",
            target=self.base_url,
            precondition=precondition.describe(),
            request=f"{exchange.method} {self.client.secrets.cut(exchange.path, 200)}",
            status=exchange.status,
        )

    def _run_sequence(self, recorded: Mapping[str, Any]) -> ReplayOutcome:
        """The generated sequence the failure was found in, run again on a fresh execution of its task
        graph, every exchange judged as in the run: does the requirement hold all along now?"""
        record = self.record
        try:
            sequence = OperationSequence.from_json(recorded["sequence"])
        except (KeyError, TypeError, ValueError) as error:
            raise ReplayError(f"failure {record.failure} holds no sequence to run ({error})") from None
        ctx = ScenarioContext(self.client, self.provisioner, Judge(self.base_url, Ledger()))
        ran = run_sequence(ctx, sequence, f"replayed from failure {record.failure}")
        result = ran.ledger.results.get(record.requirement)
        failed = result.failures if result is not None else []
        last = ran.exchanges[-1] if ran.exchanges else None
        return ReplayOutcome(
            requirement=record.requirement,
            holds=not failed,
            problem="; ".join(dict.fromkeys(o.message for o in failed)),
            note="" if result is not None and result.judged else "not judged in the sequence run again",
            target=self.base_url,
            precondition=f"a fresh execution of task graph {sequence.graph.digest}, driven step by step",
            request=f"{len(sequence.steps)} steps: " + "; ".join(s.describe() for s in sequence.steps),
            status=last.status if last is not None else None,
        )

    def _recreate(self, precondition: Precondition) -> str:
        """A fresh execution in the recorded state, created through the real endpoints."""
        status, provisioner = precondition.status, self.provisioner
        if status == ExecutionStatus.FAILED and precondition.fixture == "shapes":
            return provisioner.shapes_execution()
        if status == ExecutionStatus.FAILED:
            return provisioner.failed_execution(_shape_of(precondition))
        if status == ExecutionStatus.RUNNING:
            return provisioner.running_execution()
        if status == ExecutionStatus.COMPLETED:
            return provisioner.completed_execution()
        if status == ExecutionStatus.TERMINATED:
            return provisioner.terminated_execution()
        if status == ExecutionStatus.TIMED_OUT:
            timed_out = provisioner.timed_out_execution()
            if timed_out is None:
                raise ReplayError("the target did not time out the fixture execution: no TIMED_OUT execution")
            return timed_out
        raise ReplayError(f"cannot recreate an execution in status {status}")

    def _spend(self, nonce: str) -> None:
        """Have the nonce accepted once, as the run had before it sent the request again."""
        other = self.provisioner.failed_execution()
        spent = self.client.send(
            "POST",
            self.client.retry_url(other),
            json_body={"authentication": {"nonce": nonce}},
            origin="replay: the nonce's first use",
            execution_id=other,
        )
        if spent.status != 200:
            raise ReplayError(
                f"the nonce's first use, a retry of a FAILED execution, answered {spent.status}, not 200"
            )

    def _send(self, execution_id: str, nonce: str | None) -> Exchange:
        record = self.record
        own = record.project == record.run.get("project")
        # The run's project is the replay's; a deliberately foreign one (AUTH-403) stays as it was.
        url = self.client.retry_url(execution_id, None if own else record.project)
        headers = dict(record.headers)
        role = Credential(record.credential)
        # The write token is the client's current one: client credentials refresh it.
        token: str | None = self.client.token
        if role is Credential.READONLY:
            token = self.options.readonly_token
        elif role is Credential.UNKNOWN_TOKEN:
            self.client.name_credential(INVALID_TOKEN, Credential.UNKNOWN_TOKEN)
            token = INVALID_TOKEN
        elif role is not Credential.WRITE:
            token = None
            if role is Credential.OTHER and record.authorization is not None:
                headers["authorization"] = record.authorization
        form = request_form_named(record.request_form)
        body: dict[str, Any] = {}
        if record.body_kind == "json":
            # A form the suite does not own (a fuzzer's) is re-encoded plainly; its headers are kept.
            body["json_body"] = record.body_with_nonce(nonce) if nonce is not None else record.body
        elif record.body_kind == "text":
            content = str(record.body).encode("utf-8")
            if form is not None and form.gzipped:
                content = gzip.compress(content)
            else:
                headers.pop("content-encoding", None)
            body["content"] = content
        return self.client.send(
            record.method,
            url,
            headers=headers,
            origin=f"replay of failure {record.failure}",
            expectation=record.expectation,
            execution_id=execution_id,
            form=form or PLAIN,
            token=token,
            **body,
        )


def _shape_of(precondition: Precondition) -> FixtureShape:
    """The run request of the recorded execution: its metadata, input, version and the generated part
    of its workflow's external id, raw UTF-8 when non-ASCII (as the run sent them)."""
    recorded = precondition.metadata
    metadata = {str(k): str(v) for k, v in recorded.items()} if recorded is not None else None
    text = json.dumps([metadata, precondition.workflow_input], ensure_ascii=False)
    suite_workflow = SUITE_WORKFLOW.match(precondition.workflow_external_id or "")
    return FixtureShape(
        "as recorded in the report",
        metadata,
        precondition.workflow_input,
        PLAIN if text.isascii() else RAW_UTF8,
        workflow_tail=(suite_workflow.group("tail") or "") if suite_workflow else "",
        version=precondition.version or PLAIN_VERSION,
    )
