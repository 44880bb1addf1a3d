"""Structured concurrency for a collection: every task ends before the caller goes on.

`asyncio.gather` leaves the other awaitables running when one fails; a poll left running
would move an event cursor after its collection was already reported failed, and the next
collection would count the same events again. A TaskGroup cancels and awaits them all.
"""

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def all_of(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await concurrently, results in order. On the first failure the others are cancelled
    and awaited, and that failure is raised as itself (not as an ExceptionGroup), so callers
    keep catching CollectionError."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_wrap(a)) for a in awaitables]
    except BaseExceptionGroup as failure:
        raise _first_leaf(failure) from None
    return [task.result() for task in tasks]


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable
