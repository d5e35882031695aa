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

from retry_contract.budget import RequestBudget
from retry_contract.credentials import Credentials, CredentialsError
from retry_contract.exchange import Exchange, Expectation
from retry_contract.polling import DEFAULT_TIMEOUT_SECONDS as DEFAULT_POLL_SECONDS
from retry_contract.polling import poll
from retry_contract.request_forms import PLAIN, RequestForm
from retry_contract.resilience import DEFAULT_RETRY_POLICY, FAULT_ERRORS, RetryPolicy, fault_of
from retry_contract.secrets_registry import SecretRegistry
from retry_contract.timing import PhaseTimer

DEFAULT_TIMEOUT_SECONDS = 30.0
# More than the threads a run ever has sending at once (workers, their helpers, the fuzzer's pool).
DEFAULT_CONNECTIONS = 64
_UNSET: Any = object()


class ClientError(Exception):
    """Base of the errors that mean the run cannot go on."""


class CredentialsRefused(ClientError):
    pass


class InfrastructureError(ClientError):
    """The network or a gateway kept failing (after retries): nothing can be concluded."""


class UnexpectedAnswer(ClientError):
    """A neighbouring endpoint answered something the model does not allow; provisioning stops."""


def _send_with_stdlib(exchange: Exchange, timeout: float | None) -> None:
    """Send `exchange`'s request with `http.client`, which takes a request line of any length."""
    parts = urlsplit(exchange.url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(
            exchange.method, target, body=exchange.request_body, headers=dict(exchange.request_headers)
        )
        response = connection.getresponse()
        exchange.status = response.status
        exchange.response_headers = {k.lower(): v for k, v in response.getheaders()}
        exchange.response_body = response.read()
    except ConnectionRefusedError as error:
        exchange.transport_error = f"{type(error).__name__}: {error}"
    except (OSError, http.client.HTTPException) as error:
        exchange.transport_error = f"{type(error).__name__}: {error or 'connection broken'}"
        exchange.connection_broken = True
    finally:
        connection.close()


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
    ) -> None:
        self.retry_policy = retry_policy
        self.timer = timer or PhaseTimer()
        self._count_lock = threading.Lock()
        self.budget = budget or RequestBudget()
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
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False, limits=limits)
        self.requests_sent = 0

    @property
    def token(self) -> str:
        """A currently valid bearer token (client credentials are refreshed before they expire)."""
        try:
            token = self.credentials.bearer()
        except CredentialsError as error:
            raise CredentialsRefused(str(error)) from None
        self.secrets.add(token)
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
        return f"{self.base_url}/api/v1/projects/{quote(project or self.project, safe='')}{path}"

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
            if reached_server:
                # An earlier attempt may have taken effect before its answer was lost: what this one
                # meets may be the consequence, so it is not held to the original expectation.
                exchange.expectation, exchange.before, exchange.maybe_replayed = None, None, True
            reached_server = reached_server or exchange.connection_broken
            return exchange

        exchange: Exchange = self.retry_policy.retrying()(attempt)
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
        self.budget.spend(exempt=self._exempt)
        started = time.perf_counter()
        with self._count_lock:
            self.requests_sent += 1
        try:
            # An iterator makes httpx stream the body: Transfer-Encoding: chunked, no Content-Length.
            sent: bytes | Iterator[bytes] | None = iter([content]) if chunked and content else content
            response = self._http.request(method, url, content=sent, headers=request_headers)
        except httpx.InvalidURL:
            # httpx refuses URLs over 64 KiB; the oversized-path probes need them on the wire.
            _send_with_stdlib(exchange, self._http.timeout.read)
        except FAULT_ERRORS as error:
            exchange.transport_error = f"{type(error).__name__}: {error or 'no detail'}"
        except httpx.TransportError as error:
            exchange.transport_error = f"{type(error).__name__}: {error or 'connection broken'}"
            exchange.connection_broken = True
        else:
            exchange.status = response.status_code
            exchange.response_headers = dict(response.headers)
            exchange.response_body = response.content
        exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        self.timer.add(
            f"requests: {origin.split(' ', 1)[0].rstrip(':') or 'other'}", exchange.elapsed_ms / 1000
        )
        return exchange

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
    ) -> Any:
        exchange = self.send(
            method,
            self.project_url(path),
            json_body=body,
            json_per_attempt=body_per_attempt,
            origin=f"provisioning {path}",
            form=form,
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
        payload = exchange.json()
        if exchange.status not in ok:
            message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
            raise UnexpectedAnswer(
                f"{method} {path} answered {exchange.status}: {message or exchange.response_body[:200]!r}"
            )
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

    def detailed(self, execution_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/workflows/executions/{quote(execution_id, safe='')}")
        return result

    def update_task(
        self, task_id: str, status: str, output: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if output is not None:
            body["output"] = dict(output)
        result: dict[str, Any] = self._call(
            "POST", f"/workflows/tasks/{quote(task_id, safe='')}/update", body
        )
        return result

    def delete_workflows(self, external_ids: list[str]) -> None:
        if external_ids:
            items = [{"externalId": x} for x in external_ids]
            self._call("POST", "/workflows/delete", {"items": items, "ignoreUnknownIds": True})
