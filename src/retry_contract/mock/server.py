"""Serving the mock over real HTTP: in a background thread for tests and the suite, or in the
foreground for the `retry-contract mock` command."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

from retry_contract.mock.app import create_app
from retry_contract.mock.config import MockConfig
from retry_contract.serving import DEFAULT_HOST, MAX_REQUEST_HEAD_BYTES, InProcessServer, bind


class EmbeddedMock(InProcessServer):
    """The mock served by uvicorn on loopback in a daemon thread.

    >>> with EmbeddedMock() as mock:
    ...     mock.base_url  # e.g. 'http://127.0.0.1:54321'
    """

    app: Starlette

    def __init__(self, config: MockConfig | None = None, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.config = config if config is not None else MockConfig()
        # A defective mock breaks its responses on purpose; uvicorn's complaints about that are noise.
        log_level = "critical" if self.config.defects else "error"
        super().__init__(
            create_app(self.config), host, port, interface="asgi3", name="embedded mock", log_level=log_level
        )

    def __enter__(self) -> EmbeddedMock:
        self.start()
        return self


def serve_forever(config: MockConfig | None = None, host: str = DEFAULT_HOST, port: int = 8000) -> None:
    """Serve the mock in the foreground until interrupted (the `retry-contract mock` command).

    Raises OSError when the address cannot be bound (uvicorn itself would exit the process).
    """
    app = create_app(config if config is not None else MockConfig())
    sock = bind(host, port)
    try:
        server_config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            lifespan="off",
            h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        )
        server = uvicorn.Server(server_config)
        server.run(sockets=[sock])
    finally:
        sock.close()
