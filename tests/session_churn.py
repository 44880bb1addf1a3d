"""Sessions logged in, out and refreshed in background threads on the real Keycloak, with
the truth of when each began and ended: what a listing made meanwhile must hold (tests
and bench/session_listing.py)."""

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.realms import PASSWORD
from tests.testbed.keycloak import KeycloakAdmin


@dataclass
class SessionTruth:
    """When each session began and ended, as the churning threads saw it (monotonic clock:
    when asked, when answered)."""

    began: dict[str, tuple[float, float]] = field(default_factory=dict)
    ended: dict[str, tuple[float, float]] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # session id -> username
    tokens: dict[str, str] = field(default_factory=dict)  # refresh token of each live session
    lock: threading.Lock = field(default_factory=threading.Lock)

    def began_with(self, token: dict[str, Any], username: str, asked: float) -> None:
        with self.lock:
            session = token["session_state"]
            self.began[session] = (asked, time.monotonic())
            self.users[session], self.tokens[session] = username, token["refresh_token"]

    def stable(self, start: float, end: float) -> set[str]:
        """Sessions alive from before `start` until after `end`: a listing between must hold them."""
        with self.lock:
            return {
                s
                for s, (_, answered) in self.began.items()
                if answered < start and (s not in self.ended or self.ended[s][0] > end)
            }

    def possible(self, start: float, end: float) -> set[str]:
        """Sessions alive at some moment between `start` and `end`: a listing may hold no other."""
        with self.lock:
            return {
                s
                for s, (asked, _) in self.began.items()
                if asked < end and (s not in self.ended or self.ended[s][1] > start)
            }


def login_all(admin: KeycloakAdmin, realm: str, usernames: list[str], truth: SessionTruth) -> None:
    asked = time.monotonic()
    for username, token in zip(
        usernames, admin.login_many(realm, "web", [(u, PASSWORD) for u in usernames], 16), strict=True
    ):
        truth.began_with(token, username, asked)


def _churn(
    admin: KeycloakAdmin, realm: str, users: list[str], truth: SessionTruth, stop: threading.Event, seed: int
) -> None:
    """Logins, logouts and refreshes in equal shares: the number of sessions stays level."""
    rng = random.Random(seed)
    while not stop.is_set():
        action, asked = rng.choice(("login", "logout", "refresh")), time.monotonic()
        if action == "login":
            username = rng.choice(users)
            truth.began_with(admin.login(realm, "web", username, PASSWORD), username, asked)
            continue
        with truth.lock:
            if not truth.tokens:
                continue
            session = rng.choice(list(truth.tokens))
            token = truth.tokens.pop(session) if action == "logout" else truth.tokens[session]
        if action == "logout":
            admin.logout(realm, "web", token)
            with truth.lock:
                truth.ended[session] = (asked, time.monotonic())
        elif (renewed := admin.refresh(realm, "web", token)) is not None:
            with truth.lock:
                if session in truth.tokens:
                    truth.tokens[session] = renewed["refresh_token"]


@contextmanager
def churning(
    admin: KeycloakAdmin, realm: str, users: list[str], truth: SessionTruth, threads: int = 4
) -> Iterator[None]:
    """Background threads churn the realm's sessions of client "web" while the block runs."""
    stop = threading.Event()
    workers = [
        threading.Thread(target=_churn, args=(admin, realm, users, truth, stop, n), daemon=True) for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join()
