"""The bounded window of event ids already counted, shared by polling and push."""

from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_WINDOW_MS = 24 * 3600 * 1000  # a sender retrying longer than a day is told it is too late
DEFAULT_MAX_IDS = 200_000


class SeenIds:
    """Ids of counted events with their event time, oldest first, bounded in age and number.

    `horizon` is the oldest event time the window still vouches for: an event older than it
    might have been counted and forgotten, so it is refused as a replay rather than counted.
    """

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, max_ids: int = DEFAULT_MAX_IDS) -> None:
        self.window_ms, self.max_ids = window_ms, max_ids
        self._ids: OrderedDict[str, int] = OrderedDict()
        self._evicted_upto = 0  # newest event time evicted for lack of room

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def horizon(self, now_ms: int) -> int:
        return max(now_ms - self.window_ms, self._evicted_upto)

    def add(self, key: str, time_ms: int) -> None:
        self._ids[key] = time_ms
        while len(self._ids) > self.max_ids:
            _, evicted = self._ids.popitem(last=False)
            self._evicted_upto = max(self._evicted_upto, evicted)

    def discard(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._ids.pop(key, None)

    def expire(self, now_ms: int) -> None:
        cutoff = now_ms - self.window_ms
        while self._ids:
            key, at = next(iter(self._ids.items()))
            if at >= cutoff:
                break
            del self._ids[key]
