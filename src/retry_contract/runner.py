"""The flow of one run: reach the target, provision, run the scenarios, fuzz, clean up, conclude.

The runner wires the layers together and returns a :class:`RunResult`; it prints nothing itself
(progress goes to a callback, as :class:`ProgressEvent`s) so the CLI, the tests and the pytest plugin
can all drive it.
"""

from __future__ import annotations

import platform
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata

from retry_contract import credential_check
from retry_contract.app_target import AppLoadError, InProcessServer, load_app
from retry_contract.bounded_read import MIB
from retry_contract.budget import BudgetExhausted, RequestBudget
from retry_contract.cdf_client import CdfClient, ClientError
from retry_contract.checks import Judge
from retry_contract.credentials import StaticToken
from retry_contract.engine_processes import EngineProcess, engines_for, fuzz_settings_of
from retry_contract.exploration import explore
from retry_contract.fuzzing import Fuzzer
from retry_contract.interrupts import Background, StopSignals, Wake
from retry_contract.provisioning import Provisioner, RetryablePool
from retry_contract.requirements import Level
from retry_contract.results import DEFAULT_CONCURRENCY as DEFAULT_CONCURRENCY
from retry_contract.results import DEFAULT_MAX_EXAMPLES as DEFAULT_MAX_EXAMPLES
from retry_contract.results import DEFAULT_SEED as DEFAULT_SEED
from retry_contract.results import MOCK_PROJECT as MOCK_PROJECT
from retry_contract.results import CouldNotRun as CouldNotRun
from retry_contract.results import ProgressEvent as ProgressEvent
from retry_contract.results import ProgressListener as ProgressListener
from retry_contract.results import RunOptions as RunOptions
from retry_contract.results import RunResult as RunResult

# The run's data types live below the runner (reports read them without it); named here too, for
# whoever drives a run through this module.
from retry_contract.run_settings import DEFAULT_CLEANUP_TIMEOUT_SECONDS as DEFAULT_CLEANUP_TIMEOUT_SECONDS
from retry_contract.scenarios import (
    ALL_SCENARIOS,
    LATE_SCENARIOS,
    LONGEST_FIRST,
    Scenario,
    ScenarioContext,
)
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.verdict import Accepted, Ledger, finding_level

Task = Callable[[], None]
TOOLS = ("retry-contract", "schemathesis", "hypothesis", "openapi-core", "httpx")
# Between phase changes, the run tells its progress listener where it is this often.
PROGRESS_INTERVAL_SECONDS = 1.0
# Once the run stops (a signal, --max-duration), its tasks stop at their next request; one still in a
# request after this long is abandoned, not waited for.
WORKER_GRACE_SECONDS = 2.0
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM) before the end"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended the run early; what it created was cleaned up (within the cleanup
    deadline, and not at all after a second signal: `result.cleanup_problems` lists what may be left),
    and `result` holds what was judged until then (marked incomplete) so that it can still be reported."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.incomplete)
        self.result = result


class RunBroken(Exception):
    """An internal error (a bug, a judge failing on odd input) ended the run: what it created was
    cleaned up and `result` holds what was judged until then, marked incomplete with the error.
    The error itself is the exception's cause."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.incomplete)
        self.result = result


class _ProgressFeed:
    """Tells a listener where the run is: at each phase change, and from a ticker thread between.

    Events are built and delivered under one lock, so a listener sees them in order (a tick never
    arrives with the phase before the one it was last told of) and is never called twice at once.
    A listener that raises is told nothing more, and its error is raised once the run has ended: a
    broken display (a closed pipe) must not keep the run from cleaning up what it created.
    """

    def __init__(
        self,
        listener: ProgressListener,
        started: float,
        requests_sent: Callable[[], int],
        strict: bool,
        accepted: Accepted,
    ) -> None:
        self._listener = listener
        self._started = started
        self._requests_sent = requests_sent
        self._strict = strict
        self._accepted = accepted
        self._lock = threading.Lock()
        self._phase = "starting"
        # The ledgers of the scenarios and the fuzzer, as they are created; they are merged into the
        # run's ledger only at the end, and stay whole after that.
        self._ledgers: list[Ledger] = []
        self._stopped = threading.Event()
        self._error: Exception | None = None

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name
            self._emit()

    def watch(self, ledgers: list[Ledger]) -> None:
        self._ledgers = ledgers

    @contextmanager
    def ticking(self, interval: float = PROGRESS_INTERVAL_SECONDS) -> Iterator[None]:
        ticker = threading.Thread(
            target=self._tick, args=(interval,), name="retry-contract-progress", daemon=True
        )
        ticker.start()
        try:
            yield
        finally:
            self._stopped.set()
            ticker.join()
        if self._error is not None:
            raise self._error

    def _tick(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            with self._lock:
                self._emit()

    def _emit(self) -> None:
        if self._error is not None:
            return
        event = ProgressEvent(
            phase=self._phase,
            requests_sent=self._requests_sent(),
            failures=self._failures(),
            elapsed=time.perf_counter() - self._started,
        )
        try:
            self._listener(event)
        except Exception as error:
            self._error = error

    def _failures(self) -> int:
        # Read without the ledgers' locks (private to verdict.py): a ledger's requirements are fixed
        # when it is created and a list's length is read atomically, so the count is at worst a moment
        # old.
        return sum(
            1
            for ledger in list(self._ledgers)
            for result in list(ledger.results.values())
            for failure in list(result.failures)
            if (self._strict or finding_level(failure) is Level.MUST) and not self._accepted(failure)
        )


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for tool in TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "unknown"
    return versions


@contextmanager
def reach_target(options: RunOptions) -> Iterator[tuple[str, RunOptions]]:
    """The base URL to test: the given server, an application served in-process, or an embedded
    mock with throwaway tokens."""
    if (options.base_url is not None or options.app is not None) and options.credentials is None:
        raise CouldNotRun(
            "no credentials: set CDF_TOKEN, or CDF_CLIENT_ID, CDF_CLIENT_SECRET and CDF_TOKEN_URL, "
            "for an identity with workflowOrchestrationACL:WRITE"
        )
    if options.base_url is not None:
        yield options.base_url.rstrip("/"), options
        return
    if options.app is not None:
        try:
            app = load_app(options.app)
        except AppLoadError as error:
            raise CouldNotRun(str(error)) from None
        with InProcessServer(app, name=options.app) as server:
            yield server.base_url, options
        return
    from cdf_workflows_mock import EmbeddedMock, MockConfig
    from cdf_workflows_mock.defects import check_combination

    write, readonly = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    try:
        config = MockConfig.with_tokens(
            options.project, write, readonly, defects=options.mock_defects, profile=options.mock_profile
        )
        # Refused here, before anything is started, rather than when the mock is built.
        check_combination(config.defects)
    except ValueError as error:
        raise CouldNotRun(str(error)) from None
    with EmbeddedMock(config) as mock:
        yield mock.base_url, replace(options, credentials=StaticToken(write), readonly_token=readonly)


def run(
    options: RunOptions,
    progress: ProgressListener = lambda _: None,
    signals: StopSignals | None = None,
    engines: list[EngineProcess] | None = None,
) -> RunResult:
    """One run, from reaching the target to cleanup; the result to report.

    `engines`: the fuzzing engines' processes, when the caller made them (`engine_processes.engines_for`)
    before importing this module; else the run makes them first thing.

    Raises CouldNotRun when nothing could be judged, RunInterrupted after Ctrl-C/SIGTERM and RunBroken
    after an internal error, each of the last two with the result of what was judged. `signals` counts
    the stop signals (its owner, the CLI, keeps counting while it writes the reports); without it the
    run counts them itself while it goes, when it runs on the main thread.

    The main thread only waits: the judging and the cleanup run on threads it can stop waiting for, so
    the run ends within --max-duration (if given), WORKER_GRACE_SECONDS and --cleanup-timeout, whatever
    the server does. The first stop signal stops the sending; a second one skips what is left of the
    cleanup. Either way what was judged is returned, and what cleanup may have left is listed.
    """
    registry = options.secrets or SecretRegistry()
    started = time.perf_counter()
    deadline = None if options.max_duration is None else time.monotonic() + options.max_duration
    with ExitStack() as stack:
        stop = signals if signals is not None else stack.enter_context(StopSignals())
        # First: their start-up (an interpreter each, Schemathesis imported) overlaps reaching the target
        # and everything before the fuzzing. They send nothing before the fuzzing starts them.
        if engines is None:
            engines = stack.enter_context(engines_for(options))
        base_url, effective = stack.enter_context(reach_target(options))
        assert effective.credentials is not None
        registry.add(effective.readonly_token)
        ledger = Ledger()
        result = RunResult(
            options=effective, target=base_url, ledger=ledger, secrets=registry, tool_versions=tool_versions()
        )
        client = CdfClient(
            base_url,
            effective.project,
            effective.credentials,
            registry,
            timeout=effective.request_timeout,
            max_response_bytes=effective.max_response_mib * MIB,
            budget=RequestBudget(effective.max_requests, effective.rate),
            retry_policy=effective.retry_policy,
            timer=result.timer,
        )
        cleanup_client = _cleanup_client(client, effective)
        provisioner = Provisioner(client, effective.function_external_id, seed=effective.seed)

        # One count of what was sent, for the progress line and the result alike: the suite's own
        # requests (cleanup's too) and every case Schemathesis sent (a case that goes out after the
        # run stopped spends no budget, but was sent all the same).
        def requests_sent() -> int:
            return client.requests_sent + cleanup_client.requests_sent + result.fuzz.cases

        feed = _ProgressFeed(progress, started, requests_sent, effective.strict, result.accepts)
        judging = _Judging()
        with feed.ticking():
            error = _judge_until_stopped(
                judging,
                stop,
                deadline,
                lambda: _judge_everything(
                    effective, base_url, client, provisioner, result, feed, judging, engines
                ),
                client,
                result,
                feed,
            )
            feed.phase("cleanup")
            with result.timer.phase("cleanup"):
                _clean_up(replace(provisioner, client=cleanup_client), effective, stop, result)
            if stop.received and not result.incomplete:
                # Judged in full, but asked to stop: the exit status says so as for any interruption.
                result.incomplete = "interrupted (Ctrl-C or SIGTERM) during cleanup"
            result.created_workflows = list(provisioner.created_workflows)
            result.created_executions = len(provisioner.created_executions)
            result.fixture_shapes_retried = Counter(
                provisioner.shapes_of.get(execution_id, "not created by the suite")
                for execution_id in result.ledger.retried_executions
            )
            result.requests_sent = requests_sent()
            if not result.abandoned:
                # A client still in use by an abandoned thread is left as it is: the process is ending.
                client.close()
                cleanup_client.close()
            feed.phase("finished")
    result.seconds = time.perf_counter() - started
    if isinstance(error, CouldNotRun):
        result.incomplete = result.incomplete or f"could not run: {error}"
        raise CouldNotRun(str(error), result) from None
    if result.error is not None:
        raise RunBroken(result) from result.error
    if stop.received:
        raise RunInterrupted(result)
    return result


def _cleanup_client(client: CdfClient, options: RunOptions) -> CdfClient:
    """A client of its own for cleanup, with an unbounded budget (the rate still holds) and its own
    connections: the run's client stays closed to every request once the run stops, so a task that
    wakes up late in an abandoned request cannot send more while cleanup goes on, and cleanup does
    not queue behind connections stuck in such requests. It knows the run requests re-sent after a
    lost answer, which it looks for."""
    cleanup = CdfClient(
        client.base_url,
        client.project,
        client.credentials,
        client.secrets,
        timeout=options.request_timeout,
        budget=RequestBudget(None, options.rate),
        retry_policy=client.retry_policy,
        timer=client.timer,
    )
    cleanup.replayed = client.replayed
    return cleanup


@dataclass
class _Judging:
    """What the judging thread shares with the main thread, which may stop waiting for it: the halt that
    stops every task at its next request, and the tasks' ledgers, merged into the run's once, by
    whichever thread gets there first (an abandoned task may still write to its own ledger later)."""

    halt: threading.Event = field(default_factory=threading.Event)
    ledgers: list[Ledger] = field(default_factory=list)
    # Past preflight: a request that keeps failing from here on leaves the run incomplete, not unrun.
    past_preflight: bool = False
    _merged: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def merge_into(self, ledger: Ledger) -> None:
        with self._lock:
            if not self._merged:
                self._merged = True
                for each in list(self.ledgers):
                    ledger.merge(each)


def _judge_until_stopped(
    judging: _Judging,
    stop: StopSignals,
    deadline: float | None,
    judge_everything: Callable[[], None],
    client: CdfClient,
    result: RunResult,
    feed: _ProgressFeed,
) -> BaseException | None:
    """Preflight and judging on a thread of their own, until they end, `deadline` passes or a stop
    signal comes; then they are told to stop and given WORKER_GRACE_SECONDS. What was judged is merged
    into the result either way. Returns the error that ended the judging, if any (also recorded)."""

    def work() -> None:
        feed.phase("preflight")
        with result.timer.phase("preflight"):
            preflight(client, result.target, result.options.readonly_token)
        judging.past_preflight = True
        judge_everything()

    thread = Background("retry-contract-judging", work, stop.wake)
    woken = stop.wait_until(thread.finished.is_set, deadline=deadline, signals_seen=0)
    if woken is not Wake.DONE:
        result.incomplete = (
            INTERRUPTED
            if woken is Wake.SIGNAL
            else f"stopped at the maximum duration of {result.options.max_duration:g} s (--max-duration)"
        )
        # Every task stops at its next request: nothing may still be creating executions at cleanup.
        judging.halt.set()
        client.budget.close(result.incomplete)
        stop.wait_until(
            thread.finished.is_set,
            deadline=time.monotonic() + WORKER_GRACE_SECONDS,
            signals_seen=max(1, stop.received),
        )
    judging.merge_into(result.ledger)
    if not thread.finished.is_set():
        result.abandoned.append("scenarios and fuzzing")
        result.ledger.notes.append(
            f"requests still unanswered {WORKER_GRACE_SECONDS:g} s after the run stopped were abandoned; "
            "what they would have judged is missing"
        )
        return None
    error = thread.error
    if isinstance(error, BudgetExhausted):
        # A budget the run closed itself, on stopping, is no reason of its own.
        result.stop_reason = "" if result.incomplete else str(error)
    elif isinstance(error, ClientError):
        if not judging.past_preflight:
            return CouldNotRun(str(error))
        result.incomplete = result.incomplete or f"a request the suite needed kept failing: {error}"
    elif isinstance(error, CouldNotRun):
        return error
    elif error is not None:
        result.error = error
        result.incomplete = result.secrets.redact(f"internal error ({type(error).__name__}: {error})")
    return error


def _clean_up(cleaner: Provisioner, options: RunOptions, stop: StopSignals, result: RunResult) -> None:
    """Cleanup on a thread of its own, within options.cleanup_timeout. Past it, or after a second stop
    signal, it is abandoned, and the report lists the workflows it may have left."""
    if stop.received > 1:
        _left_behind("a second stop signal came before cleanup, which was skipped", cleaner, result)
        return
    thread = Background("retry-contract-cleanup", lambda: cleaner.cleanup(options.concurrency), stop.wake)
    woken = stop.wait_until(
        thread.finished.is_set,
        deadline=time.monotonic() + options.cleanup_timeout,
        signals_seen=max(1, stop.received),
    )
    if woken is Wake.DONE:
        result.cleaned_up = True
        if thread.error is not None:
            result.cleanup_problems.append(f"cleanup failed: {type(thread.error).__name__}: {thread.error}")
        else:
            result.cleanup_problems = list(thread.value or [])
        return
    result.abandoned.append("cleanup")
    _left_behind(
        f"cleanup did not finish within {options.cleanup_timeout:g} s (--cleanup-timeout) and was abandoned"
        if woken is Wake.DEADLINE
        else "a second stop signal cut cleanup short",
        cleaner,
        result,
    )


def _left_behind(reason: str, cleaner: Provisioner, result: RunResult) -> None:
    workflows = list(cleaner.created_workflows)
    if workflows:
        result.cleanup_problems.append(
            f"{reason}; these workflows it created may be left behind, with their executions "
            f"(delete them by external id): {', '.join(workflows)}"
        )
    else:
        result.cleanup_problems.append(f"{reason}; the run had created no workflow")


def _judge_everything(
    options: RunOptions,
    base_url: str,
    client: CdfClient,
    provisioner: Provisioner,
    result: RunResult,
    feed: _ProgressFeed,
    judging: _Judging,
    engines: list[EngineProcess] | None,
) -> None:
    """Scenarios and fuzzing at once over a bounded pool of threads, then what must wait on the server.

    Each scenario (and the fuzzer) provisions its own executions and feeds its own ledger; the ledgers
    are merged in a fixed order, so the verdict and the reports do not depend on how threads interleave.
    """
    judge = Judge(base_url, result.ledger)
    halt, ledgers = judging.halt, judging.ledgers
    feed.watch(ledgers)

    def stop() -> bool:
        return halt.is_set() or (
            options.fail_fast and any(ledger.has_must_failure(result.accepts) for ledger in ledgers)
        )

    def scenario_task(scenario: Scenario) -> Task:
        ledgers.append(Ledger())
        ctx = ScenarioContext(
            client,
            provisioner.for_scenario(),
            judge.with_ledger(ledgers[-1]),
            options.readonly_token,
            options.named_executions,
        )

        def run_scenario() -> None:
            if not stop():
                with result.timer.phase(f"scenario {scenario.__name__}"):
                    scenario(ctx)

        return run_scenario

    # Ledgers follow ALL_SCENARIOS' order; the tasks start longest first.
    by_scenario = {scenario: scenario_task(scenario) for scenario in ALL_SCENARIOS}
    ordered = [*LONGEST_FIRST, *(s for s in ALL_SCENARIOS if s not in LONGEST_FIRST)]
    tasks = [by_scenario[scenario] for scenario in ordered]
    if engines is not None:
        fuzz_judges = []
        for _ in engines:
            ledgers.append(Ledger())
            fuzz_judges.append(judge.with_ledger(ledgers[-1]))

        def fuzz() -> None:
            fuzzer = Fuzzer(
                base_url=base_url,
                client=client,
                pool=RetryablePool(provisioner.for_scenario()),
                judges=fuzz_judges,
                settings=fuzz_settings_of(options),
                should_stop=stop,
                engines=engines,
                # One worker: one engine at a time too, as one request at a time.
                engines_at_once=1 if options.concurrency == 1 else len(engines),
            )
            result.fuzz = fuzzer.stats
            with result.timer.phase("fuzzing"):
                fuzzer.run()

        # The longest single task (Schemathesis runs its phases one after the other): first in line,
        # so that it overlaps the scenarios from the start. One worker keeps the old order, scenarios
        # first, which fail fast sooner.
        tasks.insert(0 if options.concurrency > 1 else len(tasks), fuzz)
    if options.explore > 0:
        ledgers.append(Ledger())
        ctx = ScenarioContext(client, provisioner.for_scenario(), judge.with_ledger(ledgers[-1]))

        def exploration() -> None:
            if not stop():
                with result.timer.phase("exploration"):
                    explore(ctx, options.explore, options.seed, result.exploration, stop)

        # Beside the fuzzing: its Hypothesis engine is the only one in this process (Schemathesis's
        # runs in a process of its own, and two in one process break: CPython 3.11's parser is not
        # thread-safe, and Hypothesis parses source as it draws). Second in line, as long as the longest
        # scenarios; last with one worker.
        tasks.insert(1 if options.concurrency > 1 else len(tasks), exploration)

    try:
        provisioner.start_timing_out()
        feed.phase("scenarios and fuzzing")
        with result.timer.phase("scenarios and fuzzing"):
            _run_all(tasks, options.concurrency, halt, client)
        if not stop():
            late = [scenario_task(scenario) for scenario in LATE_SCENARIOS]
            feed.phase("late scenarios")
            with result.timer.phase("late scenarios"):
                _run_all(late, 1, halt, client)
    finally:
        # What was judged before a stop (budget, error, interruption) is reported all the same.
        judging.merge_into(result.ledger)
    if options.fail_fast and result.ledger.has_must_failure():
        result.stop_reason = "fail-fast: a MUST requirement failed"


def _run_all(tasks: list[Task], workers: int, halt: threading.Event, client: CdfClient) -> None:
    """Run the tasks on `workers` threads. The first error stops the others at their next request,
    and is raised once all have ended: nothing may still be creating executions when cleanup starts."""
    errors: list[BudgetExhausted | ClientError] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="retry-contract") as pool:
        futures = [pool.submit(task) for task in tasks]
        try:
            # In the order they end: the first error is the cause, later ones may be its consequences.
            for future in as_completed(futures):
                try:
                    future.result()
                except (BudgetExhausted, ClientError) as error:
                    errors.append(error)
                    halt.set()
                    client.budget.close(str(error))
        except BaseException:
            # Ctrl-C or SIGTERM reach the main thread only: the workers stop at their next request.
            halt.set()
            client.budget.close("the run was interrupted")
            raise
    if errors:
        raise next((e for e in errors if isinstance(e, ClientError)), errors[0])


def preflight(client: CdfClient, base_url: str, readonly_token: str | None) -> None:
    """Fail fast, with a reason, when the target cannot be reached or a credential cannot serve the run
    (a misconfigured credential is not a contract violation)."""
    exchange = client.send(
        "POST",
        client.project_url("/sessions"),
        json_body={"items": [client.credentials.session_request()]},
        origin="preflight",
    )
    if exchange.status is None or exchange.fault is not None:
        raise CouldNotRun(f"cannot reach {base_url}: {exchange.fault or exchange.transport_error}")
    if exchange.status in (401, 403):
        raise CouldNotRun(
            f"{base_url} refused the credentials ({exchange.status} on POST /sessions): "
            "check CDF_TOKEN (or the client credentials) and --project"
        )
    body = exchange.json()
    if exchange.status >= 300 or not isinstance(body, dict) or not body.get("items"):
        raise CouldNotRun(
            f"{base_url} does not look like a CDF API: POST /sessions answered {exchange.status}"
        )
    for item in body.get("items", []):
        if isinstance(item, dict):
            client.secrets.add(str(item.get("nonce", "")))
    try:
        credential_check.check(client, readonly_token)
    except credential_check.CredentialProblem as problem:
        raise CouldNotRun(str(problem)) from None


def dry_run(options: RunOptions) -> str:
    """The plan of a run, measured by running it against a private embedded mock: nothing is sent to
    the target. Same seed and settings, so the counts are what the real run would send."""
    rehearsal = run(
        replace(options, base_url=None, app=None, credentials=None, readonly_token=None, rate=None)
    )
    target = options.base_url or options.app or "the embedded mock"
    kinds = sorted({name.rsplit("-", 1)[-1] for name in rehearsal.created_workflows})
    lines = [
        f"Dry run: nothing was sent to {target}. Measured on a private embedded mock, the run would:",
        f"- create {len(rehearsal.created_workflows)} workflows named retry-contract-<run id>-"
        f"{{{','.join(kinds)}}}, whose async function tasks call {options.function_external_id!r};",
        f"- run {rehearsal.created_executions} executions of them and retry only those executions;",
        f"- send about {rehearsal.requests_sent} requests in all ({rehearsal.fuzz.cases} of them generated "
        f"by Schemathesis with seed {options.seed}, {options.max_examples} examples per phase)"
        + (f", capped at {options.max_requests}" if options.max_requests else "")
        + (f", at most {options.rate}/s" if options.rate else "")
        + ";",
        "- then cancel the executions still running and delete those workflows, and nothing else.",
    ]
    return "\n".join(lines)
