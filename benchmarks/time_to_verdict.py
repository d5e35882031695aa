#!/usr/bin/env python3
"""Time to verdict when every response costs a network round trip: plain `st run` and retry-contract.

Each run gets a fresh mock on loopback with throwaway tokens, behind `latency_proxy.py`, which
holds every response back for --delay-ms (± --jitter-ms, seeded). Both tools get the same spec, seed,
--max-examples and token; they run alternately (st first in odd runs, the suite first in even ones) and
the medians are reported: wall seconds, CPU seconds of the tool's process (user + sys), the requests the
proxy saw, and exit codes. Both start every run with no Hypothesis caches, as on a fresh CI machine;
--warm-caches keeps each tool's across its runs instead (plain `st run`: `.hypothesis/` in its working
directory; the suite: its cache directory, XDG_CACHE_HOME), as on a developer's machine, primed by one
unmeasured run of each. The mock runs in a process of its own (`retry-contract mock`), as a real server
would (`--mock-in-process` serves it from this process instead); the proxy runs in this process.

    .venv/bin/python benchmarks/time_to_verdict.py --all                 # 25 ms, then 25 ± 15 ms; 3 runs each
    .venv/bin/python benchmarks/time_to_verdict.py --delay-ms 50 --runs 5 --extra-suite-arg=--concurrency=8
    .venv/bin/python benchmarks/time_to_verdict.py --all --at-commit HEAD   # the last commit, not the tree

--at-commit REV measures the project as committed (`git archive REV` into a temporary directory, put
first on the import path of this process and of both tools), so edits in progress are left out.
Exit status: 0 when every run finished with exit 0 or 1, 1 otherwise, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latency_proxy import Exchange, LatencyProxy

MOCK_START_SECONDS = 30.0

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SEED = 20230101  # retry_contract.runner.DEFAULT_SEED, repeated so --help needs no import
DEFAULT_MAX_EXAMPLES = 40
DEFAULT_JITTER_FOR_ALL_MS = 15.0
GIT_TIMEOUT_SECONDS = 60.0
TOOLS = ("st", "suite")
LABELS = {"st": "plain `st run`", "suite": "`retry-contract run`"}


@dataclass(frozen=True)
class Variant:
    delay_ms: float
    jitter_ms: float

    @property
    def title(self) -> str:
        if self.jitter_ms:
            return f"{self.delay_ms:g} ms ± {self.jitter_ms:g} ms per response"
        return f"{self.delay_ms:g} ms per response, fixed"


@dataclass
class Run:
    tool: str
    exit_code: int | None  # None: killed at --timeout
    wall: float
    cpu: float  # the tool's process: user + sys
    server_cpu: float  # this process (mock and proxy threads): user + sys
    requests: int
    connections: int
    phases: dict[str, float] = field(default_factory=dict)
    in_flight: float = 0.0  # seconds with at least one request in flight at the proxy
    overlap: float = 0.0  # mean requests in flight during those seconds
    mix: Counter[str] = field(default_factory=Counter)


@dataclass
class Tools:
    st: Path
    suite: Path


def find_tools() -> Tools | str:
    """The two executables (next to this Python first, then on PATH), or what is missing."""
    found: dict[str, Path] = {}
    for name in ("st", "retry-contract"):
        beside = Path(sys.executable).parent / name
        on_path = shutil.which(name)
        if beside.is_file() and os.access(beside, os.X_OK):
            found[name] = beside
        elif on_path:
            found[name] = Path(on_path)
    missing = [name for name in ("st", "retry-contract") if name not in found]
    if missing:
        return f"not found next to {sys.executable} or on PATH: {', '.join(missing)}"
    return Tools(found["st"], found["retry-contract"])


def git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def extract_commit(rev: str, into: Path) -> str:
    """`git archive rev` unpacked into `into`; its short commit id. Raises RuntimeError."""
    short = git("rev-parse", "--short", f"{rev}^{{commit}}")
    if short is None:
        raise RuntimeError(f"not a commit of {REPO}: {rev}")
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", short],
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"git archive {short}: {error}") from None
    if done.returncode != 0:
        raise RuntimeError(f"git archive {short}: {done.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(into, filter="data")
    return short


def source_label(package_file: str, commit: str | None) -> str:
    if commit is not None:
        return f"commit {commit} (git archive: as committed, edits in progress left out)"
    head = git("rev-parse", "--short", "HEAD") or "unknown commit"
    if not Path(package_file).resolve().is_relative_to(REPO):
        return f"retry_contract from {Path(package_file).parent} (repository at {head})"
    dirty = git("status", "--porcelain", "--", "src", "spec")
    return f"working tree at {head}" + (" + uncommitted changes in src/ or spec/" if dirty else " (clean)")


def run_bounded(
    command: Sequence[str], env: dict[str, str], cwd: Path, timeout: float, log: Path
) -> int | None:
    """Run to completion, output to `log`; None when it outlived `timeout` (its process group is killed)."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            return None


def phase_seconds(report: Any) -> dict[str, float]:
    """Numeric leaves of the report's "phases" (any nesting of objects and lists), keyed by path."""
    flat: dict[str, float] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int | float):
            flat[path] = float(value)
        elif isinstance(value, dict):
            name = value.get("name", value.get("phase"))
            if isinstance(name, str) and isinstance(value.get("seconds"), int | float):
                flat[f"{path} / {name}" if path else name] = float(value["seconds"])
                return
            for key, item in value.items():
                walk(item, f"{path} / {key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, path if isinstance(item, dict) else f"{path} / {index}")

    if isinstance(report, dict) and "phases" in report:
        walk(report["phases"], "")
    return flat


@dataclass
class Bench:
    tools: Tools
    mock_factory: Callable[[str, str], AbstractContextManager[Any]]
    spec: Path
    project: str
    seed: int
    max_examples: int
    extra_suite_args: list[str]
    timeout: float
    pythonpath: str | None
    # Kept across runs with --warm-caches: st's working directory and the suite's XDG_CACHE_HOME.
    caches: Path | None = None

    def command(self, tool: str, base_url: str, token: str, report_dir: Path) -> list[str]:
        if tool == "st":
            return [
                str(self.tools.st),
                "run",
                str(self.spec),
                "--url",
                f"{base_url}/api/v1/projects/{self.project}",
                "-H",
                f"Authorization: Bearer {token}",
                "--seed",
                str(self.seed),
                "--max-examples",
                str(self.max_examples),
                "--no-color",
            ]
        return [
            str(self.tools.suite),
            "run",
            "--base-url",
            base_url,
            "--project",
            self.project,
            "--seed",
            str(self.seed),
            "--max-examples",
            str(self.max_examples),
            "--report-dir",
            str(report_dir),
            *self.extra_suite_args,
        ]

    def measure(self, tool: str, variant: Variant, logs: Path, index: int) -> Run:
        write, readonly = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        env = {key: value for key, value in os.environ.items() if not key.startswith("CDF_")}
        env |= {"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly, "NO_COLOR": "1"}
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.pythonpath, env.get("PYTHONPATH")]))
        with (
            self.mock_factory(write, readonly) as mock,
            LatencyProxy(
                mock.base_url, variant.delay_ms, variant.jitter_ms, seed=self.seed, record=True
            ) as proxy,
            tempfile.TemporaryDirectory(prefix="time-to-verdict-") as scratch,
        ):
            work = Path(scratch)  # no retry-contract.toml, no .hypothesis here
            kept = self.caches or work
            env["XDG_CACHE_HOME"] = str(kept / "user-cache")
            cwd = kept / "st-work" if tool == "st" else work
            cwd.mkdir(exist_ok=True)
            command = self.command(tool, proxy.base_url, write, work / "reports")
            log = logs / f"{variant.delay_ms:g}ms-{variant.jitter_ms:g}j-{index}-{tool}.log"
            children, own = (
                resource.getrusage(resource.RUSAGE_CHILDREN),
                resource.getrusage(resource.RUSAGE_SELF),
            )
            started = time.perf_counter()
            code = run_bounded(command, env, cwd, self.timeout, log)
            wall = time.perf_counter() - started
            children_after, own_after = (
                resource.getrusage(resource.RUSAGE_CHILDREN),
                resource.getrusage(resource.RUSAGE_SELF),
            )
            report_file = work / "reports" / "retry-contract.json"
            phases: dict[str, float] = {}
            if report_file.is_file():
                try:
                    phases = phase_seconds(json.loads(report_file.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    phases = {}
            requests, connections, exchanges = proxy.requests, proxy.connections, proxy.exchanges
        in_flight = seconds_in_flight(exchanges)
        return Run(
            tool,
            code,
            wall,
            _cpu(children_after) - _cpu(children),
            _cpu(own_after) - _cpu(own),
            requests,
            connections,
            phases,
            in_flight,
            sum(e.finished - e.started for e in exchanges) / in_flight if in_flight else 0.0,
            Counter(request_kind(e.method, e.target) for e in exchanges),
        )


def warm_up(base_url: str, project: str, token: str) -> None:
    """One run, fail and retry of a workflow, straight to the mock (the proxy does not see it): a fresh
    server process answers its first requests slowly (imports, first use of each code path), which a
    real server long up does not, and which would cost the tool that sends more at once more."""
    import httpx

    with httpx.Client(
        base_url=f"{base_url}/api/v1/projects/{project}", headers={"authorization": f"Bearer {token}"}
    ) as client:

        def nonce() -> str:
            answer = client.post("/sessions", json={"items": [{"tokenExchange": True}]}).json()
            return str(answer["items"][0]["nonce"])

        task = {
            "externalId": "t",
            "type": "function",
            "parameters": {"function": {"externalId": "f"}, "isAsyncComplete": True},
        }
        client.post("/workflows", json={"items": [{"externalId": "warm-up"}]})
        version = {"workflowExternalId": "warm-up", "version": "1", "workflowDefinition": {"tasks": [task]}}
        client.post("/workflows/versions", json={"items": [version]})
        execution = client.post(
            "/workflows/warm-up/versions/1/run", json={"authentication": {"nonce": nonce()}}
        ).json()
        detailed = client.get(f"/workflows/executions/{execution['id']}").json()
        task_id = detailed["executedTasks"][0]["id"]
        client.post(f"/workflows/tasks/{task_id}/update", json={"status": "FAILED_WITH_TERMINAL_ERROR"})
        client.post(
            f"/workflows/executions/{execution['id']}/retry", json={"authentication": {"nonce": nonce()}}
        )


class MockProcess:
    """The mock in a process of its own (`retry-contract mock`), as a real server would be: served from
    the benchmark's own process it would share one interpreter lock with the proxy, and a client that
    sends many requests at once would measure that lock rather than itself."""

    def __init__(self, suite: Path, project: str, write: str, readonly: str, env: dict[str, str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._command = [str(suite), "mock", "--port", str(self.port), "--project", project]
        self._project = project
        self._env = env | {"MOCK_WRITE_TOKEN": write, "MOCK_READONLY_TOKEN": readonly}
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MockProcess:
        self._process = subprocess.Popen(
            self._command, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + MOCK_START_SECONDS
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                warm_up(self.base_url, self._project, self._env["MOCK_WRITE_TOKEN"])
                return self
            except OSError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"the mock did not start on port {self.port}")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def seconds_in_flight(exchanges: list[Exchange]) -> float:
    """The length of the union of the requests' intervals."""
    total, current = 0.0, None
    for started, finished in sorted((e.started, e.finished) for e in exchanges):
        if current is None or started > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = [started, finished]
        else:
            current[1] = max(current[1], finished)
    return total + (current[1] - current[0] if current is not None else 0.0)


# Path segments kept as they are; any other segment becomes {x} (ids, names, odd fuzzed values).
LITERAL_SEGMENTS = frozenset(
    {
        *("api", "v1", "projects", "workflows", "executions", "retry", "cancel", "tasks", "update"),
        *("versions", "run", "sessions", "delete", "byids", "list"),
    }
)


def request_kind(method: str, target: str) -> str:
    """E.g. "GET …/workflows/executions/{x}": what a request was for, with its ids left out."""
    segments = target.split("?", 1)[0].split("/")
    kept = [
        "{project}" if before == "projects" else (s if s in LITERAL_SEGMENTS or not s else "{x}")
        for before, s in zip(["", *segments], segments, strict=False)
    ]
    path = "/".join(kept)
    return f"{method} {path.replace('/api/v1/projects/{project}', '…', 1)}"


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _order(index: int) -> tuple[str, ...]:
    return TOOLS if index % 2 == 0 else tuple(reversed(TOOLS))


def _exit_codes(runs: list[Run]) -> str:
    return ", ".join("timeout" if r.exit_code is None else str(r.exit_code) for r in runs)


def variant_markdown(variant: Variant, runs: list[Run]) -> str:
    by_tool = {tool: [r for r in runs if r.tool == tool] for tool in TOOLS}
    plain_wall = statistics.median(r.wall for r in by_tool["st"])
    lines = [
        f"### {variant.title}",
        "",
        "| tool | median wall s | median cpu s | median requests | median connections "
        "| mock+proxy cpu s | exit codes | wall s, each run | wall ÷ plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tool in TOOLS:
        mine = by_tool[tool]
        wall = statistics.median(r.wall for r in mine)
        lines.append(
            f"| {LABELS[tool]} | {wall:.1f} | {statistics.median(r.cpu for r in mine):.1f} "
            f"| {statistics.median(r.requests for r in mine):g} "
            f"| {statistics.median(r.connections for r in mine):g} "
            f"| {statistics.median(r.server_cpu for r in mine):.1f} | {_exit_codes(mine)} "
            f"| {', '.join(f'{r.wall:.1f}' for r in mine)} | {wall / plain_wall:.2f} |"
        )
    suite_runs = [r for r in by_tool["suite"] if r.phases]
    if suite_runs:
        names = list(dict.fromkeys(name for r in suite_runs for name in r.phases))
        lines += [
            "",
            "Suite phases (its JSON report), median over runs:",
            "",
            "| phase | median s |",
            "|---|---|",
        ]
        for name in names:
            values = [r.phases[name] for r in suite_runs if name in r.phases]
            lines.append(f"| {name} | {statistics.median(values):.2f} |")
    return "\n".join(lines) + "\n"


def time_markdown(variant: Variant, runs: list[Run]) -> str:
    lines = [
        f"### Where the wall time goes: {variant.title}",
        "",
        "A request is in flight from its head reaching the proxy to its response leaving it (server time"
        " plus the delay); with none in flight the tool is starting, generating, judging or sleeping.",
        "",
        "| tool | median wall s | a request in flight s | none in flight s | requests in flight, mean |",
        "|---|---|---|---|---|",
    ]
    for tool in TOOLS:
        mine = [r for r in runs if r.tool == tool]
        lines.append(
            f"| {LABELS[tool]} | {statistics.median(r.wall for r in mine):.1f} "
            f"| {statistics.median(r.in_flight for r in mine):.1f} "
            f"| {statistics.median(r.wall - r.in_flight for r in mine):.1f} "
            f"| {statistics.median(r.overlap for r in mine):.2f} |"
        )
    return "\n".join(lines) + "\n"


def mix_markdown(runs: list[Run], top: int = 12) -> str:
    """Requests by kind, median over runs, for both tools."""
    by_tool = {tool: [r.mix for r in runs if r.tool == tool] for tool in TOOLS}
    total = sum((mix for mixes in by_tool.values() for mix in mixes), Counter[str]())
    kinds = [kind for kind, _ in total.most_common()]
    lines = [
        "| request (median count per run) | " + " | ".join(LABELS[t] for t in TOOLS) + " |",
        "|---|---|---|",
    ]
    shown, rest = kinds[:top], kinds[top:]
    for kind in shown:
        counts = [statistics.median(m[kind] for m in by_tool[t]) for t in TOOLS]
        lines.append(f"| `{kind}` | " + " | ".join(f"{c:g}" for c in counts) + " |")
    if rest:
        counts = [statistics.median(sum(m[k] for k in rest) for m in by_tool[t]) for t in TOOLS]
        lines.append(f"| {len(rest)} other kinds | " + " | ".join(f"{c:g}" for c in counts) + " |")
    return "\n".join(lines) + "\n"


def machine_markdown(label: str, loads: tuple[float, float]) -> str:
    return (
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
        f"load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end.  \n"
        f"Measured: {label}.\n"
    )


def rerun_command(args: argparse.Namespace, commit: str | None) -> str:
    command = [".venv/bin/python", "benchmarks/time_to_verdict.py"]
    if args.all:
        command.append("--all")
    command += ["--delay-ms", f"{args.delay_ms:g}", "--jitter-ms", f"{args.jitter_ms:g}"]
    command += ["--runs", str(args.runs), "--max-examples", str(args.max_examples), "--seed", str(args.seed)]
    command += [f"--extra-suite-arg={extra}" for extra in args.extra_suite_arg]
    if args.warm_caches:
        command.append("--warm-caches")
    if commit:
        command += ["--at-commit", commit]
    return shlex.join(command)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay-ms", type=float, default=25.0, help="added to every response (default 25)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="± uniform, seeded (default 0)")
    parser.add_argument(
        "--all",
        action="store_true",
        help="run the fixed variant and a jitter variant "
        f"(--jitter-ms, or {DEFAULT_JITTER_FOR_ALL_MS:g} if 0)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and variant (default 3)")
    parser.add_argument("--max-examples", type=int, default=DEFAULT_MAX_EXAMPLES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="of both tools and of the jitter")
    parser.add_argument(
        "--extra-suite-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="passed to `retry-contract run` (repeatable), e.g. --extra-suite-arg=--concurrency=8",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per tool run (default 900)")
    parser.add_argument(
        "--mock-in-process",
        action="store_true",
        help="serve the mock from this process (it then shares one interpreter lock with the proxy)",
    )
    parser.add_argument(
        "--warm-caches",
        action="store_true",
        help="keep each tool's Hypothesis caches across its runs, primed by one unmeasured run of each",
    )
    parser.add_argument("--at-commit", metavar="REV", help="measure this commit, not the working tree")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.max_examples < 1 or args.timeout <= 0 or args.delay_ms < 0 or args.jitter_ms < 0:
        parser.error("--runs, --max-examples and --timeout must be positive; delay and jitter not negative")
    return args


def variants_of(args: argparse.Namespace) -> Iterator[Variant]:
    if not args.all:
        yield Variant(args.delay_ms, args.jitter_ms)
        return
    yield Variant(args.delay_ms, 0.0)
    yield Variant(args.delay_ms, args.jitter_ms or DEFAULT_JITTER_FOR_ALL_MS)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = find_tools()
    if isinstance(tools, str):
        print(f"time_to_verdict: {tools}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="time-to-verdict-source-") as source:
        commit: str | None = None
        if args.at_commit:
            try:
                commit = extract_commit(args.at_commit, Path(source))
            except RuntimeError as error:
                print(f"time_to_verdict: {error}", file=sys.stderr)
                return 2
            sys.path.insert(0, str(Path(source) / "src"))
        try:
            import retry_contract
            from cdf_workflows_mock import EmbeddedMock, MockConfig
            from retry_contract import contract
            from retry_contract.runner import MOCK_PROJECT
        except ImportError as error:
            print(f"time_to_verdict: cannot import retry_contract: {error}", file=sys.stderr)
            return 2

        def mock(write: str, readonly: str) -> AbstractContextManager[Any]:
            if args.mock_in_process:
                return EmbeddedMock(MockConfig.with_tokens(MOCK_PROJECT, write, readonly))
            env = dict(os.environ)
            if commit:
                env["PYTHONPATH"] = os.pathsep.join(
                    filter(None, [str(Path(source) / "src"), env.get("PYTHONPATH")])
                )
            return MockProcess(tools.suite, MOCK_PROJECT, write, readonly, env)

        bench = Bench(
            tools,
            mock,
            contract.spec_path(),
            MOCK_PROJECT,
            args.seed,
            args.max_examples,
            args.extra_suite_arg,
            args.timeout,
            str(Path(source) / "src") if commit else None,
        )
        label = source_label(retry_contract.__file__ or "", commit)
        print(f"measuring {label}", file=sys.stderr, flush=True)
        logs = Path(tempfile.mkdtemp(prefix="time-to-verdict-logs-"))
        if args.warm_caches:
            bench.caches = logs / "caches"
            bench.caches.mkdir()
            for tool in _order(0):
                bench.measure(tool, next(variants_of(args)), logs, -1)
        load_start = os.getloadavg()[0]
        sections = []
        all_runs: list[Run] = []
        for variant in variants_of(args):
            runs: list[Run] = []
            for index in range(args.runs):
                for tool in _order(index):
                    run = bench.measure(tool, variant, logs, index)
                    runs.append(run)
                    print(
                        f"{variant.title:34} run {index + 1}/{args.runs} {tool:5} "
                        f"exit {_exit_codes([run]):7} {run.wall:6.1f} s wall {run.cpu:5.1f} s cpu "
                        f"{run.requests:5} requests",
                        file=sys.stderr,
                        flush=True,
                    )
            sections.append(variant_markdown(variant, runs))
            sections.append(time_markdown(variant, runs))
            all_runs += runs
    markdown = (
        f"seed {args.seed}, {args.max_examples} examples per phase, {args.runs} runs per tool, "
        + ("Hypothesis caches kept across runs (primed)" if args.warm_caches else "no Hypothesis caches")
        + (f", suite args {shlex.join(args.extra_suite_arg)}" if args.extra_suite_arg else "")
        + "\n\n"
        + "\n".join(sections)
        + "\n### Requests by kind, all variants\n\n"
        + mix_markdown(all_runs)
        + "\n"
        + machine_markdown(label, (load_start, os.getloadavg()[0]))
        + f"\nRerun:\n\n```sh\n{rerun_command(args, commit)}\n```\n"
    )
    print(markdown)
    print(f"tool output: {logs}", file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown, encoding="utf-8")
    return 0 if all(r.exit_code in (0, 1) for r in all_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
