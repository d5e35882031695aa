"""Each credential is checked before the run, so a misconfigured one stops the run with one line naming
its variable instead of surfacing later as a contract violation (a wrong read-only token would otherwise
fail AUTH-403 with "answered 401").

What can be told from outside without side effects:
- a token the target does not accept answers 401 to a plain read;
- what a token may do, from CDF's `GET /api/v1/token/inspect`, where the target has it. A target without
  it (404, 405, 501, or an answer of another shape) is not held against the credential: only a
  well-formed answer that clearly lacks (or, for the read-only token, clearly holds) a capability is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from retry_contract.cdf_client import CdfClient
from retry_contract.credentials import READONLY_TOKEN_ENV, TOKEN_ENV

WORKFLOW_ACL = "workflowOrchestrationAcl"
SESSIONS_ACL = "sessionsAcl"
INSPECT_PATH = "/api/v1/token/inspect"
MAIN_CREDENTIALS = f"{TOKEN_ENV} (or the client credentials)"


class CredentialProblem(Exception):
    """A credential is unusable for the run; the message names its environment variable."""


@dataclass(frozen=True)
class Grants:
    """What `token/inspect` says a token may do in one project: ACL name → actions, and whether each
    ACL's WRITE is scoped to everything (not to some data sets)."""

    actions: Mapping[str, frozenset[str]]
    unscoped: frozenset[str]

    def allows(self, acl: str, action: str) -> bool:
        return action in self.actions.get(acl, frozenset())


def check(client: CdfClient, readonly_token: str | None) -> None:
    """Raise CredentialProblem when the main credentials or the read-only token cannot serve the run."""
    main = _grants(client, None)
    if main is not None:
        missing = [
            f"{acl}:{action}"
            for acl, action in ((WORKFLOW_ACL, "READ"), (WORKFLOW_ACL, "WRITE"), (SESSIONS_ACL, "CREATE"))
            if not main.allows(acl, action)
        ]
        if missing:
            raise CredentialProblem(
                f"{MAIN_CREDENTIALS} lacks {', '.join(missing)} in project {client.project} "
                f"(GET {INSPECT_PATH}); the suite creates, runs and retries its own workflows"
            )
    if readonly_token is None:
        return
    probe = client.send(
        "GET",
        client.project_url(f"/workflows/executions/{uuid.uuid4()}"),
        token=readonly_token,
        origin="credential check: read-only token",
    )
    if probe.status == 401:
        raise CredentialProblem(
            f"{READONLY_TOKEN_ENV} is not accepted by the target (401 on a plain read): give a valid token "
            f"without {WORKFLOW_ACL}:WRITE, or unset it (AUTH-403's read-only case is then not covered)"
        )
    readonly = _grants(client, readonly_token)
    if readonly is not None and WORKFLOW_ACL in readonly.unscoped:
        raise CredentialProblem(
            f"{READONLY_TOKEN_ENV} holds {WORKFLOW_ACL}:WRITE in project {client.project} "
            f"(GET {INSPECT_PATH}): it must lack WRITE, or AUTH-403 would judge a token allowed to retry"
        )


def _grants(client: CdfClient, token: str | None) -> Grants | None:
    """The token's grants in the client's project, or None when the target cannot say."""
    kwargs: dict[str, Any] = {} if token is None else {"token": token}
    answer = client.send("GET", f"{client.base_url}{INSPECT_PATH}", origin="credential check", **kwargs)
    body = answer.json()
    if answer.status != 200 or not isinstance(body, dict) or not isinstance(body.get("capabilities"), list):
        return None
    actions: dict[str, set[str]] = {}
    unscoped: set[str] = set()
    for acl, grant, scope in _capabilities(body["capabilities"], client.project):
        actions.setdefault(acl, set()).update(a for a in grant.get("actions", []) if isinstance(a, str))
        if "WRITE" in grant.get("actions", []) and "all" in scope:
            unscoped.add(acl)
    return Grants({acl: frozenset(a) for acl, a in actions.items()}, frozenset(unscoped))


def _capabilities(items: list[Any], project: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(ACL name, its grant, its scope) of every capability that applies to `project`."""
    for item in items:
        if not isinstance(item, dict):
            continue
        project_scope = item.get("projectScope")
        if isinstance(project_scope, dict) and not (
            "allProjects" in project_scope or project in (project_scope.get("projects") or [])
        ):
            continue
        for acl, grant in item.items():
            if acl != "projectScope" and isinstance(grant, dict):
                scope = grant.get("scope")
                yield acl, grant, scope if isinstance(scope, dict) else {}
