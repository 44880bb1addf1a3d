"""Start-up jitter: after a restart, resumed monitors do not all collect in the same second.

The offset is a pure function of the monitor's key, so the same monitor starts at the same
point of its interval after every restart and many monitors spread evenly over the window.
"""

import hashlib

from .config import MonitorKey

MAX_SPREAD = 30.0  # seconds: a resumed monitor's first series are never later than this


def start_delay(key: MonitorKey, interval: float) -> float:
    """Seconds to wait before the first collection: in [0, min(interval, MAX_SPREAD))."""
    window = min(interval, MAX_SPREAD)
    if window <= 0:
        return 0.0
    # sha256, not hash(): Python's string hash changes with every process.
    digest = hashlib.sha256(f"{key.namespace}/{key.name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * window
