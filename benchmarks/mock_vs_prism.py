#!/usr/bin/env python3
"""Our mock and Prism's mock side by side under the same load: requests per second and latency.

Each server runs alone (one after the other, never at the same time) in a process of its own on a
free loopback port, and wrk loads it with the same requests through `wrk_requests.lua`:

- retry, fresh: `POST …/workflows/executions/{id}/retry` with `{"authentication": {"nonce": …}}`,
  a new execution and an unused nonce each time. For our stateful mock every one is a real successful
  retry (200): the executions are made FAILED through the mock's real endpoints beforehand (a session
  per nonce, one workflow and version, a run, its task failed through task update). The mock keeps at
  most 10,000 finished executions, so the fresh retries run in bursts of at most 9,000, each prepared
  before it and short enough not to run out (checked: a burst that ran out is measured again,
  shorter), until the bursts add up to the duration; counts and seconds are added up, latencies
  pooled. Prism gets the same bursts for the same seconds.
- retry, repeated: one retry request sent over and over, as a wrk user would try first. Our mock
  answers it 200 once, then refuses it (400: the nonce is used up; the execution is RUNNING too).
- GET an execution: `GET …/workflows/executions/{id}`. Our spec holds only the retry operation, so
  Prism answers 404 from it; Prism is then given Cognite's own OpenAPI document of the workflow
  endpoints (spec/upstream/cognite-openapi-workflows.json) for the GET, and the report says so.

Our mock is started as a user would start it (`retry-contract mock`, its defaults: uvicorn, no access
log); Prism (`@stoplight/prism-cli`, pinned, installed with npm into --cache-dir when missing) runs
`prism mock DOCUMENT --dynamic false`: static, it answers with the document's examples (its other
defaults kept: it logs every request). Prism serves the operations at the document's paths without the
servers' base path, so it is sent `/workflows/…` where our mock gets `/api/v1/projects/{project}/
workflows/…`; bodies, headers and token are the same. Both servers log into files in the log directory.
Besides wrk's numbers, the CPU time the server's processes used during each measurement is reported per
request: on a machine that runs other work too it varies much less than requests per second.

    .venv/bin/python benchmarks/mock_vs_prism.py --quick          # 2 s per measurement, to try
    .venv/bin/python benchmarks/mock_vs_prism.py                  # wrk -t2 -c16 -d10s, one round
    .venv/bin/python benchmarks/mock_vs_prism.py --rounds 3       # medians of three rounds
    .venv/bin/python benchmarks/mock_vs_prism.py --threads 4 --connections 64 --duration 30
    .venv/bin/python benchmarks/mock_vs_prism.py --at-commit HEAD   # the mock as committed
    .venv/bin/python benchmarks/mock_vs_prism.py --py-spy-dir /tmp/spy   # also profile the mock (root)

Needs wrk (installed with apt-get when run as root, otherwise: `sudo apt-get install wrk`), Node.js
and npm. Prints a Markdown table (also --markdown FILE): per server and request kind requests per
second, p50 and p99 latency, server CPU per request, non-2xx answers, and our mock ÷ Prism; then the
machine. Exit status: 0 when everything was measured, 1 when a measurement is not valid (a prepared
retry was refused, or a burst ran out even in one second), 2 when a tool is missing or a server did
not start.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

from time_to_verdict import extract_commit, source_label

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "spec" / "retry-workflow-execution.yaml"
UPSTREAM_SPEC = REPO / "spec" / "upstream" / "cognite-openapi-workflows.json"
LUA_SCRIPT = Path(__file__).resolve().with_name("wrk_requests.lua")

PRISM_PACKAGE = "@stoplight/prism-cli"
# Pinned. The newest release that runs on Node 20: 5.15 and later declare Node >= 24.
PRISM_VERSION = "5.14.2"
DEFAULT_CACHE = Path.home() / ".cache" / "retry-contract" / "prism"
DEFAULT_PROJECT = "contract-test"  # the mock's default project

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 30.0
NPM_TIMEOUT_SECONDS = 600.0
APT_TIMEOUT_SECONDS = 600.0
PREPARE_WORKERS = 8
# Fresh retries are measured in bursts of at most this many: the mock keeps at most 10,000 finished
# executions (`MockConfig.max_finished_executions`; a FAILED one is finished) and forgets the oldest.
BURST_PAIRS = 9_000
# A burst lasts long enough to use at most this share of its executions at the last burst's rate.
BURST_USE = 0.8
FIRST_BURST_SECONDS = 2
WORKFLOW = "mock-vs-prism"
VERSION = "1"
LOG_TAIL_CHARS = 2000
QUICK_SECONDS = 2
QUICK_WARM_UP_SECONDS = 1


@dataclass(frozen=True)
class Kind:
    key: str
    title: str


RETRY_FRESH = Kind("retry-fresh", "retry, a fresh FAILED execution and unused nonce each")
RETRY_SAME = Kind("retry-same", "retry, one request repeated")
GET_EXECUTION = Kind("get", "GET an execution")
KINDS = (RETRY_FRESH, RETRY_SAME, GET_EXECUTION)


@dataclass(frozen=True)
class Load:
    threads: int
    connections: int
    duration: int  # seconds
    warm_up: int  # seconds, before the first measurement of each server (0: none)
    timeout: int  # seconds: wrk counts a slower answer as a timeout

    def wrk_options(self) -> list[str]:
        return [f"-t{self.threads}", f"-c{self.connections}", f"-d{self.duration}s", "--latency"]


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    status_errors: int  # answers that are not 2xx or 3xx
    socket_errors: int  # connect, read, write errors and timeouts
    reused: int  # requests sent again after a thread ran out of prepared ones
    histogram: dict[int, int]  # latency in microseconds -> how many requests took that long

    @property
    def per_second(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    def percentile_us(self, percent: float) -> int:
        """As wrk computes it: the smallest latency with at least `percent` of the requests at or below."""
        total = sum(self.histogram.values())
        rank = math.floor(percent / 100 * total + 0.5 + 0.5)  # C's round(x + 0.5), as wrk's stats.c
        seen = 0
        for value in sorted(self.histogram):
            seen += self.histogram[value]
            if seen >= rank:
                return value
        return max(self.histogram, default=0)

    @property
    def p50_us(self) -> int:
        return self.percentile_us(50.0)

    @property
    def p99_us(self) -> int:
        return self.percentile_us(99.0)

    @classmethod
    def parse(cls, output: str, histogram_file: Path) -> WrkResult:
        found = re.search(r"^WRK_RESULT (\{.*\})$", output, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"wrk printed no result line:\n{output[-LOG_TAIL_CHARS:]}")
        data = json.loads(found.group(1))
        histogram: dict[int, int] = {}
        for line in histogram_file.read_text(encoding="ascii").splitlines():
            value, count = line.split()
            histogram[int(value)] = histogram.get(int(value), 0) + int(count)
        return cls(
            requests=data["requests"],
            duration_us=data["duration_us"],
            status_errors=data["status_errors"],
            socket_errors=sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")),
            reused=data["reused"],
            histogram=histogram,
        )

    @classmethod
    def merge(cls, results: Sequence[WrkResult]) -> WrkResult:
        """Bursts as one run: counts and durations added up, latencies pooled."""
        histogram: dict[int, int] = {}
        for result in results:
            for value, count in result.histogram.items():
                histogram[value] = histogram.get(value, 0) + count
        return cls(
            requests=sum(r.requests for r in results),
            duration_us=sum(r.duration_us for r in results),
            status_errors=sum(r.status_errors for r in results),
            socket_errors=sum(r.socket_errors for r in results),
            reused=sum(r.reused for r in results),
            histogram=histogram,
        )


# --- tools ------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk executable; installed with apt-get when missing and this process is root."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise ToolMissing("wrk is missing: install it, e.g. `sudo apt-get install wrk`")
    print("wrk is missing: apt-get install -y wrk", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in ([apt, "install", "-y", "wrk"], [apt, "update"], [apt, "install", "-y", "wrk"]):
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, timeout=APT_TIMEOUT_SECONDS, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise ToolMissing("wrk is missing and `apt-get install -y wrk` did not install it")


def ensure_prism(cache: Path, version: str) -> Path:
    """Prism's executable in `cache`, installed there with npm when missing or of another version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise ToolMissing(
            "Node.js and npm are needed for Prism: install them (e.g. apt-get install nodejs npm)"
        )
    binary = cache / "node_modules" / ".bin" / "prism"
    if installed_prism_version(cache) == version and binary.exists():
        return binary
    print(f"installing {PRISM_PACKAGE}@{version} into {cache} (npm)", file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(cache), "--save-exact", "--no-audit", "--no-fund"]
    # Prism depends on @scarf/scarf, whose install step reports downloads unless told not to.
    env = dict(os.environ, SCARF_ANALYTICS="false")
    done = subprocess.run(
        [*command, f"{PRISM_PACKAGE}@{version}"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0 or installed_prism_version(cache) != version or not binary.exists():
        raise ToolMissing(
            f"npm could not install {PRISM_PACKAGE}@{version}:\n{done.stderr[-LOG_TAIL_CHARS:]}"
        )
    return binary


def installed_prism_version(cache: Path) -> str | None:
    manifest = cache / "node_modules" / "@stoplight" / "prism-cli" / "package.json"
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def find_suite() -> str:
    beside = Path(sys.executable).parent / "retry-contract"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("retry-contract")
    if on_path is None:
        raise ToolMissing(f"retry-contract is not next to {sys.executable} or on PATH")
    return on_path


class ToolMissing(Exception):
    """A tool the benchmark needs is missing and could not be installed."""


def command_output(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


# --- servers ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """A server started in a process group of its own, its output in `log`; ready once its port accepts."""

    def __init__(self, name: str, command: Sequence[str], port: int, log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.log = log
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
        raise ServerFailed(f"{self.name} did not start on port {self.port}:\n{tail}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class ServerFailed(Exception):
    """A server did not start, or did not answer the preparation as the workflow model says."""


# --- requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    def describe(self) -> str:
        """`400 "The nonce has already been used…"`: the status and the error message, if any."""
        message = None
        if isinstance(self.body, dict):
            error = self.body.get("error")
            if isinstance(error, dict):
                message = error.get("message")
            elif isinstance(self.body.get("title"), str):  # Prism's problem+json
                message = self.body["title"]
        if not isinstance(message, str):
            return str(self.status)
        short = message if len(message) <= 60 else message[:57] + "…"
        return f'{self.status} "{short}"'


class Api:
    """Requests over one kept-alive loopback connection (http.client: cheap, so the server is measured)."""

    def __init__(self, port: int, token: str) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS)
        self._token = token

    def close(self) -> None:
        self._connection.close()

    def call(self, method: str, path: str, body: object | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {self._token}"}
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        self._connection.request(method, path, body=data, headers=headers)
        response = self._connection.getresponse()
        raw = response.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw[:200].decode("utf-8", "replace")
        return Answer(response.status, payload)


class Provisioner:
    """Retryable executions made through the mock's real endpoints only (workflow-model.md)."""

    def __init__(self, port: int, project: str, token: str) -> None:
        self.port = port
        self.prefix = f"/api/v1/projects/{project}"
        self.token = token

    def expect(self, api: Api, method: str, path: str, body: object | None = None) -> Any:
        answer = api.call(method, self.prefix + path, body)
        if not 200 <= answer.status < 300:
            raise ServerFailed(f"{method} {path}: {answer.describe()}")
        return answer.body

    def nonce(self, api: Api) -> str:
        items = self.expect(api, "POST", "/sessions", {"items": [{"tokenExchange": True}]})["items"]
        return str(items[0]["nonce"])

    def create_workflow(self) -> None:
        task = {
            "externalId": "only-task",
            "type": "function",
            "parameters": {"function": {"externalId": "benchmark-noop"}, "isAsyncComplete": True},
            "retries": 0,
        }
        version = {
            "workflowExternalId": WORKFLOW,
            "version": VERSION,
            "workflowDefinition": {"tasks": [task]},
        }
        api = Api(self.port, self.token)
        try:
            self.expect(api, "POST", "/workflows", {"items": [{"externalId": WORKFLOW}]})
            self.expect(api, "POST", "/workflows/versions", {"items": [version]})
        finally:
            api.close()

    def failed_execution(self, api: Api) -> str:
        """A new execution whose only task failed for good: FAILED, retryable."""
        run = {"authentication": {"nonce": self.nonce(api)}}
        execution = self.expect(api, "POST", f"/workflows/{WORKFLOW}/versions/{VERSION}/run", run)
        execution_id = str(execution["id"])
        detailed = self.expect(api, "GET", f"/workflows/executions/{execution_id}")
        task_id = detailed["executedTasks"][0]["id"]
        update = {"status": "FAILED_WITH_TERMINAL_ERROR"}
        self.expect(api, "POST", f"/workflows/tasks/{task_id}/update", update)
        return execution_id  # FAILED: a retry that is refused shows as non-2xx in wrk's count

    def retry_pairs(self, count: int, workers: int = PREPARE_WORKERS) -> list[tuple[str, str]]:
        """`count` (FAILED execution id, unused nonce) pairs, made on `workers` connections at once."""
        shares = [count // workers + (1 if index < count % workers else 0) for index in range(workers)]
        done = [0]
        lock = threading.Lock()
        started = time.perf_counter()

        def make(share: int) -> list[tuple[str, str]]:
            api = Api(self.port, self.token)
            pairs = []
            try:
                for _ in range(share):
                    pairs.append((self.failed_execution(api), self.nonce(api)))
                    with lock:
                        done[0] += 1
                        if done[0] % 5000 == 0:
                            print(f"  … {done[0]}/{count} prepared", file=sys.stderr, flush=True)
            finally:
                api.close()
            return pairs

        with ThreadPoolExecutor(workers) as pool:
            pairs = [pair for part in pool.map(make, [s for s in shares if s]) for pair in part]
        seconds = time.perf_counter() - started
        print(
            f"  {count} retryable executions and nonces prepared in {seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        return pairs


def retry_line(prefix: str, execution_id: str, nonce: str) -> str:
    body = json.dumps({"authentication": {"nonce": nonce}}, separators=(",", ":"))
    return f"POST\t{prefix}/workflows/executions/{execution_id}/retry\t{body}"


def get_line(prefix: str, execution_id: str) -> str:
    return f"GET\t{prefix}/workflows/executions/{execution_id}\t"


def probe(port: int, token: str, line: str) -> Answer:
    """Send one line of a requests file once."""
    method, path, body = line.split("\t")
    api = Api(port, token)
    try:
        return api.call(method, path, json.loads(body) if body else None)
    finally:
        api.close()


# --- measuring --------------------------------------------------------------------------------------


def group_cpu_seconds(group: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # After "pid (comm) ": state, ppid, pgrp, ... utime is the 14th field, stime the 15th.
        fields = text[text.rindex(")") + 2 :].split()
        if len(fields) > 12 and fields[2] == str(group):
            total += int(fields[11]) + int(fields[12])
    return total / ticks


@dataclass(frozen=True)
class Run:
    result: WrkResult
    server_cpu_seconds: float
    profiled: bool

    @classmethod
    def merge(cls, runs: Sequence[Run]) -> Run:
        return cls(
            WrkResult.merge([run.result for run in runs]),
            sum(run.server_cpu_seconds for run in runs),
            any(run.profiled for run in runs),
        )

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_seconds * 1e6 / self.result.requests if self.result.requests else math.nan


@dataclass
class Bench:
    wrk: str
    load: Load
    token: str
    work: Path  # scratch files: the requests given to wrk
    logs: Path  # wrk's output and the servers' logs
    py_spy_dir: Path | None
    round: int = 0
    profiles: int = 0  # py-spy recordings made so far

    def wrk_run(self, label: str, port: int, lines: Sequence[str], seconds: int) -> WrkResult:
        requests_file = self.work / f"{label}.tsv"
        requests_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        histogram = self.work / f"{label}.histogram"
        histogram.unlink(missing_ok=True)
        load = self.load
        command = [self.wrk, f"-t{load.threads}", f"-c{load.connections}", f"-d{seconds}s", "--latency"]
        command += ["--timeout", f"{load.timeout}s", "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}"]
        command += ["--", str(requests_file), self.token, str(load.threads)]
        env = dict(os.environ, WRK_HISTOGRAM=str(histogram))
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        with (self.logs / "wrk.log").open("a", encoding="utf-8") as log:
            log.write(
                f"### round {self.round + 1}, {label}: {shlex.join(command)}\n{done.stdout}{done.stderr}\n"
            )
        if done.returncode != 0 or not histogram.exists():
            output = (done.stdout + done.stderr)[-LOG_TAIL_CHARS:]
            raise RuntimeError(f"wrk failed ({done.returncode}):\n{output}")
        return WrkResult.parse(done.stdout, histogram)

    def warm_up(self, label: str, port: int, lines: Sequence[str]) -> None:
        if self.load.warm_up > 0:
            self.wrk_run(f"{label}-warm-up", port, lines, self.load.warm_up)

    def measure(
        self, label: str, server: ServerProcess, lines: Sequence[str], seconds: int | None = None
    ) -> Run:
        """wrk over `lines` for `seconds` (default: the load's duration), and the server's CPU time
        meanwhile; with --py-spy-dir, py-spy records our mock meanwhile (its rows are then marked:
        sampling slows a process down)."""
        seconds = self.load.duration if seconds is None else seconds
        spy: subprocess.Popen[bytes] | None = None
        if self.py_spy_dir is not None and server.name == MOCK:
            self.profiles += 1
            output = self.py_spy_dir / f"round{self.round + 1}-{self.profiles:02d}-{label}.txt"
            spy = start_py_spy(server.pid, output, seconds)
        try:
            before = group_cpu_seconds(server.pid)
            result = self.wrk_run(label, server.port, lines, seconds)
            return Run(result, group_cpu_seconds(server.pid) - before, spy is not None)
        finally:
            if spy is not None:
                try:
                    spy.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()


def start_py_spy(pid: int, output: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling `pid` for `seconds` into collapsed stacks, or None without py-spy. Only the
    thread holding the interpreter lock is sampled (--gil): where the Python process's CPU goes."""
    beside = Path(sys.executable).parent / "py-spy"
    executable = str(beside) if beside.exists() else shutil.which("py-spy")
    if executable is None:
        print("py-spy is missing (pip install py-spy): the mock is not profiled", file=sys.stderr)
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [executable, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250"]
    command += ["--nonblocking", "--gil", "--format", "raw", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


MOCK = "our mock"


@dataclass
class Measurement:
    server: str  # a row label: MOCK or "Prism …"
    kind: Kind
    round: int
    run: Run
    answers: str  # what the server answered, in words
    valid: bool = True


@dataclass(frozen=True)
class Burst:
    """Fresh retries measured in one wrk run: (execution id, nonce) pairs, and how long it ran."""

    pairs: list[tuple[str, str]]
    seconds: int


@dataclass
class Fixtures:
    """What the mock's preparation made, sent to Prism too: the same ids and nonces."""

    same_pair: tuple[str, str]  # the execution and nonce of the repeated retry
    get_id: str  # the execution of the GET (RUNNING: the mock never forgets a running one)
    bursts: list[Burst]  # the fresh retries, as our mock was sent them


@dataclass
class Notes:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if text not in self.lines:
            self.lines.append(text)


def measure_mock(
    bench: Bench, suite: str, project: str, env: dict[str, str], notes: Notes
) -> tuple[list[Measurement], Fixtures]:
    """A fresh mock: the repeated retry, the fresh retries (in bursts), then the GET."""
    port = free_port()
    write = bench.token
    env = env | {"MOCK_WRITE_TOKEN": write, "MOCK_READONLY_TOKEN": secrets.token_urlsafe(16)}
    command = [suite, "mock", "--port", str(port), "--project", project]
    server = ServerProcess(MOCK, command, port, bench.logs / f"mock-round{bench.round + 1}.log", env)
    measurements: list[Measurement] = []

    def add(kind: Kind, run: Run, answers: str, valid: bool = True) -> None:
        measurements.append(Measurement(server.name, kind, bench.round, run, answers, valid))

    with server:
        print(f"{MOCK}: pid {server.pid}, port {port}", file=sys.stderr, flush=True)
        provisioner = Provisioner(port, project, write)
        provisioner.create_workflow()
        prefix = provisioner.prefix
        [(same_id, same_nonce)] = provisioner.retry_pairs(1, workers=1)

        # The request repeated: the first is a real retry, the others meet a used nonce.
        same = retry_line(prefix, same_id, same_nonce)
        first, second = probe(port, write, same), probe(port, write, same)
        bench.warm_up("mock-retry-same", port, [same])
        run = bench.measure("mock-retry-same", server, [same])
        add(RETRY_SAME, run, f"{first.describe()} once (probe), then {second.describe()}")

        bursts, run, valid = fresh_bursts(bench, server, provisioner)
        result = run.result
        answers = "200, each a real retry" if result.status_errors == 0 else f"{result.status_errors} not 2xx"
        answers += f"; {len(bursts)} burst(s)"
        if result.reused:
            answers += f"; {result.reused} sent after a burst's executions ran out"
        add(RETRY_FRESH, run, answers, valid and result.status_errors == 0 and result.socket_errors == 0)

        # The GET reads the execution of the repeated retry: RUNNING since its first retry, so the
        # mock keeps it, however many finished executions the fresh retries made.
        line = get_line(prefix, same_id)
        answer = probe(port, write, line)
        run = bench.measure("mock-get", server, [line])
        add(GET_EXECUTION, run, f"{answer.status}, {body_size(answer)} B")
    notes.add(
        f"{MOCK.capitalize()}: `retry-contract mock`, as a user starts it (its defaults: uvicorn with the "
        "mock's h11 protocol, asyncio, no access log), a fresh one each round. The executions "
        "it retried were FAILED (one task, failed for good), made through its real endpoints before each "
        "burst: a session per nonce, run, task update."
    )
    notes.add(
        f"Fresh retries run in bursts of at most {BURST_PAIRS:,} executions, prepared before each burst, "
        "until the bursts add up to the duration: the mock keeps at most 10,000 finished executions "
        "(it forgets the oldest), and a burst is long enough to use at most "
        f"{BURST_USE:.0%} of its executions at the last burst's rate (one that ran out is measured "
        "again, shorter). Requests and seconds are added up and latencies pooled; Prism is sent the "
        "same bursts for the same seconds."
    )
    return measurements, Fixtures((same_id, same_nonce), same_id, bursts)


def fresh_bursts(
    bench: Bench, server: ServerProcess, provisioner: Provisioner
) -> tuple[list[Burst], Run, bool]:
    """Fresh retries in bursts until they add up to the duration; whether every burst was valid."""
    bursts: list[Burst] = []
    runs: list[Run] = []
    remaining = bench.load.duration
    rate: float | None = None
    redone = 0
    while remaining > 0:
        if rate is None:
            seconds = min(remaining, FIRST_BURST_SECONDS)
        else:
            seconds = max(1, min(remaining, int(BURST_PAIRS * BURST_USE / rate)))
        print(
            f"{MOCK}: preparing {BURST_PAIRS} retryable executions for a {seconds} s burst", file=sys.stderr
        )
        pairs = provisioner.retry_pairs(BURST_PAIRS)
        lines = [retry_line(provisioner.prefix, execution_id, nonce) for execution_id, nonce in pairs]
        run = bench.measure(f"mock-retry-fresh-{len(runs) + redone + 1}", server, lines, seconds)
        rate = max(run.result.per_second, 1.0)
        if run.result.reused and seconds > 1 and redone < 3:
            redone += 1
            print(f"{MOCK}: the burst ran out of executions; measured again, shorter", file=sys.stderr)
            continue
        bursts.append(Burst(pairs, seconds))
        runs.append(run)
        remaining -= seconds
        if run.result.reused:
            return bursts, Run.merge(runs), False  # runs out even in one second: not measurable
    return bursts, Run.merge(runs), True


def body_size(answer: Answer) -> int:
    return len(json.dumps(answer.body, separators=(",", ":")))


def measure_prism(
    bench: Bench,
    fixtures: Fixtures,
    prism: Path,
    version: str,
    extra_args: Sequence[str],
    notes: Notes,
    project: str,
) -> list[Measurement]:
    """Prism on our spec: both retries, and the GET if it serves it; else Prism on Cognite's document
    for the GET."""
    measurements: list[Measurement] = []
    env = dict(os.environ, SCARF_ANALYTICS="false")
    mock_prefix = f"/api/v1/projects/{project}"

    def start(document: Path, log_name: str) -> ServerProcess:
        port = free_port()
        command = [str(prism), "mock", str(document), "-p", str(port), "-h", "127.0.0.1"]
        command += ["--dynamic", "false", *extra_args]
        log = bench.logs / f"{log_name}-round{bench.round + 1}.log"
        return ServerProcess(f"Prism {version}", command, port, log, env)

    def prefix_for(server: ServerProcess, line_of: Callable[[str], str]) -> str:
        """Our mock's base path if Prism serves it, else none (the paths as the document writes them)."""
        if probe(server.port, bench.token, line_of(mock_prefix)).status != 404:
            return mock_prefix
        notes.add(
            "Prism serves each operation at the path the document writes, without the servers' base "
            f"path: it answers `{mock_prefix}/workflows/…` with 404, so it was sent `/workflows/…` "
            f"where {MOCK} got the full path; bodies, headers and token are the same."
        )
        return ""

    def add(label: str, kind: Kind, run: Run, answers: str) -> None:
        measurements.append(Measurement(label, kind, bench.round, run, answers))

    same_id, same_nonce = fixtures.same_pair
    with start(SPEC, "prism-spec") as server:
        print(f"Prism on our spec: pid {server.pid}, port {server.port}", file=sys.stderr, flush=True)
        label = f"{server.name}, our spec"
        prefix = prefix_for(server, lambda p: retry_line(p, same_id, same_nonce))
        same = retry_line(prefix, same_id, same_nonce)
        first, second = probe(server.port, bench.token, same), probe(server.port, bench.token, same)
        bench.warm_up("prism-retry-same", server.port, [same])
        run = bench.measure("prism-retry-same", server, [same])
        add(label, RETRY_SAME, run, f"{first.describe()}, {second.describe()}, … (the spec's example)")

        runs = []
        for index, burst in enumerate(fixtures.bursts):
            lines = [retry_line(prefix, execution_id, nonce) for execution_id, nonce in burst.pairs]
            runs.append(bench.measure(f"prism-retry-fresh-{index + 1}", server, lines, burst.seconds))
        run = Run.merge(runs)
        answers = "200" if run.result.status_errors == 0 else f"{run.result.status_errors} not 2xx"
        answers += f" (the spec's example); the same {len(runs)} burst(s)"
        if run.result.reused:
            answers += f"; {run.result.reused} sent after a burst's executions ran out (it keeps no state)"
        add(label, RETRY_FRESH, run, answers)

        get_answer = probe(server.port, bench.token, get_line(prefix, fixtures.get_id))
        if get_answer.status != 404:
            run = bench.measure("prism-get", server, [get_line(prefix, fixtures.get_id)])
            add(label, GET_EXECUTION, run, f"{get_answer.status}, {body_size(get_answer)} B")
    if get_answer.status == 404:
        notes.add(
            f"Our spec holds only the retry operation: Prism answers its GET with {get_answer.describe()}. "
            "For the GET Prism was given Cognite's own OpenAPI document of the workflow endpoints "
            f"(`{UPSTREAM_SPEC.relative_to(REPO)}`), in static mode too; it also checks its answer "
            "against the document (it reports the violations of the example in an `sl-violations` header)."
        )
        with start(UPSTREAM_SPEC, "prism-upstream") as server:
            print(f"Prism on Cognite's document: pid {server.pid}, port {server.port}", file=sys.stderr)
            prefix = prefix_for(server, lambda p: get_line(p, fixtures.get_id))
            line = get_line(prefix, fixtures.get_id)
            answer = probe(server.port, bench.token, line)
            bench.warm_up("prism-get", server.port, [line])
            run = bench.measure("prism-get", server, [line])
            add(
                f"{server.name}, Cognite's document",
                GET_EXECUTION,
                run,
                f"{answer.status}, {body_size(answer)} B",
            )
    notes.add(
        f"Prism: `prism mock DOCUMENT --dynamic false{''.join(' ' + a for a in extra_args)}`, a fresh one "
        "each round: static, every answer is the document's example whatever the execution, and it keeps "
        "no state; it logs every request at its default level (info), into a file."
    )
    return measurements


# --- the report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One server and request kind over the rounds: medians, and the sums of counts."""

    server: str
    kind: Kind
    measurements: list[Measurement]

    def median(self, value: Callable[[Run], float]) -> float:
        return statistics.median(value(m.run) for m in self.measurements)

    @property
    def per_second(self) -> float:
        return self.median(lambda run: run.result.per_second)

    @property
    def p50_ms(self) -> float:
        return self.median(lambda run: run.result.p50_us / 1000)

    @property
    def p99_ms(self) -> float:
        return self.median(lambda run: run.result.p99_us / 1000)

    @property
    def cpu_us(self) -> float:
        return self.median(lambda run: run.cpu_us_per_request)

    @property
    def valid(self) -> bool:
        return all(m.valid for m in self.measurements)


def summaries(measurements: list[Measurement]) -> list[Summary]:
    found: dict[tuple[str, str], list[Measurement]] = {}
    for kind in KINDS:
        for m in measurements:
            if m.kind == kind:
                found.setdefault((kind.key, m.server), []).append(m)
    return [Summary(server, ms[0].kind, ms) for (_, server), ms in found.items()]


def table_markdown(rows: list[Summary], rounds: int) -> str:
    median = "median of rounds" if rounds > 1 else "one round"
    lines = [
        f"| request | server | requests/s ({median}) | p50 ms | p99 ms | server CPU µs per request "
        "| requests | non-2xx | socket errors | answers | requests/s, each round |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ms = row.measurements
        flags = ("" if row.valid else " (not valid)") + (
            " (profiled)" if any(m.run.profiled for m in ms) else ""
        )
        answers = "; ".join(dict.fromkeys(m.answers for m in ms))
        lines.append(
            f"| {row.kind.title} | {row.server}{flags} | {row.per_second:,.0f} | {row.p50_ms:.2f} "
            f"| {row.p99_ms:.2f} | {row.cpu_us:,.0f} | {sum(m.run.result.requests for m in ms):,} "
            f"| {sum(m.run.result.status_errors for m in ms):,} "
            f"| {sum(m.run.result.socket_errors for m in ms):,} | {answers} "
            f"| {', '.join(f'{m.run.result.per_second:,.0f}' for m in ms)} |"
        )
    return "\n".join(lines) + "\n"


def ratio_markdown(rows: list[Summary]) -> tuple[str, bool | None]:
    """Our mock ÷ Prism per request kind, and whether the goal on the retry path is met."""
    lines = [
        "| request | our mock ÷ Prism: requests/s | p99 latency | server CPU per request |",
        "|---|---|---|---|",
    ]
    goal: bool | None = None
    for kind in KINDS:
        ours = [row for row in rows if row.kind == kind and row.server == MOCK]
        theirs = [row for row in rows if row.kind == kind and row.server != MOCK]
        if not ours or not theirs:
            continue
        mine, prism = ours[0], theirs[0]
        throughput = mine.per_second / prism.per_second if prism.per_second else math.inf
        p99 = mine.p99_ms / prism.p99_ms if prism.p99_ms else math.inf
        cpu = mine.cpu_us / prism.cpu_us if prism.cpu_us else math.inf
        lines.append(f"| {kind.title} | {throughput:.2f} | {p99:.2f} | {cpu:.2f} |")
        if kind == RETRY_FRESH:
            goal = mine.valid and throughput >= 2.0 and p99 < 1.0
    return "\n".join(lines) + "\n", goal


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_markdown(label: str, wrk: str, prism_version: str, loads: tuple[float, float]) -> str:
    servers = ", ".join(f"{name} {package_version(name)}" for name in ("uvicorn", "starlette", "h11"))
    extras = [f"{name} {package_version(name)}" for name in ("httptools", "uvloop") if package_version(name)]
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores (shared by wrk and the server), "
        f"{platform.platform()}; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end.  \n"
        f"Python {platform.python_version()} ({servers}; {', '.join(extras) or 'no httptools, no uvloop'}), "
        f"Node.js {command_output(['node', '--version'])}, {PRISM_PACKAGE} {prism_version}, "
        f"{command_output([wrk, '-v']).split(' Copyright')[0]}.  \n"
        f"Measured: {label}.\n"
    )


def rerun_command(args: argparse.Namespace) -> str:
    command = [".venv/bin/python", "benchmarks/mock_vs_prism.py"]
    if args.quick:
        command.append("--quick")
    else:
        command += ["--duration", str(args.duration)]
    command += [
        "--threads",
        str(args.threads),
        "--connections",
        str(args.connections),
        "--rounds",
        str(args.rounds),
    ]
    command += [f"--prism-arg={extra}" for extra in args.prism_arg]
    if args.at_commit:
        command += ["--at-commit", args.at_commit]
    return shlex.join(command)


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (default 16)")
    parser.add_argument(
        "--duration", type=int, default=10, help="wrk -d, seconds per measurement (default 10)"
    )
    parser.add_argument(
        "--warm-up",
        type=int,
        default=3,
        help="seconds of load before a server's first measurement (default 3)",
    )
    parser.add_argument("--timeout", type=int, default=5, help="wrk --timeout, seconds (default 5)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="mock then Prism, this many times; medians reported (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS} s per measurement, to try it")
    parser.add_argument("--project", default=DEFAULT_PROJECT, help=f"of our mock (default {DEFAULT_PROJECT})")
    parser.add_argument("--prism-version", default=PRISM_VERSION, help=f"default {PRISM_VERSION} (pinned)")
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"for Prism (default {DEFAULT_CACHE})"
    )
    parser.add_argument(
        "--prism-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="passed to `prism mock` (repeatable), e.g. --prism-arg=--verboseLevel --prism-arg=warn",
    )
    parser.add_argument(
        "--at-commit", metavar="REV", help="measure our mock as committed, not the working tree"
    )
    parser.add_argument(
        "--py-spy-dir", type=Path, metavar="DIR", help="record our mock with py-spy meanwhile (needs root)"
    )
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown here")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warm_up = QUICK_SECONDS, min(args.warm_up, QUICK_WARM_UP_SECONDS)
    if args.threads < 1 or args.connections < args.threads or args.duration < 1 or args.timeout < 1:
        parser.error("--threads and --duration must be positive, --connections at least --threads")
    if args.warm_up < 0 or args.rounds < 1:
        parser.error("--warm-up must not be negative, --rounds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk = ensure_wrk()
        suite = find_suite()
        prism = ensure_prism(args.cache_dir.expanduser(), args.prism_version)
    except (ToolMissing, subprocess.TimeoutExpired) as error:
        print(f"mock_vs_prism: {error}", file=sys.stderr)
        return 2
    load = Load(args.threads, args.connections, args.duration, args.warm_up, args.timeout)
    logs = Path(tempfile.mkdtemp(prefix="mock-vs-prism-logs-"))
    notes = Notes()
    load_start = os.getloadavg()[0]
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="mock-vs-prism-") as scratch:
        env = dict(os.environ)
        commit: str | None = None
        if args.at_commit:
            source = Path(scratch) / "source"
            source.mkdir()
            try:
                commit = extract_commit(args.at_commit, source)
            except RuntimeError as error:
                print(f"mock_vs_prism: {error}", file=sys.stderr)
                return 2
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source / "src"), env.get("PYTHONPATH")]))
        label = source_label(str(REPO / "src" / "retry_contract" / "__init__.py"), commit)
        print(f"measuring {label}; logs in {logs}", file=sys.stderr, flush=True)
        work = Path(scratch) / "requests"
        work.mkdir()
        bench = Bench(wrk, load, secrets.token_urlsafe(16), work, logs, args.py_spy_dir)
        try:
            for index in range(args.rounds):
                bench.round = index
                print(f"round {index + 1}/{args.rounds}", file=sys.stderr, flush=True)
                mine, fixtures = measure_mock(bench, suite, args.project, env, notes)
                theirs = measure_prism(
                    bench, fixtures, prism, args.prism_version, args.prism_arg, notes, args.project
                )
                measurements += mine + theirs
        except (ServerFailed, RuntimeError, OSError) as error:
            print(f"mock_vs_prism: {error}\nlogs: {logs}", file=sys.stderr)
            return 2
    rows = summaries(measurements)
    ratios, goal = ratio_markdown(rows)
    verdict = {None: "not judged", True: "met", False: "not met"}[goal]
    intro = (
        f"wrk {' '.join(load.wrk_options())} --timeout {load.timeout}s over loopback, kept-alive "
        f"connections; one server at a time, each warmed up for {load.warm_up} s first; "
        f"{args.rounds} round(s) of our mock then Prism."
    )
    cpu_note = (
        "Server CPU: user + system time of the server's processes during the measurement, per request "
        "(less sensitive than requests/s to what else the machine runs)."
    )
    markdown = (
        f"{intro} {cpu_note}\n\n"
        + table_markdown(rows, args.rounds)
        + "\n"
        + ratios
        + "\nGoal on the retry path with fresh executions (at least twice Prism's requests/s, with a lower "
        f"p99): **{verdict}**.\n\n"
        + "".join(f"- {line}\n" for line in notes.lines)
        + "\n"
        + machine_markdown(label, wrk, args.prism_version, (load_start, os.getloadavg()[0]))
        + f"\nRerun:\n\n```sh\n{rerun_command(args)}\n```\n"
    )
    print(markdown)
    print(f"logs (wrk output, both servers' request logs): {logs}", file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown, encoding="utf-8")
    return 0 if all(m.valid for m in measurements) else 1


if __name__ == "__main__":
    sys.exit(main())
