"""Whether a release tag may be published: `vX.Y.Z` equal to pyproject.toml's version (the one source
of the version; the CLI's --version and the reports read it from the installed package), and a
CHANGELOG.md section `## [X.Y.Z] - YYYY-MM-DD` for it. The release workflow runs it before it builds
anything or moves the major tag.

    python3 scripts/release_check.py v1.2.3     # exit 0, or 1 with one line per problem
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
# Keep a Changelog's heading of a released version; "unreleased" in place of the date until then.
SECTION = re.compile(
    r"^## \[(?P<version>\d+\.\d+\.\d+)\] - (?P<date>\d{4}-\d{2}-\d{2}|unreleased)$", re.MULTILINE
)


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    version = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    return str(version)


def changelog_sections(changelog: Path = ROOT / "CHANGELOG.md") -> dict[str, str]:
    """Version → its date (or "unreleased"), for every version section of the changelog."""
    return {m["version"]: m["date"] for m in SECTION.finditer(changelog.read_text(encoding="utf-8"))}


def major_tag(tag: str) -> str:
    """The moving tag a release also sets: `v1` for v1.4.2."""
    return tag.split(".", 1)[0]


def problems(
    tag: str, pyproject: Path = ROOT / "pyproject.toml", changelog: Path = ROOT / "CHANGELOG.md"
) -> list[str]:
    found: list[str] = []
    if not TAG.fullmatch(tag):
        return [f"tag {tag!r} is not vX.Y.Z"]
    version = project_version(pyproject)
    if tag != f"v{version}":
        found.append(f"tag {tag} is not pyproject.toml's version {version} (raise it there first)")
    date = changelog_sections(changelog).get(tag[1:])
    if date is None:
        found.append(f"CHANGELOG.md has no section '## [{tag[1:]}] - YYYY-MM-DD'")
    elif date == "unreleased":
        found.append(f"CHANGELOG.md's section {tag[1:]} is still dated 'unreleased': give the release date")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: release_check.py vX.Y.Z", file=sys.stderr)
        return 2
    found = problems(argv[0])
    for problem in found:
        print(f"release_check: {problem}", file=sys.stderr)
    if not found:
        print(f"release_check: {argv[0]} may be released; the major tag {major_tag(argv[0])} moves to it")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
