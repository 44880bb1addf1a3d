"""Immutable results of one collection; rendering and status read them, nothing mutates them."""

from collections.abc import Mapping
from dataclasses import dataclass, field

# Session-age buckets (seconds): a minute up to a week, where Keycloak's session limits sit.
AGE_BUCKETS: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 604800)


@dataclass(frozen=True)
class ClientSessions:
    client_id: str
    active: int
    offline: int


@dataclass(frozen=True)
class AgeHistogram:
    """Cumulative counts per upper bound (the last one is +Inf), as a gauge histogram."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return self.cumulative[-1]

    @classmethod
    def of(cls, ages: list[float], bounds: tuple[float, ...] = AGE_BUCKETS) -> "AgeHistogram":
        cumulative = [sum(1 for age in ages if age <= bound) for bound in bounds]
        return cls(bounds=bounds, cumulative=(*cumulative, len(ages)), total=float(sum(ages)))


@dataclass(frozen=True)
class UserValue:
    """One per-user series (opt-in): whose it is, and its value."""

    user_id: str
    username: str
    value: float
    email: str | None = None


@dataclass(frozen=True)
class EventCounts:
    """One event stream's stored counters, as served."""

    totals: Mapping[tuple[str, ...], int]  # label values -> count
    created: float  # epoch seconds when counting began (OpenMetrics _created)
    zero: tuple[tuple[str, ...], ...] = ()  # known label sets served at 0 before their first event
    lag: float = 0.0  # seconds the stored counts are behind
    folded: int = 0  # events counted in the overflow series (series cap reached)
    expired: bool = False  # behind by more than the realm keeps events


@dataclass(frozen=True)
class StatusWarning:
    """Something the EventsRecorded condition reports: a CamelCase reason and a message."""

    reason: str
    message: str


@dataclass(frozen=True)
class RealmSnapshot:
    clients: tuple[ClientSessions, ...]
    user_sessions: int | None  # None: sessions.details off, the listing was not made
    connected_users: int | None
    session_ages: AgeHistogram | None
    users: int
    offline_enabled: bool
    user_events: EventCounts | None = None  # labels (client_id, event, error)
    admin_events: EventCounts | None = None  # labels (operation, resource_type)
    session_durations: tuple[UserValue, ...] | None = None
    last_logins: tuple[UserValue, ...] | None = None
    include_email: bool = False
    warnings: tuple[StatusWarning, ...] = field(default=())
    # Sessions the listing may be off by (outside its clients' counters), None without a listing.
    session_listing_discrepancy: int | None = None
    # Optional parts of this collection: part -> None when it succeeded, else the reason it failed.
    parts: Mapping[str, str | None] = field(default_factory=dict)
