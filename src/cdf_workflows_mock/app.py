"""The mock as an ASGI app: authentication, routing, body decoding and the endpoints' handlers.

Order of checks for every `/api/v1` request: 401 (who are you), 403 for the project, then the
route (404/405), 403 for the capability, then the path ids and the body (400), then the state
(404, 409). Every answer, errors included, is JSON with a fresh `X-Request-ID`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdf_workflows_mock.auth import (
    Caller,
    authenticate,
    authorize_capability,
    authorize_project,
    token_inspection,
)
from cdf_workflows_mock.bodies import REQUEST_ID_HEADER, json_response, read_json
from cdf_workflows_mock.cdf import (
    SESSIONS_CREATE,
    SESSIONS_DELETE,
    SESSIONS_LIST,
    WORKFLOW_READ,
    WORKFLOW_WRITE,
)
from cdf_workflows_mock.chaos import ChaosMiddleware, chaos_injector
from cdf_workflows_mock.config import MockConfig
from cdf_workflows_mock.errors import InvalidRequest, MockError, NotFound, error_body
from cdf_workflows_mock.front_end import FrontEndMiddleware
from cdf_workflows_mock.paging import DEFAULT_LIMIT, SESSIONS_DEFAULT_LIMIT, PageRequest
from cdf_workflows_mock.routing import Endpoint, Router, path_segments
from cdf_workflows_mock.store import MockStore
from cdf_workflows_mock.validation import (
    parse_cancel_reason,
    parse_execution_list,
    parse_identifier,
    parse_nonce,
    parse_page_params,
    parse_run_request,
    parse_session_ids,
    parse_session_request,
    parse_session_status,
    parse_task_update,
    parse_uuid,
    parse_version_delete,
    parse_version_list,
    parse_version_upsert,
    parse_workflow_delete,
    parse_workflow_upsert,
)

logger = logging.getLogger(__name__)

PROJECT_PREFIX = "/api/v1/projects/{project}"


class Call:
    """One request as a handler sees it: the caller, the path parameters and the body."""

    def __init__(self, request: Request, caller: Caller, params: dict[str, str]) -> None:
        self.request = request
        self.caller = caller
        self.params = params

    @property
    def project(self) -> str:
        return self.params["project"]

    async def body(self) -> object:
        body = await read_json(self.request)
        if body is None:
            raise InvalidRequest("A JSON request body is required")
        return body

    async def optional_body(self) -> object | None:
        return await read_json(self.request)

    def query(self, name: str) -> list[str]:
        """Every value of a query parameter (a parameter given twice is the parser's to refuse)."""
        return self.request.query_params.getlist(name)

    def page(self, default_limit: int = DEFAULT_LIMIT) -> PageRequest:
        """`limit` and `cursor` of a list read with GET."""
        return parse_page_params(self.query("limit"), self.query("cursor"), default_limit)


class Handlers:
    """The endpoints; each checks its input, asks the store, and says what to answer."""

    def __init__(self, store: MockStore) -> None:
        self._store = store

    def endpoints(self) -> list[Endpoint]:
        p = PROJECT_PREFIX
        wf = f"{p}/workflows"
        # A path matching several templates goes to the one with a fixed segment where the others have a
        # parameter (`routing.Router`): `executions/list` is never an execution called "list".
        return [
            Endpoint.of("GET", "/api/v1/token/inspect", self.inspect_token, None),
            Endpoint.of("POST", f"{p}/sessions", self.create_session, SESSIONS_CREATE),
            Endpoint.of("GET", f"{p}/sessions", self.list_sessions, SESSIONS_LIST),
            Endpoint.of("POST", f"{p}/sessions/byids", self.sessions_by_ids, SESSIONS_LIST),
            Endpoint.of("POST", f"{p}/sessions/revoke", self.revoke_sessions, SESSIONS_DELETE),
            Endpoint.of("POST", wf, self.upsert_workflow, WORKFLOW_WRITE),
            Endpoint.of("GET", wf, self.list_workflows, WORKFLOW_READ),
            Endpoint.of("GET", f"{wf}/{{xid}}", self.get_workflow, WORKFLOW_READ),
            Endpoint.of("POST", f"{wf}/delete", self.delete_workflows, WORKFLOW_WRITE),
            Endpoint.of("POST", f"{wf}/versions", self.upsert_version, WORKFLOW_WRITE),
            Endpoint.of("POST", f"{wf}/versions/list", self.list_versions, WORKFLOW_READ),
            Endpoint.of("POST", f"{wf}/versions/delete", self.delete_versions, WORKFLOW_WRITE),
            Endpoint.of("GET", f"{wf}/{{xid}}/versions/{{version}}", self.get_version, WORKFLOW_READ),
            Endpoint.of("POST", f"{wf}/{{xid}}/versions/{{version}}/run", self.run, WORKFLOW_WRITE),
            Endpoint.of("POST", f"{wf}/executions/list", self.list_executions, WORKFLOW_READ),
            Endpoint.of("GET", f"{wf}/executions/{{id}}", self.get_execution, WORKFLOW_READ),
            Endpoint.of("POST", f"{wf}/executions/{{id}}/cancel", self.cancel, WORKFLOW_WRITE),
            Endpoint.of("POST", f"{wf}/executions/{{id}}/retry", self.retry, WORKFLOW_WRITE),
            Endpoint.of("POST", f"{wf}/tasks/{{taskId}}/update", self.update_task, WORKFLOW_WRITE),
            Endpoint.of("GET", f"{wf}/triggers", self.list_triggers, WORKFLOW_READ),
            Endpoint.of("GET", f"{wf}/triggers/{{xid}}/history", self.list_trigger_runs, WORKFLOW_READ),
        ]

    async def inspect_token(self, call: Call) -> object:
        return token_inspection(call.caller)

    async def create_session(self, call: Call) -> object:
        request = parse_session_request(await call.body())
        return {"items": [self._store.create_session(call.project, request.session_type, request.client_id)]}

    async def list_sessions(self, call: Call) -> object:
        status = parse_session_status(call.query("status"))
        return self._store.list_sessions(call.project, status, call.page(SESSIONS_DEFAULT_LIMIT))

    async def sessions_by_ids(self, call: Call) -> object:
        return self._store.sessions_by_ids(call.project, parse_session_ids(await call.body()))

    async def revoke_sessions(self, call: Call) -> object:
        # The document sets no bound on how many one request revokes.
        ids = parse_session_ids(await call.body(), max_items=None)
        with_details = SESSIONS_LIST in call.caller.grant.capabilities
        return self._store.revoke_sessions(call.project, ids, with_details)

    async def upsert_workflow(self, call: Call) -> object:
        upsert = parse_workflow_upsert(await call.body())
        return {"items": [self._store.upsert_workflow(call.project, upsert)]}

    async def list_workflows(self, call: Call) -> object:
        return self._store.list_workflows(call.project, call.page())

    async def get_workflow(self, call: Call) -> object:
        xid = parse_identifier(call.params["xid"], "The workflowExternalId in the path")
        return self._store.get_workflow(call.project, xid)

    async def delete_workflows(self, call: Call) -> object:
        request = parse_workflow_delete(await call.body(), call.query("ignoreUnknownIds"))
        self._store.delete_workflows(call.project, request)
        return {}

    async def upsert_version(self, call: Call) -> object:
        upsert = parse_version_upsert(await call.body())
        return {"items": [self._store.upsert_version(call.project, upsert)]}

    async def list_versions(self, call: Call) -> object:
        return self._store.list_versions(call.project, parse_version_list(await call.body()))

    async def delete_versions(self, call: Call) -> object:
        request = parse_version_delete(await call.body(), call.query("ignoreUnknownIds"))
        self._store.delete_versions(call.project, request)
        return {}

    async def get_version(self, call: Call) -> object:
        xid = parse_identifier(call.params["xid"], "The workflowExternalId in the path")
        version = parse_identifier(call.params["version"], "The version in the path")
        return self._store.get_version(call.project, xid, version)

    async def list_executions(self, call: Call) -> object:
        return self._store.list_executions(call.project, parse_execution_list(await call.body()))

    async def list_triggers(self, call: Call) -> object:
        return self._store.list_triggers(call.project, call.page())

    async def list_trigger_runs(self, call: Call) -> object:
        xid = parse_identifier(call.params["xid"], "The triggerExternalId in the path")
        return self._store.list_trigger_runs(call.project, xid, call.page())

    async def run(self, call: Call) -> object:
        xid = parse_identifier(call.params["xid"], "The workflowExternalId in the path")
        version = parse_identifier(call.params["version"], "The version in the path")
        request = parse_run_request(await call.body())
        return self._store.run(call.project, xid, version, request)

    async def get_execution(self, call: Call) -> object:
        execution_id = parse_uuid(call.params["id"], "The executionId in the path")
        return self._store.get_execution(call.project, execution_id)

    async def cancel(self, call: Call) -> object:
        execution_id = parse_uuid(call.params["id"], "The executionId in the path")
        reason = parse_cancel_reason(await call.optional_body())
        return self._store.cancel(call.project, execution_id, reason)

    async def retry(self, call: Call) -> object:
        execution_id = parse_uuid(call.params["id"], "The executionId in the path")
        nonce = parse_nonce(await call.body())
        # On the event loop, like every other handler: the store does no I/O, and a hop to a worker
        # thread cost a third of a retry's time (benchmarks/mock_vs_prism.py). The store's lock still
        # keeps simultaneous callers apart (a self-test races threads on it directly).
        return self._store.retry(call.project, execution_id, nonce)

    async def update_task(self, call: Call) -> object:
        task_id = parse_uuid(call.params["taskId"], "The taskId in the path")
        update = parse_task_update(await call.body())
        return self._store.update_task(call.project, task_id, update)


class Dispatcher:
    """The single ASGI endpoint behind every path: it owns the order of the checks."""

    # A crash is a bug of the mock, logged loudly; a deliberately defective variant crashes on purpose.
    crash_log_level = logging.ERROR

    def __init__(self, config: MockConfig, handlers: Handlers) -> None:
        self._config = config
        self._router = Router(handlers.endpoints())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._dispatch(request)
        except MockError as exc:
            response = json_response(exc.http_status, exc.body(), exc.headers)
        except Exception:
            # A bug in the mock, not in the request: say so in the envelope and keep serving.
            logger.log(
                self.crash_log_level,
                "unexpected error in the mock for %s %s",
                request.method,
                request.url.path,
                exc_info=True,
            )
            response = json_response(500, error_body(500, "Internal error in the mock (a bug; see its log)"))
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        segments = path_segments(request.scope)
        if segments[:2] != ["api", "v1"]:
            raise NotFound("No such endpoint; the API lives under /api/v1")
        caller = self.identify(request)
        if len(segments) >= 4 and segments[2] == "projects":
            self.check_project(request, caller, segments[3])
        endpoint, params = self._router.resolve(request.method, segments)
        authorize_capability(caller, endpoint.capability)
        body = await endpoint.handler(Call(request, caller, params))
        return json_response(200, body)

    # The first two checks are methods so that a variant of the mock (`defects/`) can change one.

    def identify(self, request: Request) -> Caller:
        return authenticate(request.headers.get("authorization"), self._config.tokens)

    def check_project(self, request: Request, caller: Caller, project: str) -> None:
        authorize_project(caller, project)


class RequestIdMiddleware:
    """Gives every response an `X-Request-ID`, also those Starlette produces on its own."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == REQUEST_ID_HEADER.lower().encode() for name, _ in headers):
                    headers.append((REQUEST_ID_HEADER.encode(), str(uuid.uuid4()).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_with_id)


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error in the mock"
    return json_response(status, error_body(status, str(detail)), headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error("unexpected error in the mock", exc_info=exc)
    return json_response(500, error_body(500, "Internal error in the mock (a bug; see its log)"))


def create_faithful_app(config: MockConfig | None = None) -> Starlette:
    """A fresh faithful mock: its own store, so two apps never share state.

    A configuration with defects is refused: `cdf_workflows_mock.create_app` builds those, on top of
    this module, which knows nothing of them.
    """
    config = config if config is not None else MockConfig()
    if config.defects:
        raise ValueError(
            "this is the faithful mock; build a mock with defects with cdf_workflows_mock.create_app"
        )
    store = MockStore(config.clock, config.nonce_ttl_millis, shape=config.shape)
    return assemble_app(config, store, Dispatcher(config, Handlers(store)))


def assemble_app(
    config: MockConfig, store: MockStore, dispatcher: Dispatcher, outer: Sequence[Middleware] = ()
) -> Starlette:
    """The ASGI app around a dispatcher; `outer` middleware wraps everything but chaos (`config.chaos`)."""
    if store.shape != config.shape:
        # A store built without the configuration's shape would silently serve another profile.
        raise ValueError(
            f"the mock's store does not serve the shape of profile {config.profile.value!r}; "
            "build it with MockStore(..., shape=config.shape)"
        )
    # Here rather than in each store's constructor, so every variant of the store (defects) is bounded.
    store.limit(max_sessions=config.max_sessions, max_finished_executions=config.max_finished_executions)
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: _http_exception,
        Exception: _server_error,
    }
    injector = chaos_injector(config.chaos)
    chaos = [Middleware(ChaosMiddleware, injector=injector)] if injector is not None else []
    front_end = config.shape.front_end
    proxy = [Middleware(FrontEndMiddleware, limits=front_end)] if front_end is not None else []
    app = Starlette(
        routes=[Route("/{path:path}", endpoint=dispatcher)],
        # The front end first, as it stands before the API's gateway; then chaos: a request either
        # refuses never reaches a defect or the model.
        middleware=[*proxy, *chaos, *outer, Middleware(RequestIdMiddleware)],
        exception_handlers=handlers,
    )
    app.state.config = config
    app.state.store = store
    # What chaos did so far (requests seen, refused), for tests and banners; None when it is off.
    app.state.chaos = injector
    return app
