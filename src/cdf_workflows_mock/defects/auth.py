"""Defects of authentication and authorization: who may retry, in which project, with what capability."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from cdf_workflows_mock.auth import Caller
from cdf_workflows_mock.cdf import WORKFLOW_READ
from cdf_workflows_mock.config import DEFAULT_READONLY_TOKEN
from cdf_workflows_mock.defects.base import (
    Defect,
    DefectiveDispatcher,
    Patch,
    SteppedHandlers,
    bearer_token,
    is_retry_endpoint,
    is_retry_request,
    write_grant,
)
from cdf_workflows_mock.defects.probing import (
    MockApi,
    Prober,
    assert_envelope,
)
from cdf_workflows_mock.errors import Forbidden, Unauthorized
from cdf_workflows_mock.routing import Endpoint


class _NoTokenRunsAsService(DefectiveDispatcher):
    """A retry without credentials is taken for an internal call and runs as the service identity."""

    def identify(self, request: Request) -> Caller:
        if is_retry_request(request) and "authorization" not in request.headers:
            return Caller(token="", grant=write_grant(self._config.project))
        return super().identify(request)


class _AnyBearerToken(DefectiveDispatcher):
    """The retry checks only that a bearer token is there, never that the token is known."""

    def identify(self, request: Request) -> Caller:
        try:
            return super().identify(request)
        except Unauthorized:
            token = bearer_token(request)
            if is_retry_request(request) and token:
                return Caller(token=token, grant=write_grant(self._config.project))
            raise


class _UnknownToken403(DefectiveDispatcher):
    """An unknown token on the retry is answered as a permission problem."""

    def identify(self, request: Request) -> Caller:
        try:
            return super().identify(request)
        except Unauthorized:
            if is_retry_request(request) and bearer_token(request):
                raise Forbidden("The token is not allowed to retry workflow executions") from None
            raise


class _ProjectScopeIgnored(DefectiveDispatcher):
    """The retry trusts the project in the path: a token of one project may act in any other."""

    def check_project(self, request: Request, caller: Caller, project: str) -> None:
        if not is_retry_request(request):
            super().check_project(request, caller, project)


class _ReadonlyCanRetry(SteppedHandlers):
    """The retry route is registered with the read capability."""

    def endpoints(self) -> list[Endpoint]:
        return [
            replace(endpoint, capability=WORKFLOW_READ) if is_retry_endpoint(endpoint) else endpoint
            for endpoint in super().endpoints()
        ]


# --- probes: each defect's change, shown on the mock through its API (`probing`) -----------


def _probe_auth_header_optional(p: Prober) -> None:
    with p.client(None) as anonymous:
        assert anonymous.post(p.retry_url(p.failed()), json=p.body()).status_code == 200
        assert_envelope(anonymous.get(f"/workflows/executions/{p.failed()}"), 401)


def _probe_auth_any_bearer_token(p: Prober) -> None:
    with p.client("made-up-token") as stranger:
        assert stranger.post(p.retry_url(p.failed()), json=p.body()).status_code == 200
    with p.client(None) as anonymous:
        answer = anonymous.post(p.retry_url(p.failed()), json=p.body(), headers={"Authorization": "Bearer"})
        assert_envelope(answer, 401)


def _probe_auth_unknown_token_403(p: Prober) -> None:
    execution_id = p.failed()
    with p.client("made-up-token") as stranger:
        assert_envelope(stranger.post(p.retry_url(execution_id), json=p.body()), 403)
    with p.client(None) as anonymous:
        assert_envelope(anonymous.post(p.retry_url(execution_id), json=p.body()), 401)
    assert p.api.detail(execution_id)["status"] == "FAILED"


def _probe_readonly_can_retry(p: Prober) -> None:
    with p.client(DEFAULT_READONLY_TOKEN) as reader:
        assert reader.post(p.retry_url(p.failed()), json=p.body()).status_code == 200
        assert_envelope(reader.post(f"/workflows/executions/{p.running()}/cancel", json={}), 403)


def _probe_project_scope_ignored(p: Prober) -> None:
    execution_id = p.failed()
    other = MockApi(p.base_url, project="another-project")
    try:
        # The token is not valid for the other project: the retry looks the execution up there anyway.
        error = assert_envelope(other.http.post(p.retry_url(execution_id), json=p.body()), 404)
        assert error["missing"] == [{"id": execution_id}]
        assert_envelope(other.http.get(f"/workflows/executions/{execution_id}"), 403)
    finally:
        other.close()


# Every defect of this family, in the catalogue's order.
DEFECTS: tuple[Defect, ...] = (
    Defect(
        name="auth-header-optional",
        breaks=("AUTH-401",),
        description="A retry without an Authorization header runs as a service identity with WRITE",
        patch=Patch(dispatcher=_NoTokenRunsAsService),
        probe=_probe_auth_header_optional,
    ),
    Defect(
        name="auth-any-bearer-token",
        breaks=("AUTH-401",),
        description="The retry accepts any bearer token string as a caller with WRITE",
        patch=Patch(dispatcher=_AnyBearerToken),
        probe=_probe_auth_any_bearer_token,
    ),
    Defect(
        name="auth-unknown-token-403",
        breaks=("AUTH-401",),
        description="An unknown bearer token on the retry is answered 403, not 401",
        patch=Patch(dispatcher=_UnknownToken403),
        probe=_probe_auth_unknown_token_403,
    ),
    Defect(
        name="readonly-can-retry",
        breaks=("AUTH-403",),
        description="The retry needs only workflowOrchestrationACL:READ",
        patch=Patch(handlers=_ReadonlyCanRetry),
        probe=_probe_readonly_can_retry,
    ),
    Defect(
        name="project-scope-ignored",
        breaks=("AUTH-403",),
        description="The retry accepts a token for any project and looks the execution up in that project",
        patch=Patch(dispatcher=_ProjectScopeIgnored),
        probe=_probe_project_scope_ignored,
    ),
)
