"""A report directory that cannot be written is found before the first request: one line naming it,
exit 2, and nothing sent to the target (no workflow created, then a run whose reports are lost)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from retry_contract.cli.run import unwritable as _unwritable
from support.project import CLI, PROJECT


@pytest.fixture
def target() -> Iterator[tuple[str, socket.socket]]:
    """A port that listens but never answers: a connection to it would wait in its backlog."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield f"http://127.0.0.1:{server.getsockname()[1]}", server


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CDF_", "GITHUB_"))}
    environment["CDF_TOKEN"] = "report-dir-first-token"
    return subprocess.run([*CLI, "run", *args], capture_output=True, text=True, env=environment, timeout=60)


def _nothing_sent(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def test_an_unwritable_report_dir_stops_the_run_before_any_request(
    tmp_path: Path, target: tuple[str, socket.socket]
) -> None:
    (tmp_path / "file").write_text("not a directory")
    url, server = target
    directory = tmp_path / "file" / "reports"
    completed = _run(["--base-url", url, "--project", PROJECT, "--report-dir", str(directory), "-q"])
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert lines == [f"retry-contract: could not run: cannot write reports to {directory}: Not a directory"]
    assert "Traceback" not in completed.stderr + completed.stdout
    assert _nothing_sent(server)


def test_a_file_where_the_directory_should_be_is_named() -> None:
    # Click refuses an existing file given as --report-dir; one created since, the probe finds.
    with tempfile.NamedTemporaryFile() as file:
        assert _unwritable(Path(file.name)) == "File exists"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_report_dir_stops_the_run_before_any_request(
    tmp_path: Path, target: tuple[str, socket.socket]
) -> None:
    url, server = target
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        completed = _run(["--base-url", url, "--project", PROJECT, "--report-dir", str(directory), "-q"])
    finally:
        directory.chmod(0o700)
    assert completed.returncode == 2
    assert completed.stderr.strip().endswith("Permission denied")
    assert _nothing_sent(server)


def test_a_writable_report_dir_is_created_and_left_without_the_probe(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "reports"
    assert _unwritable(directory) is None
    assert directory.is_dir() and list(directory.iterdir()) == []
