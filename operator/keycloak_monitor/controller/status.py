"""A monitor's status and its Ready transitions, as pure functions of the last outcome.

Status is written only when it changes: a steady monitor makes no write per collection.
The one field that moves every cycle, lastSuccessfulCollection, is refreshed only along
with another change or once per heartbeat; the exact time is in the metrics
(keycloak_monitor_last_success_timestamp_seconds). On a live realm the numbers (sessions,
users, connectedUsers and the Ready message that repeats them) move every cycle too: alone,
they are written at most once per heartbeat, so 500 monitors do not patch their status every
interval; the exact values are in the metrics. Transitions are written at once.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import CollectionError, Reason
from ..snapshot import RealmSnapshot

READY = "Ready"
EVENTS_RECORDED = "EventsRecorded"
NOTIFICATIONS_DELIVERED = "NotificationsDelivered"
HEARTBEAT = timedelta(minutes=5)

CONDITION_REASON = {
    Reason.AUTH: "AuthFailed",
    Reason.FORBIDDEN: "Forbidden",
    Reason.NOT_FOUND: "RealmNotFound",
    Reason.TIMEOUT: "Timeout",
    Reason.CONNECT: "Unreachable",
    Reason.SERVER_ERROR: "ServerError",
    Reason.INVALID_RESPONSE: "InvalidResponse",
    Reason.CONFIG: "InvalidConfig",
    Reason.KUBERNETES: "KubernetesUnavailable",
    Reason.INTERNAL: "InternalError",
}


@dataclass(frozen=True)
class Report:
    """What one cycle found, in the words of a status."""

    generation: int | None
    snapshot: RealmSnapshot | None = None
    error: CollectionError | None = None
    notifications_failing: Mapping[str, str] | None = None  # None: no notifications; target -> last error

    @property
    def reason(self) -> str:
        if self.error is None:
            return "Collected"
        return self.error.condition or CONDITION_REASON[self.error.reason]

    @property
    def message(self) -> str:
        if self.error is not None:
            return self.error.message
        assert self.snapshot is not None
        if self.snapshot.user_sessions is None:  # sessions.details off
            return f"{self.snapshot.users} users"
        return f"{self.snapshot.user_sessions} sessions, {self.snapshot.users} users"


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    previous: Mapping[str, Any] | None, kind: str, ok: bool, reason: str, message: str, generation: int | None
) -> dict[str, Any]:
    status = "True" if ok else "False"
    unchanged = previous is not None and previous.get("status") == status
    condition = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged and previous else None,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def _find(conditions: Any, kind: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


NUMBERS = ("sessions", "users", "connectedUsers")


def desired_status(previous: Mapping[str, Any], report: Report, now: datetime) -> dict[str, Any]:
    """The full status we own, reusing previous values where nothing moved. New numbers
    alone make no write before the heartbeat; any other change carries them along."""
    fresh = _desired(previous, report, now, hold=False)
    if _holdable(previous, report) and not _due(previous.get("lastSuccessfulCollection"), now):
        held = _desired(previous, report, now, hold=True)
        if not changes(previous, held):
            return held
    return fresh


def _holdable(previous: Mapping[str, Any], report: Report) -> bool:
    """Only a successful cycle after a successful one, whose numbers were written, may keep them."""
    ready = _find(previous.get("conditions"), READY)
    return (
        report.error is None
        and ready is not None
        and (ready.get("status"), ready.get("reason")) == ("True", report.reason)
        and all(key in previous for key in NUMBERS)
    )


def _desired(previous: Mapping[str, Any], report: Report, now: datetime, hold: bool) -> dict[str, Any]:
    old = previous.get("conditions")
    snap = report.snapshot
    ready_before = _find(old, READY)
    ready_message = ready_before["message"] if hold and ready_before is not None else report.message
    conditions = [
        _condition(_find(old, READY), READY, report.error is None, report.reason, ready_message, report.generation)
    ]
    if snap is not None and (snap.user_events is not None or snap.admin_events is not None):
        # The first warning is the worst; its reason names the condition's state.
        warnings = snap.warnings
        conditions.append(
            _condition(
                _find(old, EVENTS_RECORDED),
                EVENTS_RECORDED,
                not warnings,
                warnings[0].reason if warnings else "EventsEnabled",
                "; ".join(w.message for w in warnings) or "the realm saves the events this monitor counts",
                report.generation,
            )
        )
    elif (kept := _find(old, EVENTS_RECORDED)) is not None:
        conditions.append(dict(kept))
    failing = report.notifications_failing
    if failing is not None:
        message = "; ".join(f"{target}: {error}" for target, error in sorted(failing.items()))
        conditions.append(
            _condition(
                _find(old, NOTIFICATIONS_DELIVERED),
                NOTIFICATIONS_DELIVERED,
                not failing,
                "TargetFailing" if failing else "Delivered",
                message or "every notification target takes its notifications",
                report.generation,
            )
        )
    stamp = _timestamp(now)
    for condition in conditions:
        condition["lastTransitionTime"] = condition["lastTransitionTime"] or stamp

    status: dict[str, Any] = {"conditions": conditions}
    if report.generation is not None:
        status["observedGeneration"] = report.generation
    if snap is not None and hold:
        status.update({key: previous[key] for key in NUMBERS})
    elif snap is not None:
        status.update(sessions=snap.user_sessions, users=snap.users, connectedUsers=snap.connected_users)
    last = previous.get("lastSuccessfulCollection")
    if last:
        status["lastSuccessfulCollection"] = last
    if report.error is None and _stale_or_changed(previous, status, last, now):
        status["lastSuccessfulCollection"] = stamp
    return status


def _stale_or_changed(previous: Mapping[str, Any], status: Mapping[str, Any], last: Any, now: datetime) -> bool:
    return bool(changes(previous, status)) or _due(last, now)


def _due(last: Any, now: datetime) -> bool:
    """True when the heartbeat is due: never written, unreadable, or HEARTBEAT old."""
    if not last:
        return True
    try:
        then = datetime.strptime(str(last), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return True
    return now - then >= HEARTBEAT


def changes(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `desired` that differ from `previous`: the merge patch to send."""
    return {key: value for key, value in desired.items() if previous.get(key) != value}


def ready_transition(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(event type, reason, message) when Ready changed status or reason, else None."""
    before, after = _find(previous.get("conditions"), READY), _find(desired.get("conditions"), READY)
    if after is None:
        return None
    if before is not None and (before.get("status"), before.get("reason")) == (after["status"], after["reason"]):
        return None
    return ("Normal" if after["status"] == "True" else "Warning", after["reason"], after["message"])
