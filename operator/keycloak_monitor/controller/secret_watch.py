"""The opted-in Secrets of the watched namespaces, kept in memory by a watch, so a collection
reads its credentials and CA bundle without a request to the apiserver.

One list-then-watch per watched namespace (one for the cluster when all are watched), limited
by the apiserver to Secrets carrying the opt-in label: no other Secret ever reaches the process.
A Secret that loses the label leaves the watch (the apiserver sends DELETED), so it is refused
at the next cycle like one never labelled. While a scope's watch is not current (before its
first list, after the apiserver went away), get() answers None and the caller reads the
Secret itself: an apiserver outage still shows as `up 0` with reason `kubernetes`.
"""

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from .credentials import OPT_IN_LABEL
from .kube import API_TIMEOUT, SecretBody

log = logging.getLogger(__name__)

SELECTOR = f"{OPT_IN_LABEL}=true"
RETRY = 2.0  # seconds between a failed list or watch and the next list


class SecretWatch:
    def __init__(self, api: client.ApiClient, namespaces: Sequence[str] = (), watch_timeout: float = 60.0) -> None:
        self._core = client.CoreV1Api(api)
        self._scopes: list[str | None] = list(namespaces) or [None]  # None: every namespace
        self._watch_timeout = watch_timeout
        self._secrets: dict[tuple[str, str], SecretBody] = {}
        self._current: set[str | None] = set()  # scopes whose list and watch are up to date

    def get(self, namespace: str, name: str) -> SecretBody | None:
        """The Secret as the watch last saw it; None when it must be read instead (absent, not
        opted in, or the watch of its namespace is not current)."""
        if namespace not in self._current and None not in self._current:
            return None
        return self._secrets.get((namespace, name))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for scope in self._scopes:
                group.create_task(self._follow(scope))

    async def _follow(self, scope: str | None) -> None:
        where = f"namespace {scope}" if scope else "all namespaces"
        failures = 0
        while True:
            try:
                version = await self._list(scope)
                failures = 0
                while version is not None:  # each watch request ends after watch_timeout; resume it
                    version = await self._watch(scope, version)
            except Exception as exc:  # the apiserver away, RBAC, a bad answer: never the end of the operator
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "watching opted-in Secrets in %s: %s; reading them per cycle", where, _why(exc))
            self._current.discard(scope)
            await asyncio.sleep(RETRY)

    async def _list(self, scope: str | None) -> str:
        """Replace what is known of the scope with a fresh list; returns its resourceVersion."""
        if scope is None:
            call = self._core.list_secret_for_all_namespaces(label_selector=SELECTOR, **self._options(API_TIMEOUT))
        else:
            call = self._core.list_namespaced_secret(scope, label_selector=SELECTOR, **self._options(API_TIMEOUT))
        async with asyncio.timeout(API_TIMEOUT):
            async with _checked(await call) as response:
                listing = json.loads(await response.read())
        for key in [key for key in self._secrets if scope is None or key[0] == scope]:
            del self._secrets[key]
        for item in listing.get("items") or []:
            self._store(item)
        self._current.add(scope)
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, scope: str | None, version: str) -> str | None:
        """Follow changes from `version` until the apiserver ends the request; returns where
        to resume, or None when the scope must be listed again (its history expired)."""
        options = self._options(aiohttp.ClientTimeout(connect=API_TIMEOUT, sock_read=self._watch_timeout + 10))
        options |= {"watch": True, "resource_version": version, "allow_watch_bookmarks": True}
        options["timeout_seconds"] = int(self._watch_timeout)
        if scope is None:
            response = await self._core.list_secret_for_all_namespaces(label_selector=SELECTOR, **options)
        else:
            response = await self._core.list_namespaced_secret(scope, label_selector=SELECTOR, **options)
        async with _checked(response):
            # A frozen connection raises after sock_read: the scope is listed again.
            async for line in response.content:
                event = json.loads(line)
                kind, item = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if item.get("code") == 410:  # Gone: too old to resume, list again
                        return None
                    raise client.ApiException(status=item.get("code"), reason=item.get("reason"))
                if kind == "DELETED":
                    self._secrets.pop(_key(item), None)
                elif kind in ("ADDED", "MODIFIED"):
                    self._store(item)
                version = item.get("metadata", {}).get("resourceVersion") or version
        return version

    def _store(self, item: dict[str, Any]) -> None:
        metadata = item.get("metadata") or {}
        self._secrets[_key(item)] = SecretBody(labels=dict(metadata.get("labels") or {}), data=item.get("data") or {})

    @staticmethod
    def _options(timeout: float | aiohttp.ClientTimeout) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": timeout}


def _checked(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    """A raw response (the client checks only those it reads itself) that answered 200."""
    if response.status != 200:
        response.release()
        raise client.ApiException(status=response.status, reason=response.reason)
    return response


def _key(item: dict[str, Any]) -> tuple[str, str]:
    metadata = item.get("metadata") or {}
    return str(metadata.get("namespace")), str(metadata.get("name"))


def _why(exc: BaseException) -> str:
    """What failed, without anything the apiserver sent back (a body could hold a Secret)."""
    if isinstance(exc, client.ApiException):
        return f"HTTP {exc.status} {exc.reason or ''}".rstrip()
    return type(exc).__name__
