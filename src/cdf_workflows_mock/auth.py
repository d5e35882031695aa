"""Who is calling and what they may do: bearer tokens checked against the configured grants.

401 means "we do not know you" (no header, not Bearer, unknown token); 403 means "we know you,
but not for this" (another project, a missing capability), as AUTH-401 and AUTH-403 require.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cdf_workflows_mock.config import TokenGrant
from cdf_workflows_mock.errors import Forbidden, Unauthorized
from cdf_workflows_mock.model import JSONObject


@dataclass(frozen=True, slots=True)
class Caller:
    token: str
    grant: TokenGrant

    @property
    def subject(self) -> str:
        # Derived from the token so the inspection names the caller without echoing a credential.
        return "mock-subject-" + hashlib.sha256(self.token.encode()).hexdigest()[:12]


def authenticate(authorization: str | None, tokens: Mapping[str, TokenGrant]) -> Caller:
    if authorization is None or not authorization.strip():
        raise Unauthorized("Missing 'Authorization: Bearer <token>' header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("Unsupported authorization scheme; send 'Authorization: Bearer <token>'")
    token = token.strip()
    grant = tokens.get(token)
    if grant is None:
        raise Unauthorized("The bearer token is unknown or has expired")
    return Caller(token=token, grant=grant)


def authorize_project(caller: Caller, project: str) -> None:
    if project not in caller.grant.projects:
        raise Forbidden(f"The token is not valid for project {project!r}")


def authorize_capability(caller: Caller, capability: str | None) -> None:
    if capability is not None and capability not in caller.grant.capabilities:
        raise Forbidden(f"The token lacks the capability {capability}, which this request needs")


def token_inspection(caller: Caller) -> JSONObject:
    """The body of `GET /api/v1/token/inspect`, in the shape the Cognite SDK reads."""
    projects = sorted(caller.grant.projects)
    actions_by_acl: dict[str, list[str]] = {}
    for capability in sorted(caller.grant.capabilities):
        acl, _, action = capability.partition(":")
        # The capability names use `...ACL`; the API spells the ACL objects `...Acl`.
        name = acl[: -len("ACL")] + "Acl" if acl.endswith("ACL") else acl
        actions_by_acl.setdefault(name, []).append(action)
    return {
        "subject": caller.subject,
        "projects": [{"projectUrlName": project, "groups": []} for project in projects],
        "capabilities": [
            {name: {"actions": actions, "scope": {"all": {}}}, "projectScope": {"projects": projects}}
            for name, actions in actions_by_acl.items()
        ],
    }
