"""Online sessions of a realm: cheap per-client counters first, then a paged listing."""

import asyncio
import sys
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Any

from .admin_client import AdminClient
from .anchored_pages import Listing, list_anchored
from .errors import CollectionError, Reason
from .snapshot import AgeHistogram, ClientSessions, UserValue
from .tasks import all_of

SESSION_PAGE_SIZE = 1000
# Each session page starts this many sessions before its boundary (5 % more to read): sessions
# ended between two page reads shift the next page back by as many, and a shift within the
# overlap is seen and costs nothing more.
SESSION_PAGE_OVERLAP = 50
CLIENT_PAGE_SIZE = 500
# Places out of order that a page listed by last refresh may show, per place (one in ten):
# by id, the times of a page of any size are out of order in about every other place.
REFRESH_ORDER_SLACK = 10
# Reads of one session page that fails inside Keycloak, with a growing pause between them.
PAGE_ATTEMPTS = 3
PAGE_RETRY_PAUSE = 0.1


@dataclass(frozen=True)
class SessionStat:
    uuid: str
    client_id: str
    active: int
    offline: int


def _count(value: Any, what: str) -> int:
    # client-session-stats answers counts as strings ("3").
    try:
        count = int(value or 0)
    except (TypeError, ValueError):
        raise CollectionError(Reason.INVALID_RESPONSE, f"client-session-stats: bad {what} {value!r}") from None
    if count < 0:
        raise CollectionError(Reason.INVALID_RESPONSE, f"client-session-stats: negative {what}")
    return count


def parse_session_stats(body: Any) -> list[SessionStat]:
    if not isinstance(body, list):
        raise CollectionError(Reason.INVALID_RESPONSE, "client-session-stats did not answer a list")
    stats = []
    for entry in body:
        if not isinstance(entry, dict) or not entry.get("id"):
            raise CollectionError(Reason.INVALID_RESPONSE, "client-session-stats: entry without id")
        stats.append(
            SessionStat(
                uuid=str(entry["id"]),
                client_id=str(entry.get("clientId") or entry["id"]),
                active=_count(entry.get("active"), "active"),
                offline=_count(entry.get("offline"), "offline"),
            )
        )
    return stats


async def client_sessions(api: AdminClient) -> tuple[list[SessionStat], tuple[ClientSessions, ...]]:
    """Counts for every client of the realm: stats list only clients with sessions, and a
    client whose last session ended must read 0 rather than vanish."""
    stats_body, clients = await all_of((api.get("/client-session-stats"), api.get_pages("/clients", CLIENT_PAGE_SIZE)))
    stats = parse_session_stats(stats_body)
    by_uuid = {stat.uuid: stat for stat in stats}
    counts = {}
    for client in clients:
        if not isinstance(client, dict) or "clientId" not in client:
            raise CollectionError(Reason.INVALID_RESPONSE, "/clients: entry without clientId")
        stat = by_uuid.get(str(client.get("id")))
        counts[client["clientId"]] = (stat.active, stat.offline) if stat else (0, 0)
    for stat in stats:  # a client created between the two calls
        counts.setdefault(stat.client_id, (stat.active, stat.offline))
    result = tuple(ClientSessions(cid, a, o) for cid, (a, o) in sorted(counts.items()))
    return stats, result


@dataclass(frozen=True, slots=True)
class OnlineSession:
    """What the summary needs of one listed session: the listing's bodies are not kept."""

    user_id: str
    username: str
    start: Any  # epoch milliseconds as Keycloak answers it; checked in _age


def _online(session: Any) -> tuple[str, OnlineSession]:
    if not isinstance(session, dict) or "id" not in session or "userId" not in session:
        raise CollectionError(Reason.INVALID_RESPONSE, "user-sessions: entry without id/userId")
    # Interned: a user's sessions share one copy of the user's id and name, so the listing
    # grows with users more than with sessions.
    user_id, username = sys.intern(str(session["userId"])), sys.intern(str(session.get("username") or ""))
    return str(session["id"]), OnlineSession(user_id, username, session.get("start"))


def _refresh_order(body: list[Any]) -> list[Any] | None:
    """Volatile sessions (Keycloak before 25, or persistent sessions turned off) are listed
    by last refresh, and a refresh moves a session to the end; persistent ones by id, a
    fixed order. A page whose refresh times are in order, but for one place in ten at most,
    is taken for the former, and gets the sort keys of its places: Keycloak sorts, then
    writes each session out, and one refreshed in between shows a later time than its
    place (its key is then the least time after it)."""
    try:
        times = [session["lastAccess"] for session in body]
        out_of_order = sum(a > b for a, b in pairwise(times))
    except (KeyError, TypeError):
        return None  # no usable times: anchored by id alone
    if out_of_order > len(times) // REFRESH_ORDER_SLACK:
        return None
    keys = list(accumulate(reversed(times), min))
    keys.reverse()
    return keys


@dataclass(frozen=True)
class OnlineSessions:
    sessions: dict[str, OnlineSession]  # by session id
    # How many sessions the listing may be off by: per client, how far its listed sessions
    # fall outside the range of its counter read before and after the listing.
    discrepancy: int


async def _page(api: AdminClient, client: str, first: int, size: int) -> Any:
    """One page of a client's sessions, asked again after a failure inside Keycloak: a
    listing is many requests, and Keycloak before 26 sorts its live sessions for each one,
    which fails now and then while they are refreshed (measured on 25.0.6 under churn:
    "Comparison method violates its general contract", answered 400 unknown_error)."""
    for attempt in range(1, PAGE_ATTEMPTS + 1):
        try:
            return await api.get("/clients/{id}/user-sessions", {"first": first, "max": size}, id=client)
        except CollectionError as exc:
            if exc.reason is not Reason.SERVER_ERROR or attempt == PAGE_ATTEMPTS:
                raise
            await asyncio.sleep(PAGE_RETRY_PAUSE * attempt)
    raise AssertionError("unreachable")


def _off_by(listed: int, before: int, after: int) -> int:
    return max(0, min(before, after) - listed, listed - max(before, after))


async def list_online_sessions(
    api: AdminClient, stats: list[SessionStat], page_size: int = SESSION_PAGE_SIZE, overlap: int = SESSION_PAGE_OVERLAP
) -> OnlineSessions:
    """Every online session once, by id (one session spans several clients), each client's
    listing checked against its counter: sessions created or ended during the listing make
    any count between the two readings right; outside it, some were missed or are stale."""

    async def of_client(stat: SessionStat) -> Listing[OnlineSession]:
        async def fetch(first: int, size: int) -> tuple[list[tuple[str, OnlineSession]], list[Any] | None]:
            body = await _page(api, stat.uuid, first, size)
            if not isinstance(body, list):
                raise CollectionError(Reason.INVALID_RESPONSE, "/clients/{id}/user-sessions did not answer a list")
            return [_online(session) for session in body], _refresh_order(body)

        try:
            return await list_anchored(fetch, page_size, overlap, expected=stat.active)
        except CollectionError as exc:
            if exc.reason is Reason.NOT_FOUND:
                return Listing({})  # client deleted since the stats were read
            raise

    listed = [stat for stat in stats if stat.active > 0]
    listings = await all_of(of_client(stat) for stat in listed)
    after = {stat.uuid: stat.active for stat in parse_session_stats(await api.get("/client-session-stats"))}
    discrepancy = sum(
        _off_by(len(listing.items), stat.active, after.get(stat.uuid, 0))
        for stat, listing in zip(listed, listings, strict=True)
    )
    sessions = {session_id: session for listing in listings for session_id, session in listing.items.items()}
    return OnlineSessions(sessions, discrepancy)


def _age(session: OnlineSession, now: float) -> float:
    try:
        return max(0.0, now - float(session.start or 0) / 1000.0)
    except (TypeError, ValueError):
        raise CollectionError(Reason.INVALID_RESPONSE, "user-sessions: bad start time") from None


@dataclass(frozen=True)
class SessionSummary:
    user_sessions: int
    connected_users: int
    ages: AgeHistogram
    longest_per_user: tuple[UserValue, ...]
    discrepancy: int


def summarize(online: OnlineSessions, now: float, per_user_limit: int) -> SessionSummary:
    ages = []
    longest: dict[str, UserValue] = {}
    for session in online.sessions.values():
        age = _age(session, now)
        ages.append(age)
        user_id = session.user_id
        if user_id not in longest or longest[user_id].value < age:
            longest[user_id] = UserValue(user_id, session.username, age)
    top = sorted(longest.values(), key=lambda u: (-u.value, u.user_id))[:per_user_limit]
    return SessionSummary(
        user_sessions=len(online.sessions),
        connected_users=len(longest),
        ages=AgeHistogram.of(ages),
        longest_per_user=tuple(top),
        discrepancy=online.discrepancy,
    )
