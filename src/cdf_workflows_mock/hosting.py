"""Hosting the mock itself over real HTTP: embedded, in a background thread for tests and test suites
(`EmbeddedMock`, on the generic loopback server of `loopback`), or standalone, in the foreground
(`serve_forever`, for `retry-contract mock`)."""

from __future__ import annotations

import gc
import logging

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from cdf_workflows_mock.config import MockConfig
from cdf_workflows_mock.defects import create_app
from cdf_workflows_mock.loopback import DEFAULT_HOST, MAX_REQUEST_HEAD_BYTES, InProcessServer, bind
from cdf_workflows_mock.read_deadlines import read_deadline_protocol
from cdf_workflows_mock.state_file import InitialState, create_seeded_app


class EmbeddedMock(InProcessServer):
    """The mock, with the defects its configuration names, served by uvicorn on loopback in a daemon
    thread.

    >>> with EmbeddedMock() as mock:
    ...     mock.base_url  # e.g. 'http://127.0.0.1:54321'

    `state` (from `state_file.load_state_file`) is created in it before it serves; a StateFileError
    says what in the file cannot be.
    """

    app: Starlette

    def __init__(
        self,
        config: MockConfig | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        state: InitialState | None = None,
    ) -> None:
        self.config = config if config is not None else MockConfig()
        # A defective mock breaks its responses on purpose; uvicorn's complaints about that are noise.
        log_level = "critical" if self.config.defects else "error"
        super().__init__(
            _create_app(self.config, state),
            host,
            port,
            name="embedded mock",
            log_level=log_level,
            http_protocol=read_deadline_protocol(self.config.read_timeout_seconds),
            timeout_keep_alive=self.config.idle_timeout_seconds,
        )

    def __enter__(self) -> EmbeddedMock:
        self.start()
        return self


def _create_app(config: MockConfig, state: InitialState | None) -> Starlette:
    return create_app(config) if state is None else create_seeded_app(config, state)


# Requests between two freezes of the standalone mock's heap (see _FrozenHeap).
FREEZE_EVERY_REQUESTS = 2000


class _FrozenHeap:
    """Moves what the process holds out of the cyclic garbage collector's reach every few thousand
    requests (`gc.freeze`). With ten thousand executions in memory, full collections paused the mock
    for up to 170 ms, which made its p99 latency (benchmarks/mock_vs_prism.py); frozen, the longest
    pause is a few ms. Nothing is leaked: the model holds no reference cycles (executions and attempts
    refer to each other by id), so what the store forgets is freed by reference counting.

    Only for the standalone mock, which owns its process: an embedded mock shares its host's heap.
    """

    def __init__(self, app: ASGIApp, every: int = FREEZE_EVERY_REQUESTS) -> None:
        self._app = app
        self._every = every
        self._requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self._requests += 1
            if self._requests % self._every == 0:
                # Young cycles (a handled exception and its traceback) are collected first, cheaply, so
                # that freezing does not keep them for good.
                gc.collect(1)
                gc.freeze()
        await self._app(scope, receive, send)


# uvicorn's HTTP protocols, whose warnings are about one request each (one it could not parse, an
# upgrade it does not support): the mock has answered that request itself, with the error envelope
# (read_deadlines.py), so a warning per request would only be noise in the standalone mock's output.
_PER_REQUEST_WARNING_MODULES = frozenset({"h11_impl", "httptools_impl"})


def _not_about_one_request(record: logging.LogRecord) -> bool:
    """False for a warning of uvicorn's HTTP protocol about one request; errors (an exception in the
    app) and the server's own start and stop still pass."""
    return not (record.levelno == logging.WARNING and record.module in _PER_REQUEST_WARNING_MODULES)


def serve_forever(
    config: MockConfig | None = None,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    *,
    state: InitialState | None = None,
    access_log: bool = False,
) -> None:
    """Serve the mock in the foreground until interrupted, holding `state` (if given) from the start.

    `access_log` logs a line per request (off by default: it costs a sixth of a retry's time).

    Raises OSError when the address cannot be bound (uvicorn itself would exit the process), and
    StateFileError when `state` cannot be created.
    """
    config = config if config is not None else MockConfig()
    app = _create_app(config, state)
    sock = bind(host, port)
    gc.freeze()
    try:
        server_config = uvicorn.Config(
            _FrozenHeap(app),
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            lifespan="off",
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
            http=read_deadline_protocol(config.read_timeout_seconds),
            timeout_keep_alive=config.idle_timeout_seconds,
        )
        # After uvicorn.Config, which configures uvicorn's loggers; the same function is added once.
        logging.getLogger("uvicorn.error").addFilter(_not_about_one_request)
        server = uvicorn.Server(server_config)
        server.run(sockets=[sock])
    finally:
        sock.close()
