"""`retry-contract run` end to end, as a user runs it: exit 0 on the mock, 1 on a broken server,
2 when it cannot run — always with a one-line reason and never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdf_workflows_mock import MockConfig, create_app
from support.project import CLI, PROJECT

FAST = ["--max-examples", "10"]


def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    # GITHUB_*: under GitHub Actions a run would append to the job's real step summary.
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CDF_", "GITHUB_"))}
    environment.update(env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=environment, timeout=timeout)


def report(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((directory / "retry-contract.json").read_text())
    return loaded


def outcome(data: dict[str, Any], requirement: str) -> str:
    return next(str(r["outcome"]) for r in data["requirements"] if r["id"] == requirement)


@pytest.mark.slow
def test_embedded_mock_is_conformant_with_every_must_covered(tmp_path: Path) -> None:
    result = run_cli(["run", "--report-dir", str(tmp_path), *FAST])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    data = report(tmp_path)
    assert data["verdict"] == "conformant"
    musts = [r for r in data["requirements"] if r["level"] == "MUST"]
    assert all(r["outcome"] == "passed" for r in musts), [r["id"] for r in musts if r["outcome"] != "passed"]
    assert data["fuzzing"]["successful_retries"] > 0, "steering never reached the success path"
    assert (tmp_path / "retry-contract-junit.xml").is_file()
    assert "Traceback" not in result.stdout + result.stderr


def _string_created_time(app: Any) -> Callable[..., Any]:
    """A server bug: the retry answers createdTime as a string."""

    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        is_retry = scope["type"] == "http" and scope["path"].endswith("/retry") and scope["method"] == "POST"
        if not is_retry:
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = b"".join(chunks)
                    if start["status"] == 200:
                        data = json.loads(body)
                        data["createdTime"] = str(data["createdTime"])
                        body = json.dumps(data).encode()
                    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return broken


@pytest.mark.slow
def test_a_contract_break_fails_the_run_and_names_the_requirement(
    tmp_path: Path, asgi_server: Any, mock_tokens: tuple[str, str]
) -> None:
    write, readonly = mock_tokens
    app = _string_created_time(create_app(MockConfig.with_tokens(PROJECT, write, readonly)))
    with asgi_server(app) as base_url:
        result = run_cli(
            ["run", "--base-url", base_url, "--project", PROJECT, "--report-dir", str(tmp_path), *FAST],
            env={"CDF_TOKEN": write, "CDF_READONLY_TOKEN": readonly},
        )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    data = report(tmp_path)
    assert outcome(data, "RESP-TIME") == "failed"
    failure = next(r for r in data["requirements"] if r["id"] == "RESP-TIME")["failures"][0]
    assert failure["reproduce"].startswith("curl ")
    assert write not in (tmp_path / "retry-contract.json").read_text()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_target_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        [
            "run",
            "--base-url",
            f"http://127.0.0.1:{_closed_port()}",
            "--project",
            "p",
            "--report-dir",
            str(tmp_path),
        ],
        env={"CDF_TOKEN": "some-token-value"},
    )
    assert result.returncode == 2
    assert "cannot reach" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_refused_credentials_exit_2(tmp_path: Path, embedded_mock: Any) -> None:
    result = run_cli(
        ["run", "--base-url", embedded_mock.base_url, "--project", PROJECT, "--report-dir", str(tmp_path)],
        env={"CDF_TOKEN": "not-a-valid-token"},
    )
    assert result.returncode == 2
    assert "refused the credentials" in result.stderr
    assert "not-a-valid-token" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--base-url", "ftp://example.com", "--project", "p"], "not an http(s) URL"),
        (["run", "--base-url", "http://127.0.0.1:1"], "--project is required"),
        (["run", "--max-examples", "zero"], "is not a valid integer"),
        (["run", "--no-such-flag"], "No such option"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = run_cli(args, env={"CDF_TOKEN": "t0ken-value"})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_base_url_without_token_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        ["run", "--base-url", "http://127.0.0.1:1", "--project", "p", "--report-dir", str(tmp_path)]
    )
    assert result.returncode == 2
    assert "CDF_TOKEN" in result.stderr


@pytest.mark.slow
def test_a_run_that_leaves_musts_unjudged_says_so_and_can_be_made_to_fail(tmp_path: Path) -> None:
    bounded = ["run", "--no-fuzz", "--max-requests", "60", "--report-dir", str(tmp_path)]
    lenient = run_cli(bounded)
    assert lenient.returncode == 0
    data = report(tmp_path)
    judged, total = (int(n) for n in data["must_requirements_judged"].split(" MUST")[0].split(" of "))
    assert judged < total
    assert f"{judged} of {total} MUST requirements judged" in " ".join(lenient.stdout.split())
    strict = run_cli([*bounded, "--require-all-must"])
    assert strict.returncode == 2
    assert "inconclusive (--require-all-must)" in report(tmp_path)["verdict"]
    complete = run_cli(["run", "--no-fuzz", "--require-all-must", "--report-dir", str(tmp_path)])
    assert complete.returncode == 0
    assert report(tmp_path)["must_requirements_judged"] == f"{total} of {total} MUST requirements judged"
