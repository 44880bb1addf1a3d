"""The few Kubernetes API calls the controller makes itself: read Secrets, patch status."""

import base64
import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from ..errors import CollectionError, Reason
from . import GROUP, PLURAL, VERSION


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded; the values never leave this process in a log or error."""
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
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
            raise CollectionError(
                Reason.CONFIG, f"reading Secret {namespace}/{name} failed: HTTP {exc.status}", condition="SecretError"
            ) from None
        return {key: _decode(value, namespace, name, key) for key, value in (secret.data or {}).items()}

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        # A merge patch: the client would otherwise pick JSON-patch for this endpoint.
        await self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type="application/merge-patch+json"
        )


def _decode(value: str, namespace: str, name: str, key: str) -> str:
    try:
        return base64.b64decode(value).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise CollectionError(
            Reason.CONFIG, f"key {key} of Secret {namespace}/{name} is not UTF-8 text", condition="SecretKeyMissing"
        ) from None


@asynccontextmanager
async def connect() -> AsyncIterator[Kube]:
    """In a pod, the ServiceAccount; elsewhere KUBECONFIG or ~/.kube/config, like kubectl."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    async with client.ApiClient() as api:
        yield Kube(api)
