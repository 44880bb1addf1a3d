"""One collection of one realm: the calls the enabled metrics need, into a RealmSnapshot."""

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .admin_client import AdminClient
from .config import MonitorSpec
from .errors import CollectionError, Reason
from .events import ADMIN_EVENTS, USER_EVENTS, EventCursor, EventStream, event_id
from .per_user import LastLogins, UserDirectory
from .sessions import client_sessions, list_online_sessions, summarize
from .snapshot import RealmSnapshot
from .tasks import all_of

REALM_CHECK_SECONDS = 600.0  # how often to re-read whether the realm saves events
# Told (kind, [(event id, event)]) of the events counted for the first time.
EventHook = Callable[[str, list[tuple[str, Mapping[str, Any]]]], Awaitable[None]]


class RealmState:
    """What a monitor remembers between collections: event cursors, counters, caches."""

    def __init__(self, spec: MonitorSpec, cursors: Mapping[str, Any] | None = None) -> None:
        cursors = cursors or {}
        self.user_events = (
            EventStream(USER_EVENTS, EventCursor.from_status(cursors.get("user"))) if spec.user_events else None
        )
        self.admin_events = (
            EventStream(ADMIN_EVENTS, EventCursor.from_status(cursors.get("admin"))) if spec.admin_events else None
        )
        per_user = spec.per_user
        self.last_logins = LastLogins(per_user.limit) if per_user.enabled and spec.user_events else None
        self.directory = UserDirectory(max_entries=2 * per_user.limit)
        self._warnings: tuple[str, ...] = ()
        # Told about every event counted for the first time, polled or pushed (notifications).
        self.on_events: EventHook | None = None
        self._realm_checked_at: float | None = None

    def cursors(self) -> dict[str, Any]:
        """The event cursors as status data, to survive an operator restart."""
        result = {}
        for name, stream in (("user", self.user_events), ("admin", self.admin_events)):
            if stream and stream.cursor:
                result[name] = stream.cursor.to_status()
        return result

    async def event_warnings(self, api: AdminClient, spec: MonitorSpec) -> tuple[str, ...]:
        """Say when the realm does not save the events we are asked to count."""
        if not (spec.user_events or spec.admin_events):
            return ()
        now = time.monotonic()
        if self._realm_checked_at is not None and now - self._realm_checked_at < REALM_CHECK_SECONDS:
            return self._warnings
        # events/config, not the realm: without view-realm the realm answers a few fields only.
        realm = await api.get("/events/config")
        if not isinstance(realm, dict):
            raise CollectionError(Reason.INVALID_RESPONSE, "/events/config is not an object")
        warnings = []
        if spec.user_events and not realm.get("eventsEnabled"):
            warnings.append(f"realm '{spec.realm}' does not save user events (Realm settings > Events)")
        if spec.admin_events and not realm.get("adminEventsEnabled"):
            warnings.append(f"realm '{spec.realm}' does not save admin events (Realm settings > Events)")
        self._warnings, self._realm_checked_at = tuple(warnings), now
        return self._warnings


async def _poll(stream: EventStream | None, api: AdminClient, spec: MonitorSpec) -> list[Mapping[str, Any]]:
    # With events.source push, events only arrive through the push receiver.
    return await stream.poll(api) if stream and spec.events_source != "push" else []


async def collect_realm(
    api: AdminClient, spec: MonitorSpec, state: RealmState, now: float | None = None
) -> RealmSnapshot:
    (stats, clients), users, user_fresh, admin_fresh, warnings = await all_of(
        (
            client_sessions(api),
            api.get("/users/count"),
            _poll(state.user_events, api, spec),
            _poll(state.admin_events, api, spec),
            state.event_warnings(api, spec),
        )
    )
    if isinstance(users, bool) or not isinstance(users, int):
        raise CollectionError(Reason.INVALID_RESPONSE, f"/users/count answered {type(users).__name__}")
    if state.on_events is not None:
        for kind, fresh in (("user", user_fresh), ("admin", admin_fresh)):
            if fresh:
                await state.on_events(kind, [(event_id(e), e) for e in fresh])
    sessions = await list_online_sessions(api, stats)
    summary = summarize(sessions, time.time() if now is None else now, spec.per_user.limit)

    last_logins = None
    if state.last_logins is not None:
        if not state.last_logins.seeded:
            await state.last_logins.seed(api)
        state.last_logins.record(list(user_fresh))
        last_logins = await state.last_logins.values(api, state.directory, spec.per_user.include_email)

    return RealmSnapshot(
        clients=clients,
        user_sessions=summary.user_sessions,
        connected_users=summary.connected_users,
        session_ages=summary.ages,
        users=users,
        offline_enabled=spec.offline_sessions,
        user_events=dict(state.user_events.counts) if state.user_events else None,
        admin_events=dict(state.admin_events.counts) if state.admin_events else None,
        session_durations=summary.longest_per_user if spec.per_user.enabled else None,
        last_logins=last_logins,
        include_email=spec.per_user.include_email,
        warnings=warnings,
    )
