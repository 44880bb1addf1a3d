"""A monitor's own health series: they outlive failed collections, unlike the realm series."""

import time
from collections import Counter
from dataclasses import dataclass, field

from .errors import Reason

DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
REASONS = tuple(r.value for r in Reason)


def _zeroed_reasons() -> Counter[str]:
    # Every reason starts at 0 so that rate() and increase() see the first failure.
    return Counter(dict.fromkeys(REASONS, 0))


@dataclass
class Health:
    up: bool = False
    last_success: float | None = None
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    duration_count: int = 0
    errors: Counter[str] = field(default_factory=_zeroed_reasons)
    api_requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    push_requests: Counter[str] = field(default_factory=Counter)  # by result
    notifications: Counter[tuple[str, str]] = field(default_factory=Counter)  # by (channel, result)

    def observe_request(self, endpoint: str, code: str) -> None:
        self.api_requests[(endpoint, code)] += 1

    def _observe_duration(self, seconds: float) -> None:
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
        self.duration_sum += seconds
        self.duration_count += 1

    def succeeded(self, seconds: float, at: float | None = None) -> None:
        self._observe_duration(seconds)
        self.up = True
        self.last_success = time.time() if at is None else at

    def failed(self, seconds: float | None, reason: Reason) -> None:
        """`seconds` is None for a failure before any request: no fake 0 s duration."""
        if seconds is not None:
            self._observe_duration(seconds)
        self.up = False
        self.errors[reason.value] += 1
