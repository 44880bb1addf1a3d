"""`keycloak-monitor` with a profiler a benchmark switches on and off from outside, so a
profile covers a chosen window of a long run and costs nothing the rest of the time.

    python -m bench.profiled_operator PROFILE_FILE run [keycloak-monitor options ...]

SIGUSR1 starts cProfile on the event loop's thread; SIGUSR2 stops it and writes to
PROFILE_FILE the top functions by cumulative time, then the live Python objects by type
(count and shallow size), which show what the memory of many monitors is made of.
"""

import cProfile
import gc
import io
import pstats
import signal
import sys
from collections import Counter
from pathlib import Path
from types import FrameType

from keycloak_monitor.cli import main as operator_main

TOP = 25


def object_census(top: int = TOP) -> str:
    """Live objects by type: those the collector tracks, and the strings, bytes and numbers
    they hold (untracked, so reached through their holders; each counted once)."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    seen: set[int] = set()
    tracked = gc.get_objects()
    for obj in tracked:
        for item in (obj, *gc.get_referents(obj)):
            if id(item) in seen or (item is not obj and gc.is_tracked(item)):
                continue
            seen.add(id(item))
            kind = f"{type(item).__module__}.{type(item).__qualname__}"
            counts[kind] += 1
            sizes[kind] += sys.getsizeof(item)
    lines = [f"{'objects':>9} {'KiB':>9}  type (shallow size; {sum(sizes.values()) / 2**20:.1f} MiB in all)"]
    lines += [f"{counts[kind]:9d} {size / 1024:9.0f}  {kind}" for kind, size in sizes.most_common(top)]
    return "\n".join(lines)


class Switch:
    def __init__(self, output: Path) -> None:
        self.output = output
        self.profiler: cProfile.Profile | None = None

    def start(self, _signum: int, _frame: FrameType | None) -> None:
        self.profiler = cProfile.Profile()
        self.profiler.enable()  # signal handlers run on the main thread: the event loop's

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        if self.profiler is None:
            return
        profiler, self.profiler = self.profiler, None
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(TOP)
        lines = out.getvalue().strip().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        self.output.write_text("\n".join(lines[start:]) + "\n\n" + object_census() + "\n")


def main() -> int:
    switch = Switch(Path(sys.argv[1]))
    signal.signal(signal.SIGUSR1, switch.start)
    signal.signal(signal.SIGUSR2, switch.stop)
    return operator_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
