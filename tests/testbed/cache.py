"""Where the test bed keeps what it downloads or builds, and how it fills it safely."""

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE = Path(os.environ.get("KEYCLOAK_MONITOR_CACHE", Path.home() / ".cache" / "keycloak-monitor"))


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Serialize fills of one cache entry across processes (parallel runs, make demo + test)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def cached_dir(name: str, fill: Callable[[Path], None]) -> Path:
    """CACHE/name, made by `fill(tmp)` into a temporary folder renamed into place at the end,
    so an interrupted run never leaves a half-made entry behind."""
    target = CACHE / name
    if target.exists():
        return target
    with locked(name.replace("/", "_")):
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            fill(tmp)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
