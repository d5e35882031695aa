"""The fuzzer holds no secret, prints nothing by itself, and leaves nothing behind.

The engine (Schemathesis on Hypothesis) is configured with a placeholder Authorization; the run's
token goes on the prepared request only. Hypothesis's warnings (one of them prints the strategy it
drew from) become a note of the run, and its caches live in a temporary directory while it fuzzes.
"""

from __future__ import annotations

import importlib
import pickle
import random
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import configuration
from hypothesis.errors import HypothesisDeprecationWarning, HypothesisWarning
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import is_local_module_file

from cdf_workflows_mock import EmbeddedMock
from retry_contract.cdf_client import CdfClient
from retry_contract.checks import Judge
from retry_contract.credentials import StaticToken
from retry_contract.engine_isolation import EngineWarnings, isolated, unicode_tables_cache
from retry_contract.engine_processes import ENGINE_PHASES
from retry_contract.exchange import Credential, Exchange
from retry_contract.fuzz_engine import load_schema
from retry_contract.fuzz_protocol import EngineCase, EngineFailure
from retry_contract.fuzzing import PLACEHOLDER_AUTHORIZATION, Fuzzer, FuzzSettings
from retry_contract.provisioning import Provisioner, RetryablePool
from retry_contract.resilience import RetryPolicy
from retry_contract.secrets_registry import REPLACEMENT, SecretRegistry
from retry_contract.verdict import Ledger
from support.project import PROJECT, child_environment


class _RecordingFuzzer(Fuzzer):
    """A fuzzer that also keeps every exchange it judged."""

    def __init__(self, **kwargs: Any) -> None:
        self.exchanges: list[Exchange] = []
        super().__init__(**kwargs)

    def _exchange_of(
        self, case: EngineCase, leases: Any, judge: Judge
    ) -> tuple[Exchange, list[tuple[str, EngineFailure]]]:
        exchange, failures = super()._exchange_of(case, leases, judge)
        self.exchanges.append(exchange)
        return exchange, failures


@dataclass
class Fuzzed:
    fuzzer: _RecordingFuzzer
    client: CdfClient
    bearer: str


@pytest.fixture(scope="module")
def fuzzed(embedded_mock: EmbeddedMock, mock_tokens: tuple[str, str]) -> Iterator[Fuzzed]:
    write, _ = mock_tokens
    client = CdfClient(embedded_mock.base_url, PROJECT, StaticToken(write), SecretRegistry())
    provisioner = Provisioner(client, "fuzzer-isolation-test")
    fuzzer = _RecordingFuzzer(
        base_url=embedded_mock.base_url,
        client=client,
        pool=RetryablePool(provisioner.for_scenario()),
        judges=[Judge(embedded_mock.base_url, Ledger()) for _ in ENGINE_PHASES],
        settings=FuzzSettings(seed=20230101, max_examples=5, pool_size=2),
    )
    try:
        fuzzer.run()
        yield Fuzzed(fuzzer, client, f"Bearer {write}")
    finally:
        provisioner.cleanup()
        client.close()


@pytest.mark.slow
def test_the_engine_process_is_given_no_secret_and_its_cases_hold_none(fuzzed: Fuzzed) -> None:
    token = fuzzed.bearer.removeprefix("Bearer ")
    # All the engine's process starts with: the token reaches it only as each case goes out.
    given = [fuzzed.fuzzer.settings.engine_settings(phases) for phases in ENGINE_PHASES]
    assert token.encode() not in pickle.dumps((given, fuzzed.fuzzer.project_url))
    schema = load_schema(given[0], fuzzed.fuzzer.project_url)
    operation = next(iter(schema.get_all_operations())).ok()
    strategy = operation.as_strategy()
    cases: list[str] = []

    @hypothesis.settings(max_examples=10, database=None, derandomize=True)
    @hypothesis.given(strategy)
    def draw(case: Any) -> None:
        cases.append(repr(case))

    draw()
    # The reprs show the Authorization header: the placeholder is what they show of it.
    shown = repr(strategy) + "".join(cases)
    assert PLACEHOLDER_AUTHORIZATION in shown
    assert token not in shown + repr(schema.config)
    assert len(fuzzed.fuzzer.exchanges) == fuzzed.fuzzer.stats.cases > 20


@pytest.mark.slow
def test_the_token_goes_on_the_wire_in_place_of_the_placeholder(fuzzed: Fuzzed) -> None:
    sent = [exchange.request_headers.get("authorization") for exchange in fuzzed.fuzzer.exchanges]
    assert PLACEHOLDER_AUTHORIZATION not in sent
    ours = [e for e in fuzzed.fuzzer.exchanges if e.request_headers.get("authorization") == fuzzed.bearer]
    assert {e.credential for e in ours} == {Credential.WRITE}
    assert any(e.status == 200 for e in ours), "no steered retry succeeded with the swapped-in token"


@pytest.mark.slow
def test_cases_the_engine_sent_without_our_credentials_are_judged_as_such(fuzzed: Fuzzed) -> None:
    others = [e for e in fuzzed.fuzzer.exchanges if e.credential != Credential.WRITE]
    assert {e.credential for e in others} >= {Credential.NONE, Credential.OTHER}
    assert all(e.expectation is not None and e.expectation.requirement == "AUTH-401" for e in others)
    assert all(e.status == 401 for e in others)


@pytest.mark.slow
def test_the_engine_requests_the_project_url_the_client_builds(fuzzed: Fuzzed) -> None:
    assert fuzzed.fuzzer.project_url == fuzzed.client.project_url("")


# -- warnings and storage ---------------------------------------------------------------------------


def test_hypothesis_warnings_from_any_thread_become_redacted_text_and_others_pass() -> None:
    registry = SecretRegistry()
    secret = "a-secret-in-a-strategy-repr"
    registry.add(secret)
    collected = EngineWarnings(registry.redact)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        # A user's "error" for Hypothesis's warnings would stop the fuzzing mid-draw: not while isolated.
        warnings.filterwarnings("error", category=HypothesisWarning)
        with isolated(collected):
            thread = threading.Thread(
                target=warnings.warn,
                args=(f"from case=strategy(headers={{'Authorization': 'Bearer {secret}'}})",),
                kwargs={"category": HypothesisDeprecationWarning},
            )
            thread.start()
            thread.join()
            warnings.warn("x" * 100_000, HypothesisWarning, stacklevel=1)
            warnings.warn("not the engine's", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["not the engine's"]
    assert collected.count == 2
    assert secret not in collected.kept[0] and REPLACEMENT in collected.kept[0]
    assert all(len(kept) < 400 for kept in collected.kept)
    summary = collected.summary()
    assert summary is not None and summary.startswith("Hypothesis warned 2 time(s) while fuzzing")


def test_no_warning_no_note() -> None:
    assert EngineWarnings(str).summary() is None


def test_hypothesis_stores_in_a_temporary_directory_while_isolated() -> None:
    before = configuration.storage_directory(intent_to_write=False).home_directory
    outer, inner = EngineWarnings(str), EngineWarnings(str)
    with isolated(outer):
        home = configuration.storage_directory(intent_to_write=False).home_directory
        assert home.is_dir() and not home.is_relative_to(Path.cwd())
        # Blocks may overlap: the storage stays until the last one ends.
        with isolated(inner):
            assert configuration.storage_directory(intent_to_write=False).home_directory == home
        assert home.is_dir()
    assert not home.exists()
    assert configuration.storage_directory(intent_to_write=False).home_directory == before


def test_hypothesis_unicode_tables_and_nothing_else_outlive_the_temporary_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = unicode_tables_cache() / "14.0.0" / "codec-v2-utf-8.json.gz"
    with isolated(EngineWarnings(str)):
        home = configuration.storage_directory(intent_to_write=False).home_directory
        tables = home / "unicode_data" / "14.0.0"
        tables.mkdir(parents=True)
        (tables / "codec-v2-utf-8.json.gz").write_bytes(b"computed")
        # What else Hypothesis stores holds what a run drew (examples, constants of local modules).
        (home / "examples").mkdir()
        (home / "examples" / "drawn.json.gz").write_bytes(b"a run's value")
        (tables / "huge.json.gz").write_bytes(b"x" * (2 << 20))
    assert cached.read_bytes() == b"computed"
    assert sorted(path for path in tmp_path.rglob("*") if path.is_file()) == [cached]
    with isolated(EngineWarnings(str)):
        home = configuration.storage_directory(intent_to_write=False).home_directory
        table = home / "unicode_data" / "14.0.0" / "codec-v2-utf-8.json.gz"
        assert table.read_bytes() == b"computed"
        # A table the run could not read is computed again, and replaces the cached one.
        table.write_bytes(b"computed again")
    assert cached.read_bytes() == b"computed again"


def test_a_cache_that_cannot_be_written_leaves_the_run_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    with isolated(EngineWarnings(str)):
        home = configuration.storage_directory(intent_to_write=False).home_directory
        (home / "unicode_data").mkdir()
        (home / "unicode_data" / "charmap.json.gz").write_bytes(b"computed")
    assert not home.exists()


def test_hypothesis_draws_no_constants_of_local_modules_while_isolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module outside site-packages (this checkout's, when the suite runs from one) would lend its
    constants to what Hypothesis draws: a seed would send other cases than from a wheel install."""
    module = tmp_path / "retry_contract_local_constants.py"
    module.write_text('MARKER = "a local constant"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module.stem, raising=False)
    importlib.import_module(module.stem)
    assert is_local_module_file(str(module))
    finder = providers._get_local_constants
    with isolated(EngineWarnings(str)):
        assert len(providers._get_local_constants()) == 0
    assert providers._get_local_constants is finder


def test_retry_backoff_leaves_the_global_random_state_alone() -> None:
    fault = Exchange("POST", "http://127.0.0.1:1/", {}, None, status=503)
    slept: list[float] = []
    random.seed(20230101)
    state = random.getstate()
    final = RetryPolicy(attempts=4).retrying(sleep=slept.append)(lambda: fault)
    assert final is fault and len(slept) == 3
    assert random.getstate() == state


# -- the whole run, as a user runs it ---------------------------------------------------------------

# Forces the warning that leaked the token: the global random state changes during every draw of a
# Hypothesis example (in Schemathesis, outside the block where it records warnings itself). As a
# `sitecustomize`, so that it is in place in every process of the run, the engine's own included.
FORCE_RANDOM_IN_DRAWS = """
import random

from schemathesis.generation.hypothesis import examples

drawn = examples._add_examples


def _touching_random(value):
    random.random()
    return value


def _add_examples(strategy, *args, **kwargs):
    return drawn(strategy.map(_touching_random), *args, **kwargs)


examples._add_examples = _add_examples
"""


@pytest.mark.slow
def test_a_quiet_run_prints_its_verdict_only_and_leaves_nothing_behind(
    tmp_path: Path, embedded_mock: EmbeddedMock, mock_tokens: tuple[str, str]
) -> None:
    write, readonly = mock_tokens
    cwd, temporary, reports = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "reports"
    cwd.mkdir()
    temporary.mkdir()
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "sitecustomize.py").write_text(FORCE_RANDOM_IN_DRAWS)
    environment = child_environment(
        {"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly, "TMPDIR": str(temporary)}, path_first=[patches]
    )
    args = ["run", "-q", "--base-url", embedded_mock.base_url, "--project", PROJECT]
    result = subprocess.run(
        [sys.executable, "-m", "retry_contract", *args, "--max-examples", "10", "--report-dir", str(reports)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["verdict: conformant (25 of 25 MUST requirements judged)"]
    assert result.stderr == ""
    written = "".join(path.read_text(errors="replace") for path in reports.iterdir())
    # The warning was raised, and what it printed is a note of the run, with the placeholder only.
    assert "Hypothesis warned" in written and PLACEHOLDER_AUTHORIZATION in written
    assert write not in written
    assert sorted(path.name for path in cwd.iterdir()) == []
    assert not list(temporary.glob("retry-contract-hypothesis-*"))
