"""Serving the mock over real HTTP: in a background thread for tests and test suites, or in the
foreground for a standalone mock (`retry-contract mock`)."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

from cdf_workflows_mock.config import MockConfig
from cdf_workflows_mock.defects import create_app
from cdf_workflows_mock.limits import read_deadline_protocol
from cdf_workflows_mock.serving import DEFAULT_HOST, MAX_REQUEST_HEAD_BYTES, InProcessServer, bind
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


def serve_forever(
    config: MockConfig | None = None,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    *,
    state: InitialState | None = None,
) -> None:
    """Serve the mock in the foreground until interrupted, holding `state` (if given) from the start.

    Raises OSError when the address cannot be bound (uvicorn itself would exit the process), and
    StateFileError when `state` cannot be created.
    """
    config = config if config is not None else MockConfig()
    app = _create_app(config, state)
    sock = bind(host, port)
    try:
        server_config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            lifespan="off",
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
            http=read_deadline_protocol(config.read_timeout_seconds),
            timeout_keep_alive=config.idle_timeout_seconds,
        )
        server = uvicorn.Server(server_config)
        server.run(sockets=[sock])
    finally:
        sock.close()
