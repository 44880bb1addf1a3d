"""The operator process's task count, served beside prometheus_client's process metrics:
a count that grows with every monitor created and deleted is a leak."""

import asyncio
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class AsyncioTasks(Collector):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "python_asyncio_tasks",
            "asyncio tasks alive in the operator's event loop",
            len(asyncio.all_tasks(self._loop)),
        )


def register_task_gauge() -> AsyncioTasks:
    collector = AsyncioTasks(asyncio.get_running_loop())
    REGISTRY.register(collector)
    return collector
