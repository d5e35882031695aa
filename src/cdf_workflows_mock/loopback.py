"""Any ASGI application served over real HTTP on loopback, in a background thread.

The socket is bound here (port 0 picks a free one), so the port is known before uvicorn starts, and
readiness is an event set after uvicorn's startup: no sleeping or polling decides when the server is up.
The embedded mock is served this way; so is any other ASGI app a caller hands over.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn

DEFAULT_HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 10.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
# h11 resets a connection whose request head exceeds its buffer, before the app can answer; a 1 MB
# path id must meet a 4xx with the error envelope instead, as it would at CDF.
MAX_REQUEST_HEAD_BYTES = 4 * 1024 * 1024
# uvicorn's own default: how long a quiet kept-alive connection stays open.
DEFAULT_KEEP_ALIVE_SECONDS = 5


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


def bind(host: str, port: int) -> socket.socket:
    """A socket ready to listen, bound here so a busy port raises OSError instead of exiting."""
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


class InProcessServer:
    """The ASGI 3 application `app` served by uvicorn on loopback in a daemon thread; a context manager."""

    def __init__(
        self,
        app: Any,
        host: str = DEFAULT_HOST,
        port: int = 0,
        name: str = "app",
        log_level: str = "error",
        *,
        http_protocol: type[asyncio.Protocol] | None = None,
        timeout_keep_alive: int = DEFAULT_KEEP_ALIVE_SECONDS,
    ) -> None:
        """`http_protocol` replaces uvicorn's HTTP protocol class (None: its own choice);
        `timeout_keep_alive` is how many seconds a quiet kept-alive connection stays open."""
        self.app = app
        self._http_protocol = http_protocol
        self._timeout_keep_alive = timeout_keep_alive
        self._log_level = log_level
        self._host = host
        self._port = port
        self._name = name
        self._socket: socket.socket | None = None
        self._server: _SignallingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError(
                f"the {self._name} is not running; use it as a context manager or call start()"
            )
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        """What to give a client as its base URL, e.g. `http://127.0.0.1:54321`."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def start(self) -> InProcessServer:
        if self._thread is not None:
            raise RuntimeError(f"the {self._name} is already running")
        sock = bind(self._host, self._port)
        config = uvicorn.Config(
            self.app,
            host=self._host,
            port=0,
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            interface="asgi3",
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
            http=self._http_protocol if self._http_protocol is not None else "auto",
            timeout_keep_alive=self._timeout_keep_alive,
        )
        server = _SignallingServer(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True)
        self._socket, self._server, self._thread = sock, server, thread
        thread.start()
        if not server.ready.wait(STARTUP_TIMEOUT_SECONDS) or not server.started:
            self.stop()
            raise RuntimeError(f"the {self._name} did not start on {self._host}:{self._port}")
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

    def __enter__(self) -> InProcessServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
