"""Serving the mock over real HTTP: in a background thread for tests, or in the foreground for the CLI.

The embedded server binds its socket itself (port 0 picks a free one), so the port is known
before uvicorn starts, and it signals readiness with an event set after uvicorn's startup; no
sleeping or polling decides when the mock is up.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from retry_contract.mock.app import create_app
from retry_contract.mock.config import MockConfig

DEFAULT_HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


class _SignallingServer(uvicorn.Server):
    """A uvicorn server that reports when it has started (or failed to)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class EmbeddedMock:
    """The mock served by uvicorn on loopback in a daemon thread.

    >>> with EmbeddedMock() as mock:
    ...     mock.base_url  # e.g. 'http://127.0.0.1:54321'
    """

    def __init__(self, config: MockConfig | None = None, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.config = config if config is not None else MockConfig()
        self.app: Starlette = create_app(self.config)
        self._host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: _SignallingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the mock is not running; use it as a context manager or call start()")
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        """What to give a client as its base URL, e.g. `http://127.0.0.1:54321`."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def start(self) -> EmbeddedMock:
        if self._thread is not None:
            raise RuntimeError("the mock is already running")
        sock = _bind(self._host, self._port)
        server = _SignallingServer(
            uvicorn.Config(
                self.app, host=self._host, port=0, log_level="error", access_log=False, lifespan="off"
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="embedded-mock", daemon=True
        )
        self._socket, self._server, self._thread = sock, server, thread
        thread.start()
        if not server.ready.wait(STARTUP_TIMEOUT_SECONDS) or not server.started:
            self.stop()
            raise RuntimeError(f"the embedded mock did not start on {self._host}:{self._port}")
        return self

    def stop(self) -> None:
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        if sock is not None:
            sock.close()
        self._socket = None

    def __enter__(self) -> EmbeddedMock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket, bound here so a busy port raises OSError instead of exiting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket says TCP, and without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve_forever(config: MockConfig | None = None, host: str = DEFAULT_HOST, port: int = 8000) -> None:
    """Serve the mock in the foreground until interrupted (the `retry-contract mock` command).

    Raises OSError when the address cannot be bound (uvicorn itself would exit the process).
    """
    app = create_app(config if config is not None else MockConfig())
    sock = _bind(host, port)
    try:
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="off"))
        server.run(sockets=[sock])
    finally:
        sock.close()
