"""Every retry of an execution the suite knows is judged from readings before and after it (SEM-* after a
success, nothing changed after a refusal), whatever sent it; a scenario cannot leave them out. Waits for
effects that never come share one run-wide budget."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from cdf_workflows_mock import DEFAULT_PROJECT, MockConfig, create_app
from cdf_workflows_mock.loopback import InProcessServer
from retry_contract import execution_view
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.checks.retry_effects import JUDGE as READINGS_JUDGE
from retry_contract.credentials import StaticToken
from retry_contract.exchange import Exchange, Expectation
from retry_contract.polling import WaitBudget, poll
from retry_contract.provisioning import Provisioner
from retry_contract.runner import DEFAULT_SEED
from retry_contract.scenarios import states
from retry_contract.scenarios.context import ScenarioContext
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import Ledger

WRITE, READONLY = "retry-readings-write-token", "retry-readings-readonly-token"


@contextmanager
def _context(defect: str | None = None) -> Iterator[ScenarioContext]:
    config = MockConfig.with_tokens(DEFAULT_PROJECT, WRITE, READONLY)
    if defect is not None:
        config = replace(config, defects=frozenset({defect}))
    with (
        InProcessServer(create_app(config)) as server,
        CdfClient(server.base_url, DEFAULT_PROJECT, StaticToken(WRITE), SecretRegistry()) as client,
    ):
        provisioner = Provisioner(client, seed=DEFAULT_SEED)
        try:
            yield ScenarioContext(client, provisioner, Judge(server.base_url, Ledger()))
        finally:
            assert provisioner.cleanup() == []


def _failed(ledger: Ledger) -> dict[str, list[str]]:
    results = ledger.results.items()
    return {r: [o.message for o in result.failures] for r, result in results if result.failures}


def test_a_scenario_cannot_hand_readings_to_a_retry_or_leave_them_out() -> None:
    parameters = inspect.signature(ScenarioContext.retry).parameters
    assert not {"before", "after"} & set(parameters)


def test_a_successful_retry_is_judged_from_readings_before_and_after() -> None:
    with _context() as ctx:
        exchange = ctx.retry(ctx.provisioner.failed_execution(), expect=states.ACCEPTED, origin="test")
        assert exchange.status == 200 and exchange.before is not None and exchange.after is not None
        assert execution_view.new_attempts(exchange.before, exchange.after)
        targeted = ctx.judge.ledger.results["SEM-TARGETED"]
        assert targeted.judged == 1 and not targeted.failures


def test_a_refused_retry_is_judged_unchanged_from_readings_before_and_after() -> None:
    with _context() as ctx:
        exchange = ctx.retry(ctx.provisioner.running_execution(), expect=states.REFUSED, origin="test")
        assert exchange.status == 409 and exchange.after is not None
        judged = ctx.judge.ledger.results["STATE-RETRYABLE"]
        assert not judged.failures and judged.judged == 2  # its status, and nothing changed


def test_a_refused_retry_that_changed_its_execution_fails_its_requirement() -> None:
    # `retry-running`: a RUNNING execution is retried (200); as a refusal was due, STATE-RETRYABLE fails,
    # and the tasks it restarted are judged as any retry's.
    with _context("retry-running") as ctx:
        exchange = ctx.retry(ctx.provisioner.running_execution(), expect=states.REFUSED, origin="test")
        assert exchange.status == 200 and exchange.after is not None
        assert "STATE-RETRYABLE" in _failed(ctx.judge.ledger)


def test_retries_of_ids_it_cannot_read_are_judged_without_readings_and_say_so() -> None:
    with _context() as ctx:
        exchange = ctx.retry("not-a-uuid", expect=None, origin="test")
        assert exchange.before is None and exchange.after is None
        assert any("without readings" in note for note in ctx.judge.ledger.notes)


def test_a_timed_out_task_given_no_new_attempt_is_caught() -> None:
    with _context("retry-ignores-timed-out") as ctx:
        states.timed_out_state(ctx)
        failed = _failed(ctx.judge.ledger)
        assert "got no new attempt" in "; ".join(failed["SEM-TARGETED"]), failed


def test_a_terminated_execution_whose_retry_starts_nothing_is_caught() -> None:
    with _context("terminated-retry-starts-nothing") as ctx:
        states.retryable_states(ctx)
        failed = _failed(ctx.judge.ledger)
        assert "got no new attempt" in "; ".join(failed["SEM-TARGETED"]), failed
        assert [o.judge for o in ctx.judge.ledger.results["SEM-TARGETED"].failures] == [READINGS_JUDGE]


class _Reads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return self.count


def test_a_wait_whose_condition_holds_costs_no_budget() -> None:
    budget = WaitBudget(1.0)
    reads = _Reads()
    assert poll(reads, lambda n: n >= 3, timeout=30, budget=budget) == 3
    assert budget.left == 1.0


def test_once_the_budget_is_spent_a_wait_reads_once() -> None:
    budget = WaitBudget(0.2)
    poll(_Reads(), lambda _: False, timeout=30, budget=budget)
    assert budget.spent
    reads = _Reads()
    poll(reads, lambda _: False, timeout=30, budget=budget)
    assert reads.count == 1


def test_the_wait_budget_ends_waits_for_effects_that_never_come() -> None:
    """Against a server whose retries of TERMINATED executions start nothing, each retry is still
    judged (its effect missing), and once the run's budget is spent every wait is a single reading."""
    with _context("terminated-retry-starts-nothing") as ctx:
        ctx.client.effect_waits = WaitBudget(0.3)
        executions = [ctx.provisioner.terminated_execution() for _ in range(3)]
        reads: list[str] = []
        detailed = ctx.client.detailed

        def counted(execution_id: str) -> dict[str, Any]:
            reads.append(execution_id)
            return detailed(execution_id)

        ctx.client.detailed = counted  # type: ignore[method-assign]
        for execution_id in executions:
            ctx.retry(execution_id, expect=states.ACCEPTED, origin="test")
        assert ctx.client.effect_waits.spent
        assert len(ctx.judge.ledger.results["SEM-TARGETED"].failures) == len(executions)
        # The last retry: one reading before it, one after it, no more.
        assert reads.count(executions[-1]) == 2


FAILED_READING: dict[str, Any] = {
    "id": "9a1b2c3d-0000-4000-8000-000000000001",
    "status": "FAILED",
    "workflowDefinition": {"tasks": [{"externalId": "step", "type": "function"}]},
    "executedTasks": [{"id": "t1", "externalId": "step", "status": "FAILED"}],
}
RUNNING_READING: dict[str, Any] = {
    **FAILED_READING,
    "status": "RUNNING",
    "executedTasks": [
        *FAILED_READING["executedTasks"],
        {"id": "t2", "externalId": "step", "status": "IN_PROGRESS"},
    ],
}


def _answered(method: str, status: int, after: dict[str, Any], expect: Expectation | None = None) -> Exchange:
    return Exchange(
        method=method,
        url=f"http://127.0.0.1:9/api/v1/projects/p/workflows/executions/{FAILED_READING['id']}/retry",
        request_headers={},
        request_body=None,
        status=status,
        response_headers={"content-type": "application/json", "x-request-id": "r"},
        response_body=b'{"error": {"code": %d, "message": "no"}}' % status if status >= 400 else b"",
        expectation=expect,
        execution_id=str(FAILED_READING["id"]),
        before=FAILED_READING,
        after=after,
    )


def test_any_refusal_that_changed_the_execution_fails_whoever_sent_it() -> None:
    # As the fuzzer hands in a pooled retry that was refused: no scenario adds anything to it.
    judged = Judge("http://127.0.0.1:9", Ledger()).observe(
        _answered("POST", 409, RUNNING_READING, states.ACCEPTED)
    )
    unchanged = [o for o in judged if o.judge == READINGS_JUDGE]
    assert [(o.requirement, o.passed) for o in unchanged] == [("STATE-RETRYABLE", False)]
    assert "new task attempts" in unchanged[0].message


def test_another_method_is_held_to_nothing_changed_whatever_it_answers() -> None:
    judged = Judge("http://127.0.0.1:9", Ledger()).observe(_answered("HEAD", 200, FAILED_READING))
    assert [(o.requirement, o.passed) for o in judged if o.judge == READINGS_JUDGE] == [("METHOD", True)]
