"""Nothing secret leaves through any way out of the process: stdout and stderr (a secret written in
pieces too), warnings, log records (message, arguments, traceback), one-line errors of the CLI.

The guard changes the process's streams, warnings and logging, so it is tried in child processes;
what they print is searched by `secret_scanner`, which shares no code with the redaction.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from retry_contract.output_guard import HELD_CHARACTERS_LIMIT, RedactingStream
from retry_contract.secrets_registry import REPLACEMENT, SecretRegistry
from support import secret_scanner
from support.project import CLI

CANARY = "canary-bearer-7c1e9a4f0b2d6e8a3f5c"
PYTHON = (sys.executable, "-c")


def child_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CDF_", "GITHUB_"))}
    return environment | extra


def every_form(secret: str) -> str:
    """The secret once in each form, inside base64 at another alignment too."""
    forms = list(secret_scanner.encodings(secret).values())
    forms.append(secret_scanner.base64_embedded(secret, b"\x01", b"\x02", url_safe=True, padded=False))
    return " | ".join(forms)


def assert_nothing_of(secret: str, *outputs: bytes | str) -> None:
    for output in outputs:
        assert secret_scanner.found(output, secret) == [], output[-3000:]


# -- the stream ----------------------------------------------------------------------------------


def guarded(secret: str = CANARY) -> tuple[RedactingStream, io.StringIO]:
    registry = SecretRegistry()
    registry.add(secret)
    target = io.StringIO()
    return RedactingStream(target, registry), target


def test_a_secret_written_in_pieces_is_still_redacted() -> None:
    stream, target = guarded()
    for piece in ("Authorization: Bearer ", CANARY[:9], CANARY[9:20], CANARY[20:], "\n"):
        stream.write(piece)
        stream.flush()  # rich and click flush after every print: a held piece must stay held
    assert target.getvalue() == f"Authorization: Bearer {REPLACEMENT}\n"


def test_what_is_held_is_written_at_the_end_and_lines_end_at_carriage_returns_too() -> None:
    stream, target = guarded()
    stream.write(f"\rspinner {CANARY}\rnext")
    assert target.getvalue() == f"\rspinner {REPLACEMENT}\r"
    stream.write(" and the rest, no newline")
    stream.drain()
    assert target.getvalue().endswith("\rnext and the rest, no newline")


def test_a_line_without_end_is_written_once_long_without_splitting_a_secret() -> None:
    stream, target = guarded()
    filler = "x" * (HELD_CHARACTERS_LIMIT - 5)
    stream.write(filler)
    stream.write(CANARY[:10])  # past the limit: written, all but what could start a secret
    stream.write(CANARY[10:] + " end")
    stream.drain()
    assert target.getvalue() == f"{filler}{REPLACEMENT} end"
    assert len(target.getvalue()) < HELD_CHARACTERS_LIMIT + 100


def test_the_stream_answers_as_the_terminal_underneath() -> None:
    stream, _ = guarded()
    assert stream.isatty() is False and stream.encoding == "utf-8" and stream.writable()
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(OSError):
        stream.fileno()  # StringIO has none: said as the stream underneath says it


# -- the whole process ----------------------------------------------------------------------------

_EVERY_WAY_OUT = """
import logging, sys, warnings
named = logging.getLogger("made.before")
named.addHandler(logging.StreamHandler(sys.stderr))  # holds the stream from before the guard
named.propagate = False
from retry_contract import output_guard
registry = output_guard.install()
secret = sys.argv[1]
registry.add(secret)
forms = sys.argv[2]
print("stdout:", forms)
sys.stdout.write("split: " + secret[:7]); sys.stdout.flush(); sys.stdout.write(secret[7:] + "\\n")
sys.stderr.write("stderr: " + forms + "\\n")
warnings.warn("strategy headers={'Authorization': 'Bearer " + secret + "'} " + forms, DeprecationWarning)
logging.warning("root: %s", forms)
named.error("named: %s", forms)
try:
    raise RuntimeError("server said " + forms)
except RuntimeError:
    logging.exception("failed")
    named.exception("failed too")
print("no newline at the end:", secret[:9], end="")
sys.stdout.write(secret[9:])
"""


def test_every_way_out_of_the_process_is_redacted() -> None:
    done = subprocess.run(
        [*PYTHON, _EVERY_WAY_OUT, CANARY, every_form(CANARY)],
        capture_output=True,
        env=child_environment(PYTHONWARNINGS="always"),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    for expected in ("stdout:", "split: [REDACTED]", "no newline at the end: [REDACTED]"):
        assert expected in stdout
    for expected in ("stderr:", "DeprecationWarning", "root:", "named:", "Traceback", "server said"):
        assert expected in stderr
    assert stderr.count("RuntimeError: server said") == 2
    assert_nothing_of(CANARY, done.stdout, done.stderr)


# -- the CLI's one-line errors --------------------------------------------------------------------


@contextmanager
def malformed_header_echo() -> Iterator[str]:
    """A server that answers every request with a malformed header line echoing its Authorization
    header in every form: the HTTP client's error quotes the line."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                request += chunk
            token = ""
            for line in request.split(b"\r\n"):
                if line.lower().startswith(b"authorization:"):
                    token = line.decode().split()[-1]
            echo = every_form(token).encode() if token else b"none"
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Echo " + echo + b"\r\nContent-Length: 0\r\n\r\n")

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        server.join(timeout=5)
        listener.close()


def test_a_preflight_error_quoting_the_token_prints_none_of_it(tmp_path: os.PathLike[str]) -> None:
    with malformed_header_echo() as url:
        done = subprocess.run(
            [*CLI, "run", "--base-url", url, "--project", "p", "--report-dir", str(tmp_path), "-q"],
            capture_output=True,
            env=child_environment(CDF_TOKEN=CANARY),
            timeout=180,
        )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "could not run: cannot reach" in stderr and REPLACEMENT in stderr
    assert "Traceback" not in stderr
    assert_nothing_of(CANARY, done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        (None, "http://someone:{secret}@127.0.0.1:1"),
        (None, "someone:{secret}@127.0.0.1:1"),
        ("CDF_TOKEN_URL", "https://someone:{secret}@login.example/token"),
    ],
)
def test_credentials_in_a_url_are_refused_in_one_line_without_repeating_them(
    variable: str | None, url: str
) -> None:
    password = "pw-" + CANARY
    url = url.format(secret=password)
    if variable is None:
        environment = child_environment(CDF_TOKEN="tok-" + CANARY)
        arguments = ["run", "--base-url", url, "--project", "p"]
    else:
        environment = child_environment(
            CDF_CLIENT_ID="client", CDF_CLIENT_SECRET="client-secret-value", **{variable: url}
        )
        arguments = ["run", "--base-url", "http://127.0.0.1:1", "--project", "p"]
    done = subprocess.run([*CLI, *arguments], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "must not carry credentials" in done.stderr
    assert password not in done.stdout + done.stderr
    assert_nothing_of(password, done.stdout, done.stderr)


def test_the_scanner_finds_what_it_is_meant_to() -> None:
    # The tests above pass only if the scanner can see a secret in each form: shown once here.
    for form, shown in secret_scanner.encodings(CANARY).items():
        assert secret_scanner.found(f"... {shown} ...", CANARY), form
    embedded = base64.b64encode(b"\x00" + CANARY.encode() + b"\x00").decode()
    assert secret_scanner.found(embedded, CANARY) == ["base64"]


def test_every_command_runs_behind_the_guard() -> None:
    program = textwrap.dedent(
        """
        import sys
        from retry_contract.cli import main
        from retry_contract.output_guard import RedactingStream
        try:
            main(["defects"])
        except SystemExit:
            pass
        guarded = [isinstance(stream, RedactingStream) for stream in (sys.stdout, sys.stderr)]
        sys.__stdout__.write(str(guarded))
        """
    )
    done = subprocess.run(
        [*PYTHON, program], capture_output=True, text=True, env=child_environment(), timeout=120
    )
    assert done.stdout.endswith("[True, True]"), done.stderr
