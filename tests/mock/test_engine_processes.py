"""The fuzzing engines' processes: forked by one engine host per process, they send nothing before
they are started, and none of them outlives its run, however the run ends."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdf_workflows_mock import EmbeddedMock
from retry_contract import engine_host
from retry_contract.cli import main
from retry_contract.engine_processes import ENGINE_PHASES, FuzzSettings, engines_made
from retry_contract.fuzz_protocol import CallAsked, CallGrant
from support.project import PROJECT, child_environment

SETTINGS = FuzzSettings(seed=20230101, max_examples=3, pool_size=1)
GONE_WITHIN_SECONDS = 10.0

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


def _stat(pid: int) -> list[str] | None:
    """State, parent, ... of `pid` (from /proc); None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _is_live(pid: int) -> bool:
    """Whether `pid` runs (a killed engine stays a zombie until the engine host reaps it)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _all_gone(pids: list[int]) -> bool:
    """Whether every one has ended: SIGKILL is sent, the kernel ends them within moments."""
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while any(_is_live(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@needs_proc
def test_engines_that_are_never_started_send_nothing_and_end_with_their_run() -> None:
    with engines_made(SETTINGS) as engines:
        assert [engine.settings.phases for engine in engines] == list(ENGINE_PHASES)
        pids = [engine.pid() for engine in engines]
        assert len(set(pids)) == len(engines)
        assert all(_is_live(pid) for pid in pids)
    assert _all_gone(pids)
    assert not any(engine.finished for engine in engines)


@needs_proc
def test_an_engine_stopped_in_the_middle_of_its_cases_is_ended(embedded_mock: EmbeddedMock) -> None:
    with engines_made(SETTINGS) as engines:
        pids = [engine.pid() for engine in engines]
        first = engines[0]
        assert first.start(f"{embedded_mock.base_url}/api/v1/projects/{PROJECT}")
        # It asks before each case; answered without a credential, the case goes out refused.
        assert isinstance(first.receive(), CallAsked)
        first.connection.send(CallGrant(None))
        assert isinstance(first.receive(), CallAsked)
        # The run stops here, with the engine waiting for its next grant.
    assert _all_gone(pids)


@needs_proc
def test_later_runs_fork_their_engines_from_the_same_host() -> None:
    with engines_made(SETTINGS) as first:
        first_pids = [engine.pid() for engine in first]
        first_parents = {(_stat(pid) or ["", "0"])[1] for pid in first_pids}
    with engines_made(SETTINGS) as second:
        second_pids = [engine.pid() for engine in second]
        second_parents = {(_stat(pid) or ["", "0"])[1] for pid in second_pids}
    assert set(first_pids).isdisjoint(second_pids)
    assert len(first_parents) == 1 and first_parents == second_parents
    (host,) = first_parents
    assert int(host) != os.getpid()


@pytest.mark.slow
def test_a_script_without_a_main_guard_runs_once(
    tmp_path: Path, embedded_mock: EmbeddedMock, mock_tokens: tuple[str, str]
) -> None:
    """The engines are forked from a fresh interpreter, not `multiprocessing` children: the caller's
    script is not imported (and so not run) again in them."""
    write, readonly = mock_tokens
    script = tmp_path / "unguarded.py"
    marker = tmp_path / "ran"
    script.write_text(
        "from pathlib import Path\n"
        f"with Path({str(marker)!r}).open('a') as ran:\n"
        "    ran.write('x')\n"
        "from retry_contract.cli import main\n"
        "main()\n"
    )
    environment = child_environment({"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly})
    args = ["run", "-q", "--base-url", embedded_mock.base_url, "--project", PROJECT]
    result = subprocess.run(
        [sys.executable, str(script), *args, "--max-examples", "3", "--explore", "0"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert marker.read_text() == "x"


def test_the_hosts_warm_up_leaves_only_unicode_tables_behind_and_prints_nothing(tmp_path: Path) -> None:
    """It runs every phase against a port that refuses connections, in the working directory of
    whoever started the run: no `.hypothesis/` or `.schemathesis/` is left there, nothing is printed.
    Hypothesis's Unicode tables, which it computed, are kept in the user's cache for the next run."""
    working, cache = tmp_path / "working", tmp_path / "cache"
    working.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "from retry_contract.fuzz_engine import _warm_up; _warm_up()"],
        capture_output=True,
        text=True,
        env=child_environment({"XDG_CACHE_HOME": str(cache)}),
        cwd=working,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (result.stdout, result.stderr) == ("", "")
    assert list(working.iterdir()) == []
    kept = sorted(path.name for path in cache.rglob("*") if path.is_file())
    assert "charmap.json.gz" in kept and any(name.startswith("codec-") for name in kept)
    assert all(path.parent.parent.name == "unicode_data" for path in cache.rglob("*.json.gz"))
    assert all(name.endswith(".json.gz") for name in kept), kept


def test_a_machine_that_starts_no_more_processes_gets_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, mock_tokens: tuple[str, str]
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(engine_host, "_host", None)
    monkeypatch.setattr(engine_host.subprocess, "Popen", refused)
    monkeypatch.setenv("CDF_TOKEN", mock_tokens[0])
    result = CliRunner().invoke(main, ["run", "-q"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "retry-contract: could not run: cannot start the process of the fuzzing engines (Resource "
        "temporarily unavailable); --no-fuzz runs the scenarios without them"
    ]
