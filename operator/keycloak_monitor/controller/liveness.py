"""Liveness of the operator's link to the apiserver, for /healthz.

kopf cuts a watch that stays silent past its inactivity timeout and reconnects by itself
(see main.configure). What a restart can fix beyond that is a pod that cannot reach the
apiserver at all: when neither the watch nor a periodic probe got an answer for `grace`
seconds, /healthz fails and the kubelet restarts the pod.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from ..errors import CollectionError
from .kube import Kube

log = logging.getLogger(__name__)


class ApiLiveness:
    def __init__(self, grace: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace, self._clock = grace, clock
        self._last = clock()

    def answered(self) -> None:
        """The apiserver answered: a watch event arrived or a probe succeeded."""
        self._last = self._clock()

    def silent_for(self) -> float:
        return self._clock() - self._last

    def alive(self) -> bool:
        return self.silent_for() <= self.grace

    async def probe(self, kube: Kube, every: float) -> None:
        """Forever: ask the apiserver every `every` seconds (each call has its own deadline)."""
        while True:
            try:
                await kube.ping()
            except CollectionError as exc:
                log.warning("apiserver silent for %.0fs: %s", self.silent_for(), exc.message)
            else:
                self.answered()
            await asyncio.sleep(every)
