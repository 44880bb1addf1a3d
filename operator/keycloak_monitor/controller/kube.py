"""The few Kubernetes API calls the controller makes itself: read Secrets, patch status.

Every call has a deadline, and every failure of the apiserver becomes a CollectionError
with reason `kubernetes`: the monitor reports `up 0` and tries again next cycle.
"""

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from ..errors import CollectionError, Reason
from . import GROUP, PLURAL, VERSION

API_TIMEOUT = 10.0  # seconds for one apiserver call, connection included


@dataclass(frozen=True)
class SecretBody:
    """What the operator knows of a Secret: its labels (the opt-in) and its values, still
    base64, decoded one key at a time so a binary keystore beside the password harms nothing."""

    labels: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)

    def text(self, key: str) -> str | None:
        """The value of `key` as text; None when absent, empty or not UTF-8."""
        value = self.data.get(key)
        return (_text(value) or None) if value else None


class SecretLookup(Protocol):
    def get(self, namespace: str, name: str) -> SecretBody | None: ...


class Kube:
    def __init__(self, api: client.ApiClient, timeout: float = API_TIMEOUT) -> None:
        self.api = api  # for the reviews of metrics_auth
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._version = client.VersionApi(api)
        self.timeout = timeout
        # The watched opted-in Secrets (secret_watch.py): a read found there costs no request.
        self.secrets: SecretLookup | None = None

    async def read_secret(self, namespace: str, name: str) -> SecretBody:
        """A Secret's labels and values; the values never leave this process in a log or error.
        From the watch when it has the Secret, else from the apiserver (missing, not opted in,
        or the watch not current), so every failure is still reported with its reason."""
        if self.secrets is not None and (known := self.secrets.get(namespace, name)) is not None:
            return known
        what = f"reading Secret {namespace}/{name}"
        try:
            async with self._deadline(what):
                secret = await self._core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 404:
                raise CollectionError(
                    Reason.CONFIG, f"Secret {namespace}/{name} not found", condition="SecretNotFound"
                ) from None
            if exc.status == 403:
                raise CollectionError(
                    Reason.CONFIG,
                    f"the operator may not read Secret {namespace}/{name} (RBAC)",
                    condition="SecretForbidden",
                ) from None
            raise _api_error(what, exc) from None
        return SecretBody(labels=dict(secret.metadata.labels or {}), data=dict(secret.data or {}))

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:  # a merge patch: the client would otherwise pick JSON-patch for this endpoint
            await self._patch_status(namespace, name, {"status": status}, "application/merge-patch+json")
        except ApiException as exc:
            raise _api_error(f"writing the status of {namespace}/{name}", exc) from None

    async def replace_status_field(self, namespace: str, name: str, field: str, value: Any, expected: Any) -> None:
        """Replace status.<field> only if it still holds `expected` (what this process last
        wrote or read): raises StatusConflict when another writer changed it since."""
        path = f"/status/{field}"
        ops = [{"op": "test", "path": path, "value": expected}, {"op": "replace", "path": path, "value": value}]
        try:
            await self._patch_status(namespace, name, ops, "application/json-patch+json")
        except ApiException as exc:
            # A failed test says only 422, as an invalid value does: the stored value tells them apart.
            if exc.status == 422 and (await self.read_status(namespace, name)).get(field) != expected:
                raise StatusConflict(
                    Reason.KUBERNETES, f"status.{field} of {namespace}/{name} was written by another process"
                ) from None
            raise _api_error(f"writing the status of {namespace}/{name}", exc) from None

    async def _patch_status(self, namespace: str, name: str, body: Any, content_type: str) -> None:
        """Raises ApiException for the caller to judge, CollectionError for the rest."""
        async with self._deadline(f"writing the status of {namespace}/{name}"):
            await self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, body, _content_type=content_type, _request_timeout=self.timeout
            )

    async def read_status(self, namespace: str, name: str) -> dict[str, Any]:
        what = f"reading the status of {namespace}/{name}"
        try:
            async with self._deadline(what):
                body = await self._custom.get_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.timeout
                )
        except ApiException as exc:
            raise _api_error(what, exc) from None
        return dict(body.get("status") or {})

    async def ensure_peering(self, name: str, namespaces: list[str]) -> None:
        """The peering object kopf keeps its keep-alives in: created here, at start, since
        kubectl cannot apply it in the same step as its CRD."""
        body = {"apiVersion": "kopf.dev/v1", "metadata": {"name": name}}
        for namespace, plural, kind in _peerings(namespaces):
            what = f"creating {kind} {name}"
            try:
                async with self._deadline(what):
                    if namespace is None:
                        await self._custom.create_cluster_custom_object(
                            "kopf.dev", "v1", plural, {**body, "kind": kind}, _request_timeout=self.timeout
                        )
                    else:
                        await self._custom.create_namespaced_custom_object(
                            "kopf.dev", "v1", namespace, plural, {**body, "kind": kind}, _request_timeout=self.timeout
                        )
            except ApiException as exc:
                if exc.status != 409:  # 409: it exists already
                    raise _api_error(what, exc) from None

    async def touch_peering(self, name: str, namespaces: list[str], identity: str, entry: dict[str, Any]) -> None:
        """This replica's keep-alive in the peering objects, as kopf writes it."""
        patch = {"status": {identity: entry}}
        options: dict[str, Any] = {"_content_type": "application/merge-patch+json", "_request_timeout": self.timeout}
        for namespace, plural, kind in _peerings(namespaces):
            what = f"writing the keep-alive in {kind} {name}"
            try:
                async with self._deadline(what):
                    if namespace is None:
                        await self._custom.patch_cluster_custom_object("kopf.dev", "v1", plural, name, patch, **options)
                    else:
                        await self._custom.patch_namespaced_custom_object(
                            "kopf.dev", "v1", namespace, plural, name, patch, **options
                        )
            except ApiException as exc:
                raise _api_error(what, exc) from None

    async def ping(self) -> None:
        """One cheap round trip (GET /version, allowed to every ServiceAccount)."""
        what = "asking the apiserver for its version"
        try:
            async with self._deadline(what):
                await self._version.get_code(_request_timeout=self.timeout)
        except ApiException as exc:
            raise _api_error(what, exc) from None

    @asynccontextmanager
    async def _deadline(self, what: str) -> AsyncIterator[None]:
        """Transport failures and hangs as CollectionErrors; ApiExceptions pass for the caller."""
        try:
            async with asyncio.timeout(self.timeout):
                yield
        except TimeoutError:
            raise CollectionError(
                Reason.KUBERNETES, f"{what}: the apiserver did not answer within {self.timeout:g}s", "KubernetesTimeout"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise CollectionError(
                Reason.KUBERNETES, f"{what}: the apiserver is unreachable ({type(exc).__name__})"
            ) from None


class StatusConflict(CollectionError):
    """A guarded status write found another writer's value in place."""


def _peerings(namespaces: list[str]) -> list[tuple[str | None, str, str]]:
    """(namespace, plural, kind) of the peering objects: one per watched namespace, or the cluster's."""
    return [(ns, "kopfpeerings", "KopfPeering") for ns in namespaces] or [
        (None, "clusterkopfpeerings", "ClusterKopfPeering")
    ]


def _api_error(what: str, exc: ApiException) -> CollectionError:
    return CollectionError(Reason.KUBERNETES, f"{what} failed: HTTP {exc.status} {exc.reason or ''}".rstrip())


def _text(value: str) -> str | None:
    try:
        return base64.b64decode(value).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


@asynccontextmanager
async def connect() -> AsyncIterator[Kube]:
    """In a pod, the ServiceAccount; elsewhere KUBECONFIG or ~/.kube/config, like kubectl."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    async with client.ApiClient() as api:
        yield Kube(api)
