"""A small client of the workflow API, over HTTP with httpx, that returns every call as an Exchange.

Provisioning and the scenario checks use it; it knows the neighbouring endpoints of
workflow-model.md and nothing about requirements.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from retry_contract import contract
from retry_contract.bounded_read import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_MIB,
    MIB,
    READ_CHUNK_BYTES,
    Deadline,
    DeadlineExceeded,
    DeadlineHTTPResponse,
    DeadlineNetworkBackend,
    ReadLimits,
    deadline_scope,
    read_body,
)
from retry_contract.budget import RequestBudget
from retry_contract.credentials import Credentials, CredentialsError
from retry_contract.domain import WORKFLOW_DELETE_MAX_ITEMS
from retry_contract.exchange import Credential, Exchange, Expectation, nonce_in
from retry_contract.polling import DEFAULT_TIMEOUT_SECONDS as DEFAULT_POLL_SECONDS
from retry_contract.polling import RETRY_SETTLE_SECONDS, WaitBudget, poll
from retry_contract.request_forms import PLAIN, RequestForm
from retry_contract.resilience import DEFAULT_RETRY_POLICY, FAULT_ERRORS, RetryPolicy, fault_of
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.timing import PhaseTimer

DEFAULT_TIMEOUT_SECONDS = 30.0
# More than the threads a run ever has sending at once (workers, their helpers, the fuzzer's pool).
DEFAULT_CONNECTIONS = 64
# Bounds of `POST /workflows/executions/list` (Cognite's OpenAPI document): filters and items per page.
MAX_WORKFLOW_FILTERS = 100
MAX_LIST_LIMIT = 1000
_UNSET: Any = object()
# What ends a request without an answer to judge: the network's faults, and the request's deadline.
_FAULTS_OR_DEADLINE: tuple[type[Exception], ...] = (*FAULT_ERRORS, DeadlineExceeded)
# An id made from another (a character added, braces around it) is looked for among the executions
# read only within these lengths: shorter ones are not ids, longer ones are the oversized probes.
_SHORTEST_ID = 32
_LONGEST_DERIVED_ID = 256


class ClientError(Exception):
    """Base of the errors that mean the run cannot go on."""


class CredentialsRefused(ClientError):
    pass


class InfrastructureError(ClientError):
    """The network or a gateway kept failing (after retries): nothing can be concluded."""


class UnexpectedAnswer(ClientError):
    """A neighbouring endpoint answered something the model does not allow; provisioning stops."""


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    response_class = DeadlineHTTPResponse


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    response_class = DeadlineHTTPResponse


def _send_with_stdlib(exchange: Exchange, deadline: Deadline, max_body_bytes: int) -> None:
    """Send `exchange`'s request with `http.client`, which takes a request line of any length, and
    read its answer by `deadline` and within `max_body_bytes`; a timeout is a fault, as with httpx."""
    parts = urlsplit(exchange.url)
    connection_class = _DeadlineHTTPSConnection if parts.scheme == "https" else _DeadlineHTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=deadline.remaining())
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"accept-encoding": ACCEPT_ENCODING, **exchange.request_headers}
    sent = False
    try:
        with deadline_scope(deadline):
            connection.timeout = deadline.bound()
            connection.connect()
            # From here on a send waits at most what is left, in total (socket.sendall's timeout).
            if connection.sock is not None:
                connection.sock.settimeout(deadline.bound())
            connection.request(exchange.method, target, body=exchange.request_body, headers=headers)
            sent = True
            response = connection.getresponse()
            exchange.status = response.status
            exchange.response_headers = {k.lower(): v for k, v in response.getheaders()}
            body = read_body(
                iter(lambda: response.read(READ_CHUNK_BYTES), b""),
                max_bytes=max_body_bytes,
                deadline=deadline,
                content_encoding=response.getheader("content-encoding"),
                accept_encoding=headers["accept-encoding"],
            )
            if body.over_cap is None and response.length:
                # http.client's read(n) returns what came when the connection closed early, without
                # a word: fewer bytes than Content-Length said is a broken connection, as with httpx.
                raise http.client.IncompleteRead(body.content, response.length)
        exchange.response_body, exchange.body_over_cap = body.content, body.over_cap
    except TimeoutError as error:
        exchange.status = None
        exchange.transport_error = f"{type(error).__name__}: {error or 'timed out'}"
        exchange.answer_timed_out = sent
    except ConnectionRefusedError as error:
        exchange.transport_error = f"{type(error).__name__}: {error}"
    except (OSError, http.client.HTTPException) as error:
        exchange.status = None
        exchange.transport_error = f"{type(error).__name__}: {error or 'connection broken'}"
        exchange.connection_broken = True
    finally:
        connection.close()


def _bounded_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's own transport, its sockets cut short at each request's deadline."""
    transport = httpx.HTTPTransport(limits=limits)
    # httpx takes no network backend; its connection pool does (httpcore's public NetworkBackend).
    pool = transport._pool
    pool._network_backend = DeadlineNetworkBackend(pool._network_backend)
    return transport


class CdfClient:
    def __init__(
        self,
        base_url: str,
        project: str,
        credentials: Credentials,
        secrets: SecretRegistry,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        budget: RequestBudget | None = None,
        timer: PhaseTimer | None = None,
        connections: int = DEFAULT_CONNECTIONS,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_MIB * MIB,
    ) -> None:
        # Every request, its answer's body included, ends within `timeout` seconds in all; what an
        # answer holds beyond `max_response_bytes` (raw or decoded) is never read.
        self.limits = ReadLimits(timeout, max_response_bytes)
        self.retry_policy = retry_policy
        self.timer = timer or PhaseTimer()
        self._count_lock = threading.Lock()
        self.budget = budget or RequestBudget()
        # Shared by every thread that waits for what a retry did: see `await_effect`.
        self.effect_waits = WaitBudget()
        # Requests re-sent after a broken connection: their first attempt may have taken effect.
        self.replayed: list[str] = []
        self._exempt = False
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.credentials = credentials
        self.secrets = secrets
        # Never fewer connections than threads that send at once: httpcore 1.0.9 may close a connection
        # it has already handed to a queued request (encode/httpcore#1110; seen here as "Bad file
        # descriptor" and 30 s hangs, and a non-idempotent request re-sent). The run's threads, not
        # this pool, bound what is in flight; every connection stays kept alive.
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport or _bounded_transport(limits),
            follow_redirects=False,
            limits=limits,
            headers={"accept-encoding": ACCEPT_ENCODING},
        )
        self.requests_sent = 0
        # Tokens other than the write one that requests may carry, by role (read-only, made-up ones).
        self._roles: dict[str, Credential] = {}
        # Every token the write credentials gave (client credentials refresh theirs): role "write".
        self._write_tokens: set[str] = set()
        # For reproductions: the latest detailed reading of each execution, and the nonces a request
        # has already had accepted (a later request carrying one re-uses it).
        self._readings: dict[str, dict[str, Any]] = {}
        self._accepted_nonces: set[str] = set()

    def name_credential(self, token: str, role: Credential) -> None:
        """Let requests that carry `token` be tagged with `role` (and keep the token out of output)."""
        self.secrets.add(token)
        self._roles[token] = role

    def credential_of(self, bearer: str | None, authorization: str | None) -> Credential:
        """The role of a request sent with `bearer`, or with the literal `authorization` header."""
        if bearer is not None:
            # Every token the write credentials ever gave (refreshed ones too); none is fetched here.
            return self._roles.get(bearer) or (
                Credential.WRITE if bearer in self._write_tokens else Credential.OTHER
            )
        if authorization is None:
            return Credential.NONE
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() == "bearer" and presented.strip():
            return self.credential_of(presented.strip(), None)
        return Credential.OTHER

    @property
    def token(self) -> str:
        """A currently valid bearer token (client credentials are refreshed before they expire)."""
        try:
            token = self.credentials.bearer()
        except CredentialsError as error:
            raise CredentialsRefused(str(error)) from None
        self.secrets.add(token)
        self._write_tokens.add(token)
        return token

    @contextmanager
    def exempt_from_budget(self) -> Iterator[None]:
        """For cleanup: leaving fixtures behind is worse than a few requests over the budget.

        Process-wide for this client, not per thread: cleanup cancels from several threads, and
        starts only once every other task of the run has ended."""
        self._exempt = True
        try:
            yield
        finally:
            self._exempt = False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CdfClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw access, used by scenarios to send deliberately odd requests ------------------------

    def project_url(self, path: str, project: str | None = None) -> str:
        return contract.project_base_url(self.base_url, project or self.project) + path

    def retry_url(self, execution_id: str, project: str | None = None) -> str:
        return self.project_url(f"/workflows/executions/{quote(execution_id, safe='')}/retry", project)

    def send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = _UNSET,
        json_per_attempt: Callable[[], Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = _UNSET,
        origin: str = "",
        expectation: Expectation | None = None,
        execution_id: str | None = None,
        form: RequestForm = PLAIN,
        retry_policy: RetryPolicy | None = None,
    ) -> Exchange:
        """Send one request, retrying faults; a transport failure becomes an Exchange without status.

        `json_per_attempt` builds the body anew for each attempt: a request carrying a single-use
        nonce needs a fresh one when it is re-sent. JSON bodies are put on the wire in `form`.
        """
        request_headers: dict[str, str] = {}
        if json_body is not _UNSET:
            content, request_headers = form.encode(json_body)
        elif json_per_attempt is not None:
            request_headers = form.encode({})[1]
        bearer = self.token if token is _UNSET else token
        if bearer is not None:
            request_headers["authorization"] = f"Bearer {bearer}"
        request_headers.update({k.lower(): v for k, v in (headers or {}).items()})
        # From the header the server sees: one given literally in `headers` replaces the token's.
        role = self.credential_of(None, request_headers.get("authorization"))
        attempts = 0
        reached_server = False

        def attempt() -> Exchange:
            nonlocal attempts, reached_server
            attempts += 1
            body = form.encode(json_per_attempt())[0] if json_per_attempt is not None else content
            exchange = self._send_once(
                method, url, body, request_headers, origin, expectation, execution_id, chunked=form.chunked
            )
            exchange.attempts = attempts
            exchange.request_form, exchange.credential = form.name, role
            if reached_server:
                # An earlier attempt may have taken effect before its answer was lost: what this one
                # meets may be the consequence, so it is not held to the original expectation.
                exchange.expectation, exchange.before, exchange.maybe_replayed = None, None, True
            # A gateway's 502 or 504 may come after it forwarded the request to a server that acted on it.
            lost_at_gateway = exchange.status in (502, 504)
            reached_server = (
                reached_server or exchange.connection_broken or exchange.answer_timed_out or lost_at_gateway
            )
            return exchange

        exchange: Exchange = (retry_policy or self.retry_policy).retrying()(attempt)
        exchange.fault = fault_of(exchange)
        if exchange.maybe_replayed:
            self.replayed.append(f"{method} {url}")
        return exchange

    def _send_once(
        self,
        method: str,
        url: str,
        content: bytes | None,
        request_headers: dict[str, str],
        origin: str,
        expectation: Expectation | None,
        execution_id: str | None,
        *,
        chunked: bool = False,
    ) -> Exchange:
        exchange = Exchange(
            method=method,
            url=url,
            request_headers=request_headers,
            request_body=content,
            status=None,
            origin=origin,
            expectation=expectation,
            execution_id=execution_id,
        )
        nonce = nonce_in(exchange.request_json())
        with self._count_lock:
            exchange.reading = self._reading_for(execution_id) if execution_id is not None else None
            exchange.nonce_spent = nonce in self._accepted_nonces
        self.budget.spend(exempt=self._exempt)
        started = time.perf_counter()
        with self._count_lock:
            self.requests_sent += 1
        deadline = Deadline.after(self.limits.seconds)
        try:
            # An iterator makes httpx stream the body: Transfer-Encoding: chunked, no Content-Length.
            sent: bytes | Iterator[bytes] | None = iter([content]) if chunked and content else content
            with (
                deadline_scope(deadline),
                self._http.stream(method, url, content=sent, headers=request_headers) as response,
            ):
                # An in-memory transport's answer (tests) comes read and decoded already.
                read = response.is_stream_consumed
                body = read_body(
                    [response.content] if read else response.iter_raw(READ_CHUNK_BYTES),
                    max_bytes=self.limits.max_body_bytes,
                    deadline=deadline,
                    content_encoding=None if read else response.headers.get("content-encoding"),
                    accept_encoding=response.request.headers.get("accept-encoding"),
                )
        except httpx.InvalidURL:
            # httpx refuses URLs over 64 KiB; the oversized-path probes need them on the wire.
            _send_with_stdlib(exchange, deadline, self.limits.max_body_bytes)
        except _FAULTS_OR_DEADLINE as error:
            exchange.transport_error = f"{type(error).__name__}: {error or 'no detail'}"
            # The request went out in full; only its answer did not come in time.
            exchange.answer_timed_out = isinstance(error, httpx.ReadTimeout | DeadlineExceeded)
        except httpx.TransportError as error:
            exchange.transport_error = f"{type(error).__name__}: {error or 'connection broken'}"
            exchange.connection_broken = True
        else:
            exchange.status = response.status_code
            exchange.response_headers = dict(response.headers)
            exchange.response_body, exchange.body_over_cap = body.content, body.over_cap
        exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        if nonce is not None and exchange.status is not None and 200 <= exchange.status < 300:
            with self._count_lock:
                self._accepted_nonces.add(nonce)
        self.timer.add(
            f"requests: {origin.split(' ', 1)[0].rstrip(':') or 'other'}", exchange.elapsed_ms / 1000
        )
        return exchange

    def _reading_for(self, path_id: str) -> dict[str, Any] | None:
        """The latest reading of the execution `path_id` names, or of the one it was made from (an id
        with a character added, say): what a reproduction must recreate. Called under the lock."""
        reading = self._readings.get(path_id)
        if reading is None and len(path_id) <= _LONGEST_DERIVED_ID:
            known = next((k for k in self._readings if len(k) >= _SHORTEST_ID and k in path_id), None)
            reading = self._readings[known] if known is not None else None
        return reading

    # -- the neighbouring endpoints, for provisioning ---------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Any = _UNSET,
        *,
        body_per_attempt: Callable[[], Any] | None = None,
        ok: tuple[int, ...] = (200, 201, 202),
        form: RequestForm = PLAIN,
        absent: tuple[int, ...] = (),
    ) -> Any:
        """The answer's JSON object; None when the status is one of `absent` (the server has no such
        endpoint, for endpoints a CDF-compatible server may lack)."""
        exchange = self.send(
            method,
            self.project_url(path),
            json_body=body,
            json_per_attempt=body_per_attempt,
            origin=f"provisioning {path}",
            form=form,
            retry_policy=self.retry_policy.patient(),
        )
        if exchange.fault is not None:
            raise InfrastructureError(f"{method} {self.project_url(path)}: {exchange.fault}")
        if exchange.status is None:
            raise UnexpectedAnswer(
                f"{method} {path}: the server dropped the connection ({exchange.transport_error})"
            )
        if exchange.status in (401, 403):
            raise CredentialsRefused(
                f"{method} {path} answered {exchange.status}: the token in CDF_TOKEN was refused "
                f"(it needs workflowOrchestrationACL:READ/WRITE and session creation in {self.project!r})"
            )
        if exchange.status in absent:
            return None
        payload = exchange.json()
        if exchange.status not in ok:
            message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
            # Cut through the registry: a secret cut short would no longer be found where it is shown.
            said = (
                self.secrets.cut(str(message), 200)
                if message
                else repr(self.secrets.excerpt(exchange.response_body, 200))
            )
            raise UnexpectedAnswer(f"{method} {path} answered {exchange.status}: {said}")
        if not isinstance(payload, dict):
            raise UnexpectedAnswer(
                f"{method} {path} answered {exchange.status} with a body that is not a JSON object"
            )
        return payload

    def create_nonce(self) -> str:
        items = self._call("POST", "/sessions", {"items": [self.credentials.session_request()]}).get("items")
        try:
            nonce = str(items[0]["nonce"])
        except (TypeError, LookupError) as error:
            raise UnexpectedAnswer(f"POST /sessions answered without items[0].nonce ({error})") from None
        self.secrets.add(nonce)
        return nonce

    def upsert_workflow(self, external_id: str, description: str) -> None:
        self._call("POST", "/workflows", {"items": [{"externalId": external_id, "description": description}]})

    def upsert_version(self, external_id: str, version: str, tasks: list[dict[str, Any]]) -> None:
        item = {"workflowExternalId": external_id, "version": version, "workflowDefinition": {"tasks": tasks}}
        self._call("POST", "/workflows/versions", {"items": [item]})

    def run(
        self,
        external_id: str,
        version: str,
        metadata: Mapping[str, str] | None = None,
        workflow_input: Mapping[str, Any] | None = None,
        form: RequestForm = PLAIN,
    ) -> dict[str, Any]:
        """Run a version; `metadata` and `workflow_input` are left out of the body when None."""
        path = f"/workflows/{quote(external_id, safe='')}/versions/{quote(version, safe='')}/run"

        def body() -> dict[str, Any]:
            request: dict[str, Any] = {"authentication": {"nonce": self.create_nonce()}}
            if workflow_input is not None:
                request["input"] = dict(workflow_input)
            if metadata is not None:
                request["metadata"] = dict(metadata)
            return request

        result: dict[str, Any] = self._call("POST", path, body_per_attempt=body, form=form)
        return result

    def cancel(self, execution_id: str, reason: str) -> dict[str, Any]:
        path = f"/workflows/executions/{quote(execution_id, safe='')}/cancel"
        result: dict[str, Any] = self._call("POST", path, {"reason": reason})
        return result

    def await_execution(
        self,
        execution_id: str,
        done: Callable[[dict[str, Any]], bool],
        timeout: float = DEFAULT_POLL_SECONDS,
    ) -> dict[str, Any]:
        """Read the detailed execution until `done` holds or `timeout` passes; the last reading."""
        return poll(lambda: self.detailed(execution_id), done, timeout=timeout, timer=self.timer)

    def await_effect(
        self,
        execution_id: str,
        done: Callable[[dict[str, Any]], bool],
        timeout: float = RETRY_SETTLE_SECONDS,
    ) -> dict[str, Any]:
        """`await_execution` for an effect of a retry (new attempts, an execution failing again): also
        bounded by the run-wide `effect_waits`, so effects that never come cost a run its budget once."""
        return poll(
            lambda: self.detailed(execution_id),
            done,
            timeout=timeout,
            timer=self.timer,
            budget=self.effect_waits,
        )

    def knows(self, execution_id: str) -> bool:
        """Whether the client has read the execution with exactly this id (the suite's own, or one the
        user named): only such an execution can be read before and after a retry of it."""
        with self._count_lock:
            return execution_id in self._readings

    def detailed(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/workflows/executions/{quote(execution_id, safe='')}")
        with self._count_lock:
            self._readings[execution_id] = result
        return result

    def update_task(
        self, task_id: str, status: str, output: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if output is not None:
            body["output"] = dict(output)
        path = f"/workflows/tasks/{quote(task_id, safe='')}/update"
        try:
            result: dict[str, Any] = self._call("POST", path, body)
        except UnexpectedAnswer:
            # Re-sent after its answer was lost, the update meets the task its first attempt already
            # ended: a refusal then confirms the update rather than contradicting it.
            if f"POST {self.project_url(path)}" not in self.replayed:
                raise
            return {"id": task_id, "status": status}
        return result

    def delete_workflows(self, external_ids: list[str]) -> None:
        # In batches the API accepts: a run that explores many sequences creates a workflow for each.
        for start in range(0, len(external_ids), WORKFLOW_DELETE_MAX_ITEMS):
            items = [{"externalId": x} for x in external_ids[start : start + WORKFLOW_DELETE_MAX_ITEMS]]
            self._call("POST", "/workflows/delete", {"items": items, "ignoreUnknownIds": True})

    def list_executions(
        self, workflow_external_ids: list[str], statuses: tuple[str, ...] = ()
    ) -> list[dict[str, Any]] | None:
        """The executions of these workflows (with one of `statuses`, when given), every page of them;
        None when the server has no `POST /workflows/executions/list` (it answers 404 or 405)."""
        path = "/workflows/executions/list"
        found: list[dict[str, Any]] = []
        for start in range(0, len(workflow_external_ids), MAX_WORKFLOW_FILTERS):
            chunk = workflow_external_ids[start : start + MAX_WORKFLOW_FILTERS]
            query: dict[str, Any] = {"workflowFilters": [{"externalId": xid} for xid in chunk]}
            if statuses:
                query["status"] = list(statuses)
            cursor: str | None = None
            seen_cursors: set[str] = set()
            while True:
                body: dict[str, Any] = {"filter": query, "limit": MAX_LIST_LIMIT}
                if cursor is not None:
                    body["cursor"] = cursor
                page = self._call("POST", path, body, ok=(200,), absent=(404, 405))
                if page is None:
                    return None
                items, cursor = page.get("items"), page.get("nextCursor")
                if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                    raise UnexpectedAnswer(f"POST {path} answered without an 'items' array of objects")
                found.extend(items)
                if cursor is None:
                    break
                # A server handing back a cursor it gave before would keep the loop going for ever.
                if not isinstance(cursor, str) or cursor in seen_cursors:
                    raise UnexpectedAnswer(f"POST {path} answered a nextCursor that leads nowhere new")
                seen_cursors.add(cursor)
        return found
