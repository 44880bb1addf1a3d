"""The standalone notifier's outbox on disk: one JSON file per monitor, replaced atomically."""

import asyncio
import json
import os
from pathlib import Path
from typing import Any


def read_state(path: Path) -> Any:
    """The stored outbox, or None when there is none (or it is unreadable: start afresh)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)  # a crash leaves the old file or the new one, never half of one


async def write_state(path: Path, data: Any) -> None:
    await asyncio.to_thread(_write, path, data)
