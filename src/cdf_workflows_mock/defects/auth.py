"""Defects of authentication and authorization: who may retry, in which project, with what capability."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from cdf_workflows_mock.auth import Caller
from cdf_workflows_mock.cdf import WORKFLOW_READ
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


# Every defect of this family, in the catalogue's order.
DEFECTS: tuple[Defect, ...] = (
    Defect(
        name="auth-header-optional",
        breaks=("AUTH-401",),
        description="A retry without an Authorization header runs as a service identity with WRITE",
        patch=Patch(dispatcher=_NoTokenRunsAsService),
    ),
    Defect(
        name="auth-any-bearer-token",
        breaks=("AUTH-401",),
        description="The retry accepts any bearer token string as a caller with WRITE",
        patch=Patch(dispatcher=_AnyBearerToken),
    ),
    Defect(
        name="auth-unknown-token-403",
        breaks=("AUTH-401",),
        description="An unknown bearer token on the retry is answered 403, not 401",
        patch=Patch(dispatcher=_UnknownToken403),
    ),
    Defect(
        name="readonly-can-retry",
        breaks=("AUTH-403",),
        description="The retry needs only workflowOrchestrationACL:READ",
        patch=Patch(handlers=_ReadonlyCanRetry),
    ),
    Defect(
        name="project-scope-ignored",
        breaks=("AUTH-403",),
        description="The retry accepts a token for any project and looks the execution up in that project",
        patch=Patch(dispatcher=_ProjectScopeIgnored),
    ),
)
