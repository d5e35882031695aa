"""Schemathesis's `requests` transport, bounded like the suite's own client.

Schemathesis 4.32.5 sends every case through one `requests.Session` per engine thread, made by
`schemathesis.engine.context.make_session` (its probes make theirs there too), with `stream=True`
and then `response.content`, so a body is read whole and a timeout bounds only the gap between
bytes. The `before_call` hook sees the transport's keyword arguments but never the session, and a
schema's transport is Schemathesis's global one; so the sessions are bounded where they are made:
:func:`bound_engine_sessions` has `make_session` mount a :class:`BoundedAdapter` on each session it
makes for a given schema. The adapter reads every answer by a total deadline (the request timeout)
and up to a cap, before `requests` or Schemathesis touch its body.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_ACCEPT_ENCODING
from schemathesis.engine import context as engine_context
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from retry_contract.bounded_read import (
    ACCEPT_ENCODING,
    READ_CHUNK_BYTES,
    Deadline,
    DeadlineExceeded,
    DeadlineHTTPResponse,
    ReadLimits,
    deadline_scope,
    read_body,
    total_seconds,
)


class _DeadlineHTTPConnection(HTTPConnection):
    response_class = DeadlineHTTPResponse


class _DeadlineHTTPSConnection(HTTPSConnection):
    response_class = DeadlineHTTPResponse


class _DeadlineHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


# The cap a request's answer went over, by the request (Schemathesis keeps it as `response.request`).
_over_cap: weakref.WeakKeyDictionary[requests.PreparedRequest, int] = weakref.WeakKeyDictionary()
_over_cap_lock = threading.Lock()


class BoundedAdapter(HTTPAdapter):
    """Sends within `limits.seconds` in all and reads at most `limits.max_body_bytes` of an answer."""

    def __init__(self, limits: ReadLimits) -> None:
        self.limits = limits
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # A fresh mapping: urllib3's module-level one is shared by every pool manager.
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        deadline = Deadline.after(total_seconds(timeout, self.limits.seconds))
        # `requests` asks for whatever urllib3 could decode (br, zstd when installed); ask only for
        # what is inflated here, within the cap.
        if request.headers.get("Accept-Encoding") == DEFAULT_ACCEPT_ENCODING:
            request.headers["Accept-Encoding"] = ACCEPT_ENCODING
        with deadline_scope(deadline):
            left = deadline.bound()
            response = super().send(request, True, (left, left), verify, cert, proxies)
            raw = response.raw
            try:
                body = read_body(
                    raw.stream(READ_CHUNK_BYTES, decode_content=False),
                    max_bytes=self.limits.max_body_bytes,
                    deadline=deadline,
                    content_encoding=response.headers.get("Content-Encoding"),
                    accept_encoding=request.headers.get("Accept-Encoding"),
                )
            except (DeadlineExceeded, ReadTimeoutError) as error:
                raw.close()
                raise requests.exceptions.ReadTimeout(error, request=request) from None
            except (ProtocolError, OSError) as error:
                raw.close()
                raise requests.exceptions.ChunkedEncodingError(error, request=request) from None
        if body.over_cap is not None:
            # The rest of the answer is still on the connection: it cannot carry another request.
            raw.close()
            with _over_cap_lock:
                _over_cap[request] = body.over_cap
        response._content = body.content
        response._content_consumed = True  # type: ignore[attr-defined]
        return response


def body_over_cap(response: Any) -> int | None:
    """The cap a Schemathesis response's answer went over (None: read whole)."""
    request = getattr(response, "request", None)
    if not isinstance(request, requests.PreparedRequest):
        return None
    with _over_cap_lock:
        return _over_cap.get(request)


def bound_session(session: requests.Session, limits: ReadLimits) -> requests.Session:
    adapter = BoundedAdapter(limits)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# The limits of each bounded schema, by the id of its configuration (what `make_session` is given).
_limits_by_config: dict[int, ReadLimits] = {}
_install_lock = threading.Lock()


def bound_engine_sessions(schema: Any, limits: ReadLimits) -> None:
    """Every session Schemathesis's engine makes for `schema` (its probes' included) reads within
    `limits`; sessions made for other schemas are left as they are."""
    config = schema.config
    with _install_lock:
        _limits_by_config[id(config)] = limits
        weakref.finalize(config, _limits_by_config.pop, id(config), None)
        original: Callable[..., requests.Session] = engine_context.make_session
        if getattr(original, "bounds_sessions", False):
            return

        def make_session(config: Any, *, operation: Any = None) -> requests.Session:
            session = original(config, operation=operation)
            bounded = _limits_by_config.get(id(config))
            return bound_session(session, bounded) if bounded is not None else session

        make_session.bounds_sessions = True  # type: ignore[attr-defined]
        engine_context.make_session = make_session
