"""A monitor's push credentials, from the Secret its spec names (events.pushSecret)."""

import time
from collections.abc import Awaitable, Callable

from ..config import MonitorSpec
from ..push.auth import PushCredentials
from .credentials import require_opt_in
from .kube import Kube

CACHE_SECONDS = 10.0  # a burst of pushes reads the Secret once; a rotation applies within seconds


def push_credentials_loader(
    kube: Kube, namespace: str, spec: Callable[[], MonitorSpec | None]
) -> Callable[[], Awaitable[PushCredentials]]:
    cached: tuple[float, str | None, PushCredentials] | None = None

    async def load() -> PushCredentials:
        nonlocal cached
        current = spec()
        ref = current.push_secret if current else None
        if ref is None:
            return PushCredentials()
        if cached is not None and cached[1] == ref.name and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[2]
        secret = await kube.read_secret(namespace, ref.name)
        require_opt_in(namespace, ref.name, secret, "events.pushSecret")
        credentials = PushCredentials(
            username=secret.text(ref.username_key),
            password=secret.text(ref.password_key),
            hmac_secret=secret.text(ref.hmac_secret_key),
        )
        cached = (time.monotonic(), ref.name, credentials)
        return credentials

    return load
