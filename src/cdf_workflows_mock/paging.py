"""Pages of the list endpoints: a limit, and an opaque cursor saying where the previous page ended.

A cursor holds the sort key of the last item its page held (keyset paging), so following cursors is
stable: items created or deleted in between never make a later page repeat an item or skip one that
is still there. A cursor is bound to the list and the filter that issued it; a cursor the mock did
not issue for this query (garbled, from another list, from another filter) is a 400, as an invalid
parameter is everywhere else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cdf_workflows_mock.errors import InvalidRequest

# The documented bounds of `limit` on the workflow lists (`components/schemas/limit`) and sessions.
DEFAULT_LIMIT = 100
SESSIONS_DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
# Longer than any cursor the mock issues (a key of two identifiers of 255 characters, encoded).
MAX_CURSOR_LENGTH = 4096

T = TypeVar("T")
# What items are ordered by: integers and strings only, so a key read back from JSON compares the same.
SortKey = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """One list endpoint's order: its name (which cursors are its own) and its items' sort key."""

    name: str
    key: Callable[[T], SortKey]
    # The type of each part of the key: what a cursor read back must hold.
    key_types: tuple[type[int] | type[str], ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def page_of(listing: Listing[T], items: Iterable[T], request: PageRequest, query: object = None) -> Page[T]:
    """The page of `items` (already filtered by `query`) that `request` asks for, in the listing's order.

    A next cursor is given only when more items follow, so the last page never ends with a cursor to an
    empty one.
    """
    scope = _scope(listing.name, query)
    ordered = sorted(items, key=listing.key)
    if request.cursor is not None:
        after = _decode(request.cursor, scope, listing.key_types)
        ordered = [item for item in ordered if listing.key(item) > after]
    page = ordered[: request.limit]
    more = len(ordered) > request.limit
    return Page(page, _encode(scope, listing.key(page[-1])) if more else None)


def _scope(name: str, query: object) -> str:
    """The list and the filter a cursor belongs to, compact: the cursor must not grow with the filter."""
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{name}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def _encode(scope: str, key: SortKey) -> str:
    payload = json.dumps({"scope": scope, "after": list(key)}, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode(cursor: str, scope: str, key_types: tuple[type[int] | type[str], ...]) -> SortKey:
    invalid = InvalidRequest(
        "The cursor is not one this list issued for this filter; pass the nextCursor of the previous "
        "page unchanged, with the same filter"
    )
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise invalid
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("scope") != scope:
        raise invalid
    after = payload.get("after")
    # Compared with the items' keys: a part of another type would not compare (a crash, not a 400).
    if (
        not isinstance(after, list)
        or len(after) != len(key_types)
        or not all(type(part) is kind for part, kind in zip(after, key_types, strict=True))
    ):
        raise invalid
    return tuple(after)
