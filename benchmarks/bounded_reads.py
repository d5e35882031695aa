"""Wall time and peak RSS of reading one hostile answer, per transport, before and after the bounds.

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/bounded_reads.py --before-src /work/main/src

Each case runs in a child process of its own (its peak RSS is the kernel's, from wait4) against the
hostile loopback server of the self-tests (tests/support/hostile_server.py): a head or a body dripped a byte
every 0.1 s, a stall after the head, a gzip bomb (2 GiB inflated) and a 2 GiB plain body. "before"
runs the same client code from another source tree (the suite before the bounds; for `requests`,
a plain session read as Schemathesis reads it), capped at --before-limit seconds and --before-memory
GiB of address space so that it cannot take the machine down; "after" runs this tree's.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

BEHAVIOURS = ("drip-head", "drip-body", "stall", "gzip-bomb", "plain-2gib")
TRANSPORTS = ("httpx", "http.client", "requests")
_LONG_SEGMENT = "a" * (70 * 1024)


def _child(transport: str, url: str, timeout: float) -> None:
    """Read one answer with this tree's client (whichever tree PYTHONPATH names); print what came."""
    from retry_contract.cdf_client import CdfClient
    from retry_contract.credentials import StaticToken
    from retry_contract.resilience import RetryPolicy
    from retry_contract.secrets_registry import SecretRegistry

    outcome: dict[str, object]
    if transport == "requests":
        import requests

        session = requests.Session()
        try:
            from retry_contract.bounded_read import ReadLimits
            from retry_contract.fuzz_transport import bound_session

            bound_session(session, ReadLimits(timeout))
        except ImportError:
            pass  # before: the session Schemathesis makes, unbounded
        started = time.monotonic()
        try:
            response = session.get(url, timeout=timeout, stream=True)
            outcome = {"status": response.status_code, "body_bytes": len(response.content)}
        except requests.exceptions.RequestException as error:
            outcome = {"error": type(error).__name__}
    else:
        bounded = "max_response_bytes" in inspect.signature(CdfClient).parameters
        client = CdfClient(
            f"{urlsplit(url).scheme}://{urlsplit(url).netloc}",
            "p",
            StaticToken("t"),
            SecretRegistry(),
            timeout=timeout,
            retry_policy=RetryPolicy(attempts=1),
        )
        started = time.monotonic()
        target = url if transport == "httpx" else url.replace("/benchmark/", f"/{_LONG_SEGMENT}/")
        exchange = client.send("GET", target, token=None)
        outcome = {
            "status": exchange.status,
            "body_bytes": len(exchange.response_body),
            "over_cap": getattr(exchange, "body_over_cap", None) if bounded else None,
            "fault": exchange.fault is not None,
        }
    outcome["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(outcome))


def _measure(command: list[str], env: dict[str, str], limit: float, memory_gib: float) -> dict:
    """Run `command` in a child capped at `memory_gib` of address space and `limit` seconds."""

    def cap_memory() -> None:
        size = int(memory_gib * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    started = time.monotonic()
    child = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=cap_memory
    )
    killed = False
    # wait4, not poll: the child's own rusage (its peak RSS), whether it ended or was killed.
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if not killed and time.monotonic() - started > limit:
            child.send_signal(signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    child.returncode = status
    wall = time.monotonic() - started
    out = child.stdout.read().decode() if child.stdout else ""
    err = child.stderr.read().decode() if child.stderr else ""
    result: dict = {"wall_s": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}
    if killed:
        result["outcome"] = f"still running at {limit:g} s: killed"
    elif "MemoryError" in err:
        result["outcome"] = f"MemoryError at the {memory_gib:g} GiB address-space cap"
    elif out.strip():
        result["outcome"] = out.strip().splitlines()[-1]
    else:
        last = (err.strip() or " ").splitlines()[-1]
        result["outcome"] = f"exit {os.waitstatus_to_exitcode(status)}: {last}"
    return result


def _run_case(src: Path, transport: str, url: str, timeout: float, limit: float, memory_gib: float) -> dict:
    command = [sys.executable, __file__, "--child", transport, url, "--timeout", str(timeout)]
    return _measure(command, {**os.environ, "PYTHONPATH": str(src)}, limit, memory_gib)


def _whole_run(
    src: Path, bloat_mib: float, limit: float, memory_gib: float, cap_mib: int | None = None
) -> dict:
    """A whole run (embedded in-process app, fuzzing included) whose every retry answer is bloated."""
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "BLOAT_MIB": str(bloat_mib),
        "CDF_TOKEN": "example-write-token",
        "CDF_READONLY_TOKEN": "example-readonly-token",
    }
    command = [sys.executable, "-m", "retry_contract.cli", "run", "-q", "--app", "benchmarks.bloated_app:app"]
    command += ["--project", "example-project", "--report-dir", f"/tmp/bounded-reads-{os.getpid()}"]
    if cap_mib is not None:
        command += ["--max-response-mib", str(cap_mib)]
    return _measure(command, env, limit, memory_gib)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", nargs=2, metavar=("TRANSPORT", "URL"))
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--before-src", type=Path, default=None, help="source tree of the suite before")
    parser.add_argument("--before-limit", type=float, default=20.0)
    parser.add_argument("--before-memory", type=float, default=6.0)
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--behaviours", default=",".join(BEHAVIOURS))
    parser.add_argument(
        "--whole-run",
        type=float,
        action="append",
        default=[],
        metavar="MIB",
        help="also measure a whole run whose retry answers are all MIB MiB (repeatable)",
    )
    parser.add_argument("--cap-mib", type=int, default=None, help="--max-response-mib of the whole runs")
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.timeout)
        return
    if args.whole_run:
        trees = [("after", ROOT / "src", 900.0, 8.0)]
        if args.before_src is not None:
            trees.insert(0, ("before", args.before_src, 900.0, args.before_memory))
        for bloat in args.whole_run:
            for tree, src, limit, memory in trees:
                result = _whole_run(src, bloat, limit, memory, args.cap_mib if tree == "after" else None)
                cap = f" (--max-response-mib {args.cap_mib})" if args.cap_mib and tree == "after" else ""
                print(
                    f"whole run, retry answers of {bloat:g} MiB{cap}, {tree}: {result['wall_s']} s, "
                    f"peak RSS {result['peak_rss_mib']} MiB: {result['outcome']}",
                    flush=True,
                )
        return

    from support.hostile_server import hostile_server

    trees = [("after", ROOT / "src", args.timeout + 30, 8.0)]
    if args.before_src is not None:
        trees.insert(0, ("before", args.before_src, args.before_limit, args.before_memory))
    print(f"timeout {args.timeout:g} s; default cap 16 MiB")
    print(f"{'case':<22}{'transport':<13}{'tree':<8}{'wall s':>8}{'peak RSS MiB':>14}  outcome")
    with hostile_server() as server:
        for behaviour in args.behaviours.split(","):
            for transport in args.transports.split(","):
                for tree, src, limit, memory in trees:
                    url = f"{server.url}/benchmark/{behaviour}"
                    result = _run_case(src, transport, url, args.timeout, limit, memory)
                    print(
                        f"{behaviour:<22}{transport:<13}{tree:<8}{result['wall_s']:>8}"
                        f"{result['peak_rss_mib']:>14}  {result['outcome']}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
