"""How long `SecretRegistry.redact` takes on a report of megabytes with hundreds of nonces.

The report is made to look like the JSON report of a long run: failure records with curl commands,
URLs with percent escapes, response excerpts with `\\u` escapes, and now and then a nonce (raw, or
base64- or hex-encoded as a hostile server might echo it). Prints the medians of a few timings, wall
and CPU: on a shared machine the wall time mostly measures the other tenants.

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/redaction_speed.py [--megabytes 10] [--nonces 300]
        [--shared-prefix]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import time

from retry_contract.secrets_registry import REPLACEMENT, SecretRegistry


def synthetic_report(megabytes: float, nonces: list[str], seed: int = 7) -> str:
    draw = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    records: list[str] = []
    size = 0
    while size < megabytes * 1_000_000:
        nonce = draw.choice(nonces)
        shown = draw.choice([nonce, base64.b64encode(nonce.encode()).decode(), nonce.encode().hex()])
        other = "".join(draw.choice(alphabet) for _ in range(43))
        record = json.dumps(
            {
                "requirement": "SEM-NONCE",
                "message": f"retry answered 400 for a fresh nonce; body excerpt: Grüße {shown}",
                "reproduce": (
                    "curl -i -X POST 'https://api.example/api/v1/projects/p/workflows/executions/"
                    f"id%20{draw.randrange(10**6)}/retry' -H 'content-type: application/json' "
                    f'--data-binary \'{{"authentication": {{"nonce": "{other}"}}}}\''
                ),
                "response_body": "The retry was refused because the execution is in status RUNNING. " * 3,
            }
        )
        records.append(record)
        size += len(record) + 2
    return "[\n" + ",\n".join(records) + "\n]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=float, default=10)
    parser.add_argument("--nonces", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--shared-prefix",
        action="store_true",
        help="Nonces that all start alike, as JWTs of one header do (the worst case of the index).",
    )
    arguments = parser.parse_args()
    draw = random.Random(11)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    prefix = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." if arguments.shared_prefix else ""
    nonces = [prefix + "".join(draw.choice(alphabet) for _ in range(43)) for _ in range(arguments.nonces)]
    registry = SecretRegistry()
    started = time.perf_counter()
    for nonce in nonces:
        registry.add(nonce)
    registering = time.perf_counter() - started
    report = synthetic_report(arguments.megabytes, nonces)
    timings, cpu = [], []
    for _ in range(arguments.repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        redacted = registry.redact(report)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    assert not any(nonce in redacted for nonce in nonces)
    print(
        f"{len(report) / 1e6:.1f} MB, {arguments.nonces} nonces registered in {registering * 1000:.0f} ms: "
        f"redact {statistics.median(timings):.3f} s wall, {statistics.median(cpu):.3f} s CPU "
        f"(medians of {arguments.repeat}; on a loaded machine the CPU time is the figure), "
        f"{redacted.count(REPLACEMENT)} replacements"
    )


if __name__ == "__main__":
    main()
