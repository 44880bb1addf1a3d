"""One collection of one realm: the calls the enabled metrics need, into a RealmSnapshot.

Sessions and events are read side by side. Event reading has bounds of its own (a number
of pages and a deadline), so a backlog of events never holds the session metrics back: it
is caught up over the following cycles.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from .admin_client import AdminClient
from .config import MonitorSpec
from .errors import CollectionError, Reason
from .events import EventLedger, EventLimits, Persist
from .events_api import event_id
from .per_user import LastLogins, UserDirectory
from .sessions import SessionSummary, client_sessions, list_online_sessions, summarize
from .snapshot import ClientSessions, RealmSnapshot
from .tasks import all_of

log = logging.getLogger(__name__)

# Told (kind, [(event id, event)]) of the events counted for the first time.
EventHook = Callable[[str, list[tuple[str, Mapping[str, Any]]]], Awaitable[None]]


class RealmState:
    """What a monitor remembers between collections: event counts, caches."""

    def __init__(
        self,
        spec: MonitorSpec,
        api: AdminClient,
        *,
        owner: str = "",
        stored_events: Any = None,
        persist: Persist | None = None,
        event_limits: EventLimits | None = None,
    ) -> None:
        self.events = EventLedger(spec, api, owner=owner, stored=stored_events, persist=persist, limits=event_limits)
        per_user = spec.per_user
        self.last_logins = LastLogins(per_user.limit) if per_user.enabled and spec.user_events else None
        self.directory = UserDirectory(max_entries=2 * per_user.limit)
        # Told about every event counted for the first time, polled or pushed (notifications).
        self.on_events: EventHook | None = None


def event_deadline(spec: MonitorSpec, started: float) -> float:
    """When event reading starts no new page: half-way through the collection's budget
    (`timeout`), so a catch-up leaves room for the page in flight."""
    return started + 0.5 * spec.timeout


SESSION_LISTING = "session_listing"  # the part of a collection that sessions.details adds


def listing_deadline(spec: MonitorSpec, started: float) -> float:
    """When the session listing is given up: at 80 % of the collection's budget, so a slow
    listing fails alone and the cheap counters, read first, still arrive."""
    return started + 0.8 * spec.timeout


async def _sessions(
    api: AdminClient,
    spec: MonitorSpec,
    clients: "asyncio.Future[Collection[str]]",
    now: float | None,
    started: float,
) -> tuple[tuple[ClientSessions, ...], int, SessionSummary | None, dict[str, str | None]]:
    (stats, counts), users = await all_of((client_sessions(api), api.get("/users/count")))
    clients.set_result(frozenset(c.client_id for c in counts))
    if isinstance(users, bool) or not isinstance(users, int):
        raise CollectionError(Reason.INVALID_RESPONSE, f"/users/count answered {type(users).__name__}")
    if not spec.session_details:
        return counts, users, None, {}
    try:
        async with asyncio.timeout(max(0.0, listing_deadline(spec, started) - time.monotonic())):
            sessions = await list_online_sessions(api, stats)
    except TimeoutError:
        log.warning("realm %s: the session listing took longer than its budget", spec.realm)
        return counts, users, None, {SESSION_LISTING: Reason.TIMEOUT.value}
    except CollectionError as exc:
        if exc.reason in (Reason.AUTH, Reason.FORBIDDEN):  # the account, not the listing: fail the whole
            raise
        log.warning("realm %s: the session listing failed: %s", spec.realm, exc)
        return counts, users, None, {SESSION_LISTING: exc.reason.value}
    summary = summarize(sessions, time.time() if now is None else now, spec.per_user.limit)
    return counts, users, summary, {SESSION_LISTING: None}


async def collect_realm(
    api: AdminClient, spec: MonitorSpec, state: RealmState, now: float | None = None
) -> RealmSnapshot:
    clients: asyncio.Future[Collection[str]] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    (counts, users, summary, parts), fresh = await all_of(
        (_sessions(api, spec, clients, now, started), state.events.pump(clients, event_deadline(spec, started)))
    )
    if state.on_events is not None:
        for kind, events in fresh.items():
            if events:
                await state.on_events(kind, [(event_id(e), e) for e in events])
    user_fresh = fresh.get("user", [])

    last_logins = None
    if state.last_logins is not None:
        if not state.last_logins.seeded:
            await state.last_logins.seed(api)
        state.last_logins.record(list(user_fresh))
        last_logins = await state.last_logins.values(api, state.directory, spec.per_user.include_email)

    wall = time.time()
    return RealmSnapshot(
        clients=counts,
        user_sessions=summary.user_sessions if summary else None,
        connected_users=summary.connected_users if summary else None,
        session_ages=summary.ages if summary else None,
        session_listing_discrepancy=summary.discrepancy if summary else None,
        users=users,
        offline_enabled=spec.offline_sessions,
        user_events=state.events.counts("user", wall),
        admin_events=state.events.counts("admin", wall),
        session_durations=summary.longest_per_user if summary and spec.per_user.enabled else None,
        last_logins=last_logins,
        include_email=spec.per_user.include_email,
        warnings=state.events.warnings(wall),
        parts=parts,
    )
