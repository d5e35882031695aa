"""Where `retry-contract replay` sends a failure again, and whether that is where the run saw it.

A replay judges one target: the report's own by default (the server at its base URL and project, or a
fresh embedded mock with the run's profile and defects, or the run's app served in-process again), or
the one the user names. A verdict on another target says nothing about the report's: "holds now" on a
faithful mock is no news about the server that failed, so the replay must know which it is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# A report older than the `base_url` of its replay records' run facts, and its embedded mock's defaults.
_CLASSIC = "classic"


@dataclass(frozen=True)
class ReplayTarget:
    """One target: a server (`base_url`), an app served in-process (`app`), or else a fresh embedded
    mock with `mock_defects` in `mock_profile`."""

    project: str
    base_url: str | None = None
    app: str | None = None
    mock_defects: frozenset[str] = frozenset()
    mock_profile: str = _CLASSIC

    @property
    def embedded_mock(self) -> bool:
        return self.base_url is None and self.app is None

    def describe(self) -> str:
        if self.base_url is not None:
            return f"{self.base_url} (project {self.project})"
        if self.app is not None:
            return f"{self.app} served in-process (project {self.project})"
        defects = ", ".join(sorted(self.mock_defects))
        profile = "" if self.mock_profile == _CLASSIC else f", profile {self.mock_profile}"
        return f"a fresh embedded mock ({f'with {defects}' if defects else 'faithful'}{profile})"

    def same_as(self, other: ReplayTarget) -> bool:
        """The same server and project (URLs compared as a client reaches them), the same app, or an
        embedded mock with the same defects and profile."""
        if self.project != other.project:
            return False
        if self.base_url is not None or other.base_url is not None:
            return (
                self.base_url is not None
                and other.base_url is not None
                and _origin(self.base_url) == _origin(other.base_url)
            )
        if self.app is not None or other.app is not None:
            return self.app == other.app
        return (self.mock_defects, self.mock_profile) == (other.mock_defects, other.mock_profile)


def _origin(url: str) -> tuple[str, str, int | None, str]:
    """What decides where a request goes: scheme and host case-insensitively, the default port
    spelled or not, and the path without its trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), None if port == default else port, parts.path.rstrip("/")


def recorded(run: Mapping[str, Any], report_target: str | None, fallback_project: str) -> ReplayTarget | None:
    """The target of the report's run, from a replay record's run facts (and, for reports written before
    they held `base_url`, the report's `target`); None when the report does not say where it ran."""
    project = str(run.get("project") or fallback_project)
    if run.get("embedded_mock"):
        return ReplayTarget(
            project,
            mock_defects=frozenset(str(name) for name in run.get("mock_defects") or ()),
            mock_profile=str(run.get("mock_profile") or _CLASSIC),
        )
    if run.get("app"):
        return ReplayTarget(project, app=str(run["app"]))
    base_url = run.get("base_url") or report_target
    if isinstance(base_url, str) and base_url.startswith(("http://", "https://")):
        return ReplayTarget(project, base_url=base_url.rstrip("/"))
    return None


def chosen(
    report: ReplayTarget | None,
    *,
    base_url: str | None = None,
    app: str | None = None,
    mock: bool = False,
    mock_defects: frozenset[str] = frozenset(),
    mock_profile: str | None = None,
    project: str | None = None,
) -> ReplayTarget:
    """The target a replay uses: the one named (a server, an app, or an embedded mock: `mock`, or
    implied by its defects or profile), else the report's; ValueError when neither is known."""
    if base_url is not None or app is not None or mock or mock_defects or mock_profile is not None:
        name = project or (report.project if report is not None else None)
        if name is None:
            raise ValueError("the report does not name its project: give --project")
        return ReplayTarget(
            name,
            base_url=base_url.rstrip("/") if base_url is not None else None,
            app=app,
            mock_defects=mock_defects,
            mock_profile=mock_profile or _CLASSIC,
        )
    if report is None:
        raise ValueError(
            "the report does not say where its run was: give --base-url (or --app, or --mock for an "
            "embedded mock)"
        )
    return (
        report
        if project is None
        else ReplayTarget(project, report.base_url, report.app, report.mock_defects, report.mock_profile)
    )
