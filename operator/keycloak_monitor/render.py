"""A monitor's health and latest snapshot, as exposition fragments."""

from . import catalogue as c
from .event_labels import ADMIN_LABELS, USER_LABELS
from .exposition import MonitorSeries, SeriesWriter
from .health import DURATION_BUCKETS, Health
from .snapshot import EventCounts, RealmSnapshot


def _health(out: SeriesWriter, health: Health) -> None:
    out.sample(c.UP, 1.0 if health.up else 0.0)
    if health.last_success is not None:
        out.sample(c.LAST_SUCCESS, health.last_success)
    for bound, count in zip(DURATION_BUCKETS, health.buckets, strict=True):
        out.sample(c.DURATION, count, [("le", _bound(bound))], "_bucket")
    out.sample(c.DURATION, health.duration_count, [("le", "+Inf")], "_bucket")
    out.sample(c.DURATION, health.duration_sum, suffix="_sum")
    out.sample(c.DURATION, health.duration_count, suffix="_count")
    for reason, count in sorted(health.errors.items()):
        out.sample(c.ERRORS, count, [("reason", reason)])
    for (endpoint, code), count in sorted(health.api_requests.items()):
        out.sample(c.API_REQUESTS, count, [("endpoint", endpoint), ("code", code)])
    for result, count in sorted(health.push_requests.items()):
        out.sample(c.PUSH_REQUESTS, count, [("result", result)])
    for (channel, result), count in sorted(health.notifications.items()):
        out.sample(c.NOTIFICATIONS, count, [("channel", channel), ("result", result)])


def _bound(value: float) -> str:
    return f"{value:.1f}" if float(value).is_integer() else repr(float(value))


def _realm(out: SeriesWriter, snap: RealmSnapshot) -> None:
    for part, failure in sorted(snap.parts.items()):
        out.sample(c.PART_UP, 0.0 if failure else 1.0, [("part", part)])
    for client in snap.clients:
        out.sample(c.ACTIVE_SESSIONS, client.active, [("client_id", client.client_id)])
        if snap.offline_enabled:
            out.sample(c.OFFLINE_SESSIONS, client.offline, [("client_id", client.client_id)])
    if snap.user_sessions is not None:
        out.sample(c.USER_SESSIONS, snap.user_sessions)
    if snap.connected_users is not None:
        out.sample(c.CONNECTED_USERS, snap.connected_users)
    if snap.session_listing_discrepancy is not None:
        out.sample(c.SESSION_LISTING_DISCREPANCY, snap.session_listing_discrepancy)
    if (ages := snap.session_ages) is not None:
        for bound, count in zip(ages.bounds, ages.cumulative, strict=False):
            out.sample(c.SESSION_AGE, count, [("le", _bound(bound))], "_bucket")
        out.sample(c.SESSION_AGE, ages.count, [("le", "+Inf")], "_bucket")
        out.sample(c.SESSION_AGE, ages.count, suffix="_gcount", openmetrics_only=True)
        out.sample(c.SESSION_AGE, ages.total, suffix="_gsum", openmetrics_only=True)
    out.sample(c.USERS, snap.users)
    _events(out, c.USER_EVENTS, "user", USER_LABELS, snap.user_events)
    _events(out, c.ADMIN_EVENTS, "admin", ADMIN_LABELS, snap.admin_events)
    for user in snap.session_durations or ():
        out.sample(c.SESSION_DURATION, user.value, [("user_id", user.user_id), ("username", user.username)])
    for user in snap.last_logins or ():
        labels = [("user_id", user.user_id), ("username", user.username)]
        if snap.include_email:
            labels.append(("email", user.email or ""))
        out.sample(c.LAST_LOGIN, user.value, labels)


def _events(
    out: SeriesWriter, family: c.Family, stream: str, names: tuple[str, ...], counts: EventCounts | None
) -> None:
    """A stream's counters, each followed by its OpenMetrics _created (when counting began),
    and the stream's own health."""
    if counts is None:
        return
    values = {**dict.fromkeys(counts.zero, 0), **counts.totals}
    for key, count in sorted(values.items()):
        labels = list(zip(names, key, strict=True))
        out.sample(family, count, labels)
        out.sample(family, counts.created, labels, "_created", openmetrics_only=True)
    kind = [("stream", stream)]
    out.sample(c.EVENT_LAG, counts.lag, kind)
    out.sample(c.EVENTS_FOLDED, counts.folded, kind)
    out.sample(c.EVENTS_FOLDED, counts.created, kind, "_created", openmetrics_only=True)
    out.sample(c.EVENTS_EXPIRED, 1.0 if counts.expired else 0.0, kind)


def render_monitor(labels: str, health: Health, snapshot: RealmSnapshot | None) -> MonitorSeries:
    """Health series always; realm series only with a snapshot (never a false zero)."""
    out = SeriesWriter(labels)
    _health(out, health)
    if snapshot is not None:
        _realm(out, snapshot)
    return out.series()
