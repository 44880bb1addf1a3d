"""A failed collection leaves no task behind: the failure is raised as itself, and every
sibling request has been cancelled and awaited before the caller sees it."""

import asyncio

import pytest

from keycloak_monitor.errors import CollectionError, Reason
from keycloak_monitor.tasks import all_of


async def test_results_keep_their_order() -> None:
    async def after(delay: float, value: int) -> int:
        await asyncio.sleep(delay)
        return value

    assert await all_of([after(0.02, 1), after(0.0, 2), after(0.01, 3)]) == [1, 2, 3]


async def test_a_failure_cancels_the_siblings_before_it_is_raised() -> None:
    sibling_finished = asyncio.Event()
    sibling_cancelled = asyncio.Event()

    async def slow_poll() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise
        sibling_finished.set()

    async def forbidden() -> None:
        await asyncio.sleep(0.01)
        raise CollectionError(Reason.FORBIDDEN, "missing view-users")

    before = asyncio.all_tasks()
    with pytest.raises(CollectionError) as raised:
        await all_of([slow_poll(), forbidden()])
    assert raised.value.reason is Reason.FORBIDDEN
    assert sibling_cancelled.is_set() and not sibling_finished.is_set()
    assert asyncio.all_tasks() == before  # nothing left running
