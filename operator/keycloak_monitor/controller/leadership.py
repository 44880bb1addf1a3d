"""Which of the replicas sharing a kopf peering collects, and why one that comes back waits.

kopf pauses every replica that sees a live peer of higher priority. A replica starts below
every collecting one (the older standby first, so a rollout's new pod waits), and raises
its priority above all others once it collects. A replica frozen past the peering lifetime
(SIGSTOP, a stalled node) that comes back then finds a newer leader and waits, instead of
taking the lead back and counting again, on its own series, the events its successor
counted meanwhile (Prometheus adds the series of both).
"""

import asyncio
import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime

import kopf

from ..errors import CollectionError
from .kube import Kube

log = logging.getLogger(__name__)

# A dead active replica is presumed gone this long after its last keep-alive, so the
# standby takes over within it (kopf's default is 60 s).
PEERING_LIFETIME = 20


def _stamp(now: float | None, tiebreak: int | None) -> int:
    """The millisecond, with a random tie-break for replicas doing the same at once."""
    millis = int((time.time() if now is None else now) * 1000)
    return millis * 1000 + (secrets.randbelow(1000) if tiebreak is None else tiebreak)


def standby_priority(now: float | None = None, tiebreak: int | None = None) -> int:
    """Negative, below every leader's: among standbys the older wins (kopf pauses the lower
    priority, and both of two equal ones)."""
    return -_stamp(now, tiebreak)


def leader_priority(now: float | None = None, tiebreak: int | None = None) -> int:
    """Positive, above every standby's and every earlier leader's: the newest takeover wins."""
    return _stamp(now, tiebreak)


class Leadership:
    """Raises this replica's peering priority when it starts collecting, once per takeover."""

    def __init__(self, kube: Kube, peering: str, namespaces: list[str]) -> None:
        self.kube, self.peering, self.namespaces = kube, peering, namespaces
        # kopf's own identity scheme (POD_ID in a pod), so our keep-alive is kopf's entry.
        self.identity = os.environ.get("POD_ID") or f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
        self.settings: kopf.OperatorSettings | None = None  # kopf's, set by the startup handler
        self._leading = False
        self._lock = asyncio.Lock()

    async def claim(self) -> None:
        """A monitor starts collecting here: this replica leads. The peers learn it at once
        rather than at kopf's next keep-alive (up to 15 s later)."""
        async with self._lock:
            if self._leading or self.settings is None:
                return
            self._leading = True
            priority = self.settings.peering.priority = leader_priority()
            entry = {"priority": priority, "lifetime": PEERING_LIFETIME, "lastseen": datetime.now(UTC).isoformat()}
            try:
                await self.kube.touch_peering(self.peering, self.namespaces, self.identity, entry)
            except CollectionError as exc:  # kopf's keep-alive carries the priority soon anyway
                log.warning("peering %s: the new lead not announced yet: %s", self.peering, exc)
            log.info("peering %s: collecting here (priority %d)", self.peering, priority)

    def released(self, reason: kopf.DaemonStoppingReason | None) -> None:
        """A monitor stopped here; a pause (a peer leads) makes the next resume a takeover."""
        if reason is not None and kopf.DaemonStoppingReason.OPERATOR_PAUSING in reason:
            self._leading = False
