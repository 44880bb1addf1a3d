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
reads, so there the anchor must sort strictly before the last item of the page before:
the next page then holds that item's whole tie. A fixed order lets the pages a count
announces be read side by side.
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
    full: bool  # as long as asked: the list may go on
    keys: list[Any] | None  # sort keys of an order that moves items


def _anchored(before: _Page[Any], page: _Page[Any]) -> bool:
    ids = {item_id for item_id, _ in before.items}
    if before.keys is None or page.keys is None:
        return not ids.isdisjoint(item_id for item_id, _ in page.items)
    last = before.keys[-1]
    return any(item_id in ids and key < last for (item_id, _), key in zip(page.items, page.keys, strict=True))


async def list_anchored(fetch: Fetch[T], page_size: int, overlap: int, expected: int = 0) -> Listing[T]:
    """Every item once by id. `expected` (a count read beforehand) lets the pages after the
    first be read concurrently when the first shows a fixed order: anchors then hold
    whatever order the pages are read in."""
    listing: Listing[T] = Listing({})

    async def read(number: int, widen: int = 0) -> _Page[T]:
        first = max(0, number * page_size - min(page_size, overlap << widen)) if number else 0
        size = (number + 1) * page_size - first
        listing.requests += 1
        items, keys = await fetch(first, size)
        return _Page(items, len(items) >= size, keys)

    pages = [await read(0)]
    ahead = 0 if pages[0].keys is not None or not pages[0].full else -(-expected // page_size) - 1
    pages += await all_of(read(n) for n in range(1, 1 + ahead))
    listing.items.update(pages[0].items)
    number = 0
    while pages[number].full:
        number += 1
        if number == len(pages):
            pages.append(await read(number))
        widen = 0
        while overlap and not _anchored(pages[number - 1], pages[number]):
            if widen == MAX_REREADS:
                listing.unanchored += 1
                break
            widen += 1
            listing.rereads += 1
            pages[number] = await read(number, widen)
        pages[number - 1].items = []  # its items are kept by id: hold each page once
        listing.items.update(pages[number].items)
    return listing
