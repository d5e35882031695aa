"""A run's data: what it was asked to do (RunOptions), where it is (ProgressEvent) and what it found
(RunResult), with the error that says it could not run.

Below the runner, which fills these in, and below the reports, which read them: this module imports
neither (nor any driver), so a report can be written, and tested, without the machinery of a run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from retry_contract import contract
from retry_contract.baseline import Baseline
from retry_contract.bounded_read import DEFAULT_MAX_RESPONSE_MIB
from retry_contract.credentials import Credentials
from retry_contract.errors import RetryContractError
from retry_contract.provisioning import DEFAULT_POOL_SIZE
from retry_contract.requirements import Level
from retry_contract.resilience import DEFAULT_RETRY_POLICY, RetryPolicy
from retry_contract.run_settings import (
    DEFAULT_CLEANUP_TIMEOUT_SECONDS,
    DEFAULT_EXPLORE,
    DEFAULT_FUNCTION_EXTERNAL_ID,
    DEFAULT_MOCK_PROFILE,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    run_option_fields,
)

# Declared with the settings; named here too, where callers have found them.
from retry_contract.run_settings import DEFAULT_CONCURRENCY as DEFAULT_CONCURRENCY
from retry_contract.run_settings import DEFAULT_MAX_EXAMPLES as DEFAULT_MAX_EXAMPLES
from retry_contract.run_settings import DEFAULT_SEED as DEFAULT_SEED
from retry_contract.run_settings import MOCK_PROJECT as MOCK_PROJECT
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.timing import PhaseTimer
from retry_contract.verdict import ExitCode, Ledger, Observation, Outcome


class CouldNotRun(RetryContractError):
    """The run could not judge the target: bad arguments, unreachable target, refused credentials.

    `result`, once the target was reached, is the run as far as it went (marked incomplete with the
    reason): a CI job still gets its reports, saying why nothing was judged."""

    def __init__(self, reason: str, result: RunResult | None = None) -> None:
        super().__init__(reason)
        self.result = result


@dataclass(frozen=True)
class RunOptions:
    base_url: str | None
    project: str
    # None: take them from the environment (CDF_TOKEN or client credentials), or the mock's own.
    credentials: Credentials | None
    readonly_token: str | None = None
    seed: int = DEFAULT_SEED
    max_examples: int = DEFAULT_MAX_EXAMPLES
    strict: bool = False
    function_external_id: str = DEFAULT_FUNCTION_EXTERNAL_ID
    # Total seconds per request (connect, send, the whole answer), and MiB read of an answer at most.
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    max_response_mib: int = DEFAULT_MAX_RESPONSE_MIB
    pool_size: int = DEFAULT_POOL_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    fuzz: bool = True
    # Generated operation sequences to run (`exploration`): a few by default, many for nightly jobs.
    explore: int = DEFAULT_EXPLORE
    # Stop at the first MUST failure: enough when only the verdict matters.
    fail_fast: bool = False
    # Bounds on what the run sends: total requests (cleanup exempt) and requests per second.
    max_requests: int | None = None
    rate: float | None = None
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY
    # Where the credentials' secrets were registered, so the run's output redacts them too.
    secrets: SecretRegistry | None = None
    # Executions not created by the suite that the user explicitly allows it to retry, once each.
    named_executions: tuple[str, ...] = ()
    # `package.module:attribute` of an ASGI/WSGI app to test in-process, instead of base_url.
    app: str | None = None
    # Defects to switch on in the embedded mock (see `cdf_workflows_mock.defects`).
    mock_defects: frozenset[str] = frozenset()
    # A run that leaves any MUST requirement unjudged is inconclusive (exit 2), not conformant.
    require_all_must: bool = False
    # The faithful shape of the embedded mock (`cdf_workflows_mock.Profile`).
    mock_profile: str = DEFAULT_MOCK_PROFILE
    # Seconds after which the run stops sending, cleans up and reports what it judged, marked
    # incomplete. None: no bound but the requests' own (a run's length grows with --rate and
    # --max-examples, and CI jobs have their own timeouts, which end in a signal the run handles).
    max_duration: float | None = None
    # Seconds cleanup may take before it is abandoned (what it may have left is reported).
    cleanup_timeout: float = DEFAULT_CLEANUP_TIMEOUT_SECONDS
    # Known failures (`--baseline`): reported apart, not counted by the exit status. None: none known.
    baseline: Baseline | None = None

    @classmethod
    def from_settings(
        cls,
        values: Mapping[str, Any],
        *,
        credentials: Credentials | None,
        readonly_token: str | None,
        secrets: SecretRegistry,
    ) -> RunOptions:
        """The options of the run settings in `values` (`run_settings`, keyed by Python name), as the
        CLI and the pytest plugin read them; a setting not in `values` keeps its default."""
        fields = {"project": MOCK_PROJECT, "base_url": None, **run_option_fields(values)}
        return cls(credentials=credentials, readonly_token=readonly_token, secrets=secrets, **fields)

    def __post_init__(self) -> None:
        # Before anything is sent: a name that is no project's (`a/b`) would put requests on other
        # paths, and every answer to them would be judged as the endpoint's.
        try:
            contract.check_project_name(self.project)
        except contract.InvalidProjectName as error:
            raise CouldNotRun(str(error)) from None


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Where a run is: emitted at each phase change and every runner.PROGRESS_INTERVAL_SECONDS between."""

    # One of the run's phases: preflight, scenarios and fuzzing, late scenarios, cleanup, finished.
    phase: str
    # Requests sent to the target so far, fuzzed ones and cleanup's included.
    requests_sent: int
    # Failed judgements so far of requirements whose failure fails the run (MUST; SHOULD when strict),
    # known failures of the baseline left out.
    failures: int
    # Seconds since the run started.
    elapsed: float


ProgressListener = Callable[[ProgressEvent], None]


@dataclass
class FuzzStats:
    """What Schemathesis's engine generated and sent, as the fuzzer counted it."""

    cases: int = 0
    steered: int = 0
    successes: int = 0
    errors: list[str] = field(default_factory=list)
    # Cases by Schemathesis's generation mode: valid requests (positive) and requests that break the
    # schema on purpose (negative). A case without generation metadata counts in neither.
    positive: int = 0
    negative: int = 0
    # What Hypothesis warned of while fuzzing (redacted, the first few): kept off the terminal.
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExplorationStats:
    """What the exploration exercised, for the report."""

    requested: int = 0
    # Sequences run on the target while generating (shrinking's candidates are not counted).
    sequences: int = 0
    task_graphs: set[str] = field(default_factory=set)
    steps: int = 0
    shrink_runs: int = 0
    failing: int = 0
    # A digest of every sequence generated, in order: the same seed gives the same list.
    generated: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, int]:
        return {
            "requested": self.requested,
            "run": self.sequences,
            "distinct_task_graphs": len(self.task_graphs),
            "steps": self.steps,
            "shrink_runs": self.shrink_runs,
            "failing": self.failing,
        }


@dataclass
class RunResult:
    options: RunOptions
    target: str
    ledger: Ledger
    secrets: SecretRegistry
    fuzz: FuzzStats = field(default_factory=FuzzStats)
    exploration: ExplorationStats = field(default_factory=ExplorationStats)
    requests_sent: int = 0
    seconds: float = 0.0
    cleanup_problems: list[str] = field(default_factory=list)
    # Why the run ended before judging everything (fail-fast, request budget); empty when it did not.
    stop_reason: str = ""
    # Why the run could not finish (a setup request that kept failing, an interruption): what was judged
    # until then is reported, but a verdict of "conformant" cannot rest on it. Empty when it finished.
    incomplete: str = ""
    created_workflows: list[str] = field(default_factory=list)
    created_executions: int = 0
    spec_sha256: str = field(default_factory=contract.spec_sha256)
    # Successful retries per fixture shape of the execution retried (FIXTURE_SHAPES' labels).
    fixture_shapes_retried: Counter[str] = field(default_factory=Counter)
    # Where the time went: wall seconds per phase, and time spent in requests and in waits.
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    tool_versions: dict[str, str] = field(default_factory=dict)
    # The internal error that ended the run early, if one did (its text is in `incomplete`).
    error: BaseException | None = field(default=None, repr=False)
    # Work the run stopped waiting for (a request that did not end, cleanup past its deadline): its
    # threads may still be alive, so whoever owns the process should end it rather than wait.
    abandoned: list[str] = field(default_factory=list)
    # Cleanup ran to its end (its problems, if any, in `cleanup_problems`): not skipped, not abandoned.
    cleaned_up: bool = False

    @property
    def unjudged_must(self) -> list[str]:
        """MUST requirements the run did not judge in full."""
        return [
            r.requirement.id
            for r in self.ledger.results.values()
            if r.requirement.level is Level.MUST and r.outcome is Outcome.NOT_COVERED
        ]

    def accepts(self, observation: Observation) -> bool:
        """Whether a failure is a known one of the run's baseline, which the exit status leaves out."""
        baseline = self.options.baseline
        return baseline is not None and baseline.accepts(observation)

    @property
    def exit_code(self) -> ExitCode:
        code = self.ledger.exit_code(strict=self.options.strict, accepted=self.accepts)
        if self.error is not None:
            # The suite's own failure: no verdict of it can be trusted, a violation found included.
            return ExitCode.COULD_NOT_RUN
        if code is ExitCode.CONFORMANT and (
            self.incomplete or (self.options.require_all_must and self.unjudged_must)
        ):
            return ExitCode.COULD_NOT_RUN
        return code


# The key of a shard's kill-matrix.json that says which shard it is; an unsharded or merged matrix has
# none.
SHARD_KEY = "shard"


@dataclass(frozen=True)
class MatrixRow:
    """One run of the kill matrix as its reports show it."""

    # As kill-matrix.json records it (defect_matrix.outcome_from_row reads it back).
    record: dict[str, Any]
    # A run of a faithful profile (expected to fail nothing), not of a defect.
    faithful: bool


@dataclass(frozen=True)
class MatrixShard:
    """Which shard of which matrix a shard's reports hold."""

    index: int
    count: int
    runs: int
    matrix_runs: int
    # As the shard's kill-matrix.json records it, under SHARD_KEY.
    record: dict[str, object]


@dataclass(frozen=True)
class MatrixView:
    """The kill matrix (defect_matrix.matrix_view), built once and read by its JSON and Markdown reports."""

    summary: dict[str, Any]
    rows: tuple[MatrixRow, ...]
    shard: MatrixShard | None = None
