"""`retry-contract run --app module:attr`: a team's own ASGI or WSGI mock, tested in-process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from retry_contract.app_target import AppLoadError, InProcessServer, interface_of, load_app
from support.project import CLI, ROOT


def run_cli(*args: str, token: str = "example-write-token") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDF_")}
    env.update({"CDF_TOKEN": token, "CDF_READONLY_TOKEN": "example-readonly-token"})
    return subprocess.run(
        [*CLI, "run", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.slow
def test_an_asgi_app_is_tested_in_process(tmp_path: Path) -> None:
    result = run_cli(
        "--app",
        "examples.faithful_app:app",
        "--project",
        "example-project",
        "--report-dir",
        str(tmp_path),
        "--max-examples",
        "5",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "retry-contract.json").read_text())
    assert report["verdict"] == "conformant"


def test_a_wsgi_app_is_served_and_judged() -> None:
    result = run_cli("--app", "examples.wsgi_stub:app", "--project", "p")
    assert result.returncode == 2
    assert "does not look like a CDF API" in result.stderr


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("examples.faithful_app", "module:attribute"),
        ("examples.nope:app", "cannot import"),
        ("examples.faithful_app:nope", "no attribute"),
    ],
)
def test_bad_app_references_are_clear_errors(reference: str, message: str) -> None:
    with pytest.raises(AppLoadError, match=message):
        load_app(reference)
    result = run_cli("--app", reference, "--project", "p")
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_interfaces_are_told_apart_and_served() -> None:
    from examples.faithful_app import app as asgi_app
    from examples.wsgi_stub import app as wsgi_app

    assert interface_of(asgi_app) == "asgi3" and interface_of(wsgi_app) == "wsgi"
    import httpx

    with InProcessServer(wsgi_app) as server:
        assert httpx.get(server.base_url).status_code == 418
