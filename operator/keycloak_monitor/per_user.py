"""Opt-in per-user series: last logins from LOGIN events, and a cached user directory.

Usernames and e-mails are personal data: they are only read when `perUser.enabled`, the
e-mail only with `includeEmail`, and every per-user series is capped at `perUser.limit`.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .admin_client import AdminClient
from .errors import CollectionError, Reason
from .events_api import USER_EVENTS
from .snapshot import UserValue
from .tasks import all_of

USER_CACHE_SECONDS = 600.0


@dataclass(frozen=True)
class UserInfo:
    username: str
    email: str | None


class UserDirectory:
    """`/users/{id}` look-ups, cached so a steady realm costs no request per collection."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._cache: dict[str, tuple[float, UserInfo | None]] = {}

    async def lookup(self, api: AdminClient, user_id: str) -> UserInfo | None:
        now = time.monotonic()
        hit = self._cache.get(user_id)
        if hit and now - hit[0] < USER_CACHE_SECONDS:
            return hit[1]
        try:
            body = await api.get("/users/{id}", id=user_id)
            info = UserInfo(str(body.get("username") or ""), body.get("email")) if isinstance(body, dict) else None
        except CollectionError as exc:
            if exc.reason is not Reason.NOT_FOUND:
                raise
            info = None  # deleted user: the series goes, the collection goes on
        if len(self._cache) >= self._max:
            self._cache.pop(next(iter(self._cache)))
        self._cache[user_id] = (now, info)
        return info


class LastLogins:
    """Latest LOGIN per user, seeded from history on the first collection."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._latest: dict[str, tuple[int, str]] = {}  # user id -> (epoch ms, username)
        self.seeded = False

    async def seed(self, api: AdminClient) -> None:
        body = await api.get(USER_EVENTS, {"type": "LOGIN", "first": 0, "max": self.limit})
        if not isinstance(body, list):
            raise CollectionError(Reason.INVALID_RESPONSE, f"{USER_EVENTS} did not answer a list")
        self.record(body)
        self.seeded = True

    def record(self, events: list[Mapping[str, Any]]) -> None:
        for event in events:
            if event.get("type") != "LOGIN" or not event.get("userId"):
                continue
            user_id, at = str(event["userId"]), int(event.get("time") or 0)
            details = event.get("details") or {}
            username = str(details.get("username") or "") if isinstance(details, Mapping) else ""
            if user_id not in self._latest or self._latest[user_id][0] < at:
                self._latest[user_id] = (at, username)
        if len(self._latest) > self.limit:
            keep = sorted(self._latest.items(), key=lambda kv: -kv[1][0])[: self.limit]
            self._latest = dict(keep)

    async def values(self, api: AdminClient, directory: UserDirectory, include_email: bool) -> tuple[UserValue, ...]:
        latest = sorted(self._latest.items(), key=lambda kv: -kv[1][0])
        # Look-ups only where the event lacks what we show; the client bounds concurrency.
        needed = [user_id for user_id, (_, username) in latest if include_email or not username]
        found = dict(zip(needed, await all_of(directory.lookup(api, u) for u in needed), strict=True))
        result = []
        for user_id, (at, username) in latest:
            email = None
            if user_id in found:
                info = found[user_id]
                if info is None:
                    continue  # deleted since its last login
                username, email = username or info.username, info.email
            result.append(UserValue(user_id, username, at / 1000.0, email if include_email else None))
        return tuple(result)
