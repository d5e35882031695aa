"""The standalone mock logs no line per request: not even for a request it cannot parse, which it
answers itself with the error envelope (README, "it logs no line per request")."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import textwrap

# The child serves through serve_forever itself, on port 0; the port it bound is its first stdout line,
# said once the socket listens (a connection waits in its backlog until uvicorn has started).
_SERVE = textwrap.dedent(
    """
    import socket, sys
    from cdf_workflows_mock import MockConfig, hosting

    bind = hosting.bind

    def bind_and_tell(host: str, port: int) -> socket.socket:
        sock = bind(host, port)
        sock.listen()
        print(sock.getsockname()[1], flush=True)
        return sock

    hosting.bind = bind_and_tell
    try:
        hosting.serve_forever(MockConfig(), "127.0.0.1", 0)
    except KeyboardInterrupt:
        pass
    """
)


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_the_standalone_mock_is_silent_about_a_request_it_cannot_parse() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        # Bounded: a child that never listens fails the test instead of hanging it.
        readable, _, _ = select.select([child.stdout], [], [], 60)
        assert readable, "the mock did not start listening within 60 s"
        port = int(child.stdout.readline())
        answer = _exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
        # Answered, with the envelope: a 400 the client can read, and nothing said about it.
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
        assert b'"code":400' in answer.replace(b" ", b"")
    finally:
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    assert "Invalid HTTP request" not in stderr
    assert "WARNING" not in stderr, stderr
    # Its start and stop are still said.
    assert "Started server process" in stderr
