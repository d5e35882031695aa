#!/usr/bin/env python3
"""The standalone mock's memory (RSS) under many session requests, with and without its bounds.

Each configuration runs in a fresh process of its own (the mock, `EmbeddedMock` on a free loopback
port): the benchmark reads the process's resident set size from /proc before and after sending it
N session requests (`POST /sessions`, pipelined in batches on one connection, as fast as it answers),
and optionally M executions that finish at once (a session and a run each). It prints, per
configuration, RSS before and after, the growth per item (divided by sessions + executions), and what
the store holds at the end.

Configurations:
- `unbounded`: the bounds set so high they never apply (what the mock did before it had them: every
  session kept for the nonce TTL of an hour, every execution for ever);
- `default`: `MockConfig()`'s bounds (max_sessions, max_finished_executions);
- `small`: --max-sessions / --max-finished-executions (by default 1 000 and 100).

    .venv/bin/python benchmarks/mock_memory.py                      # 150k sessions, 2k executions
    .venv/bin/python benchmarks/mock_memory.py --sessions 20000 --configs small unbounded

Linux only (RSS from /proc/PID/status). RSS includes what the allocator keeps after Python frees it,
so it shows growth, not exact sizes; the store's own counts are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

PROJECT = "contract-test"
TOKEN = "mock-write-token"
BATCH = 500
# The child: the mock in its own process; it prints its port, then answers "sizes" on stdin with the
# store's counts, until stdin closes.
CHILD = """
import json, sys
from cdf_workflows_mock import EmbeddedMock, MockConfig
limits = json.loads(sys.argv[1])
with EmbeddedMock(MockConfig(**limits)) as mock:
    print(mock.port, flush=True)
    for line in sys.stdin:
        print(json.dumps(mock.app.state.store.sizes()), flush=True)
"""
UNBOUNDED = 10**12


@dataclass
class Result:
    name: str
    limits: dict[str, int]
    rss_before: int
    rss_after: int
    sizes: dict[str, int]
    seconds: float


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def pipelined(sock: socket.socket, reader: BinaryIO, requests: list[tuple[str, bytes]]) -> list[Any]:
    """Send the (path, body) POSTs together and read their answers in order."""
    out = bytearray()
    for path, body in requests:
        out += (
            f"POST /api/v1/projects/{PROJECT}{path} HTTP/1.1\r\nHost: mock\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\n\r\n"
        ).encode() + body
    sock.sendall(out)
    answers = []
    for _ in requests:
        status = int(reader.readline().split(b" ")[1])
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = json.loads(reader.read(length))
        if status != 200:
            raise RuntimeError(f"unexpected {status}: {body}")
        answers.append(body)
    return answers


SESSION = ("/sessions", b'{"items":[{"tokenExchange":true}]}')


def measure(name: str, limits: dict[str, int], sessions: int, executions: int) -> Result:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(limits)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        port = int(child.stdout.readline())
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        reader = sock.makefile("rb")
        workflow = f"memory-{os.getpid()}"
        pipelined(sock, reader, [("/workflows", json.dumps({"items": [{"externalId": workflow}]}).encode())])
        task = {"externalId": "t", "type": "function", "parameters": {"function": {"externalId": "f"}}}
        version = {"workflowExternalId": workflow, "version": "1", "workflowDefinition": {"tasks": [task]}}
        pipelined(sock, reader, [("/workflows/versions", json.dumps({"items": [version]}).encode())])
        pipelined(sock, reader, [SESSION])  # every import and first allocation done before "before"
        rss_before = rss_bytes(child.pid)
        start = time.monotonic()
        for done in range(0, sessions, BATCH):
            pipelined(sock, reader, [SESSION] * min(BATCH, sessions - done))
        run = f"/workflows/{workflow}/versions/1/run"
        for done in range(0, executions, BATCH):
            nonces = [
                a["items"][0]["nonce"]
                for a in pipelined(sock, reader, [SESSION] * min(BATCH, executions - done))
            ]
            pipelined(
                sock, reader, [(run, json.dumps({"authentication": {"nonce": n}}).encode()) for n in nonces]
            )
        seconds = time.monotonic() - start
        rss_after = rss_bytes(child.pid)
        child.stdin.write("sizes\n")
        child.stdin.flush()
        sizes = json.loads(child.stdout.readline())
        reader.close()
        sock.close()
        return Result(name, limits, rss_before, rss_after, sizes, seconds)
    finally:
        child.stdin.close()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=150_000)
    parser.add_argument("--executions", type=int, default=2_000)
    parser.add_argument("--max-sessions", type=int, default=1_000, help="the small configuration's cap")
    parser.add_argument(
        "--max-finished-executions", type=int, default=100, help="the small configuration's cap"
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["unbounded", "default", "small"],
        choices=["unbounded", "default", "small"],
    )
    args = parser.parse_args()
    configs = {
        "unbounded": {"max_sessions": UNBOUNDED, "max_finished_executions": UNBOUNDED},
        "default": {},
        "small": {"max_sessions": args.max_sessions, "max_finished_executions": args.max_finished_executions},
    }
    mib = 1024 * 1024
    print(f"{args.sessions} session requests, then {args.executions} executions (a session and a run each)")
    print("| configuration | bounds | RSS before | RSS after | growth | per item | store at the end | time |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.configs:
        result = measure(name, configs[name], args.sessions, args.executions)
        growth = result.rss_after - result.rss_before
        bounds = (
            ", ".join(f"{k}={v:,}" for k, v in result.limits.items()).replace(f"{UNBOUNDED:,}", "none")
            or "defaults"
        )
        per_request = growth / max(args.sessions + args.executions, 1)
        print(
            f"| {name} | {bounds} | {result.rss_before / mib:.1f} MiB | {result.rss_after / mib:.1f} MiB "
            f"| {growth / mib:+.1f} MiB | {per_request:.0f} B | {json.dumps(result.sizes)} "
            f"| {result.seconds:.0f} s |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
