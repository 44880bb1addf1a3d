"""The metric catalogue: every family this exporter serves, in exposition order.

This is the contract dashboards and alerts are written against (PRODUCT.md); the names
follow Prometheus conventions so `promtool check metrics` has nothing to say.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str  # without the _total suffix of counters, as OpenMetrics names families
    type: str  # gauge, counter, histogram or gaugehistogram
    help: str


UP = Family("keycloak_monitor_up", "gauge", "1 when the monitor's last collection succeeded, 0 otherwise.")
LAST_SUCCESS = Family(
    "keycloak_monitor_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the monitor's last successful collection.",
)
DURATION = Family("keycloak_monitor_collection_duration_seconds", "histogram", "Time one collection of a realm took.")
ERRORS = Family("keycloak_monitor_collection_errors", "counter", "Failed collections by cause (the reason label).")
API_REQUESTS = Family(
    "keycloak_monitor_api_requests",
    "counter",
    "Requests made to Keycloak by route template and HTTP status: the load the monitor puts on it.",
)
ACTIVE_SESSIONS = Family("keycloak_active_sessions", "gauge", "Online sessions per client.")
OFFLINE_SESSIONS = Family("keycloak_offline_sessions", "gauge", "Offline sessions per client.")
USER_SESSIONS = Family(
    "keycloak_user_sessions", "gauge", "Distinct online user sessions in the realm (a session can span clients)."
)
CONNECTED_USERS = Family("keycloak_connected_users", "gauge", "Distinct users with at least one online session.")
SESSION_LISTING_DISCREPANCY = Family(
    "keycloak_monitor_session_listing_discrepancy",
    "gauge",
    "Sessions by which the session listing may be off: per client, how far its listed sessions fall outside "
    "its counter read before and after the listing (0: consistent).",
)
SESSION_AGE = Family("keycloak_session_age_seconds", "gaugehistogram", "Age of the current online sessions.")
USERS = Family("keycloak_users", "gauge", "Users in the realm.")
USER_EVENTS = Family(
    "keycloak_realm_user_events",
    "counter",
    "User events (LOGIN, LOGIN_ERROR, LOGOUT, ...) stored by the realm since the monitor was created; "
    "kept across restarts.",
)
ADMIN_EVENTS = Family(
    "keycloak_realm_admin_events",
    "counter",
    "Admin events stored by the realm since the monitor was created; kept across restarts.",
)
EVENT_LAG = Family(
    "keycloak_monitor_event_lag_seconds",
    "gauge",
    "How far the served event counters are behind the events Keycloak stores (by stream).",
)
EVENTS_FOLDED = Family(
    "keycloak_monitor_events_folded",
    "counter",
    "Events counted in the overflow series because the monitor reached its cap of event series (by stream).",
)
EVENTS_EXPIRED = Family(
    "keycloak_monitor_event_lag_exceeds_expiration",
    "gauge",
    "1 when the event counters are further behind than the realm keeps events: some may expire unread.",
)
SESSION_DURATION = Family(
    "keycloak_session_duration_seconds",
    "gauge",
    "Longest current session per user (opt-in perUser series, capped at perUser.limit).",
)
LAST_LOGIN = Family(
    "keycloak_last_login_timestamp_seconds",
    "gauge",
    "Unix time of the latest LOGIN event per user (opt-in perUser series, capped at perUser.limit).",
)

PUSH_REQUESTS = Family(
    "keycloak_monitor_push_requests",
    "counter",
    "Requests to the monitor's push endpoint by result: counted, duplicate, ignored, malformed, unauthorized, "
    "unknown_realm, replay, too_large, overloaded, unavailable.",
)
NOTIFICATIONS = Family(
    "keycloak_monitor_notifications",
    "counter",
    "Notification deliveries by channel (webhook, email) and result (sent, failed).",
)

PART_UP = Family(
    "keycloak_monitor_part_up",
    "gauge",
    "1 when an optional part of a successful collection succeeded, 0 when it failed and its series are absent.",
)

HEALTH = (UP, LAST_SUCCESS, DURATION, ERRORS, API_REQUESTS, PUSH_REQUESTS, NOTIFICATIONS)
FAMILIES = (
    *HEALTH,
    PART_UP,
    ACTIVE_SESSIONS,
    OFFLINE_SESSIONS,
    USER_SESSIONS,
    CONNECTED_USERS,
    SESSION_LISTING_DISCREPANCY,
    SESSION_AGE,
    USERS,
    USER_EVENTS,
    ADMIN_EVENTS,
    EVENT_LAG,
    EVENTS_FOLDED,
    EVENTS_EXPIRED,
    SESSION_DURATION,
    LAST_LOGIN,
)
