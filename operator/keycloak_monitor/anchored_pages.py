"""A first/max listing that stays exact while the list changes under it.

Keycloak lists a client's online sessions in a fixed order (by session id with the
persistent sessions of 25+, by last refresh with volatile ones). A session created or
ended before the page being read shifts every later one by a place: plain offset pages
then repeat a session at a boundary, or skip one. Items are kept by id, so a repeat
counts once; and every page but the first starts `overlap` items before its boundary and
must contain an item of the page before it (an anchor): with one, nothing between the two
pages was skipped. A page without an anchor is read again with twice the overlap, a few
times; a boundary still without one is reported, and the caller says how far it may be off.

An order that moves an item to the end when it changes (by last refresh) needs the pages
read one after another: an item moved past pages already read would be missed. Its items
also tie (refreshed in the same second) and the server may reorder a tie between two
reads, so there each page starts `overlap` items before the tie the last page ended in,
however long (sessions begun in one burst tie by the hundred), and its anchor must sort
strictly before that tie: the page then holds the whole tie as one read ordered it. A
fixed order lets the pages a count announces be read side by side.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .tasks import all_of

T = TypeVar("T")
# (first, max) -> ([(id, item)], each item's sort key if the order moves items, else None)
Fetch = Callable[[int, int], Awaitable[tuple[list[tuple[str, T]], list[Any] | None]]]

# Re-reads of one page whose overlap holds no item of the page before: the overlap doubles
# each time (capped at a page), then the boundary is counted as unanchored.
MAX_REREADS = 3


@dataclass
class Listing(Generic[T]):
    items: dict[str, T]
    requests: int = 0
    rereads: int = 0  # pages read again because a session may have been skipped
    unanchored: int = 0  # boundaries where a skip could not be ruled out


@dataclass
class _Page(Generic[T]):
    items: list[tuple[str, T]]
    first: int  # the place it was read from
    full: bool  # as long as asked: the list may go on
    keys: list[Any] | None  # sort keys of an order that moves items


@dataclass(frozen=True)
class _Tie:
    """Where the items sharing the last sort key read so far began."""

    key: Any
    first: int


def _tie_after(tie: _Tie | None, page: _Page[Any]) -> _Tie:
    """The tie a page ends in: begun in an earlier page when the page is that tie throughout."""
    assert page.keys
    last = page.keys[-1]
    begins = page.keys.index(last)  # sorted: its first place
    if begins == 0 and tie is not None and tie.key == last:
        return tie
    return _Tie(last, page.first + begins)


def _anchored(seen: dict[str, Any], last_key: Any, page: _Page[Any]) -> bool:
    """Nothing lies unread between what was read and this page: it starts at the top, or
    holds an item read before (in an order that moves items, one sorting before the tie
    the reading ended in; a refreshed item sorts after it)."""
    if page.first == 0:
        return True
    if page.keys is None or last_key is None:
        return any(item_id in seen for item_id, _ in page.items)
    return any(item_id in seen and key < last_key for (item_id, _), key in zip(page.items, page.keys, strict=True))


async def list_anchored(fetch: Fetch[T], page_size: int, overlap: int, expected: int = 0) -> Listing[T]:
    """Every item once by id. `expected` (a count read beforehand) lets the pages after the
    first be read concurrently when the first shows a fixed order: anchors then hold
    whatever order the pages are read in."""
    listing: Listing[T] = Listing({})
    tie: _Tie | None = None  # only in an order that moves items

    async def read(number: int, widen: int = 0) -> _Page[T]:
        first = 0
        if number:
            boundary = number * page_size if tie is None else min(number * page_size, tie.first)
            first = max(0, boundary - min(page_size, overlap << widen))
        size = (number + 1) * page_size - first
        listing.requests += 1
        items, keys = await fetch(first, size)
        return _Page(items, first, len(items) >= size, keys)

    pages = [await read(0)]
    ahead = 0 if pages[0].keys is not None or not pages[0].full else -(-expected // page_size) - 1
    pages += await all_of(read(n) for n in range(1, 1 + ahead))
    listing.items.update(pages[0].items)
    number = 0
    while pages[number].full:
        before = pages[number]
        last_key = None
        if before.keys:
            tie = _tie_after(tie, before)
            last_key = tie.key
        number += 1
        if number == len(pages):
            pages.append(await read(number))
        widen = 0
        while overlap and not _anchored(listing.items, last_key, pages[number]):
            if widen == MAX_REREADS:
                listing.unanchored += 1
                break
            widen += 1
            listing.rereads += 1
            pages[number] = await read(number, widen)
        before.items = []  # its items are kept by id: hold each page once
        listing.items.update(pages[number].items)
    return listing
