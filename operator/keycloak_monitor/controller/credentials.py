"""Credentials and CA bundle of a monitor, read from its Secrets before every collection."""

import ssl

from ..config import Credentials, MonitorSpec
from ..errors import CollectionError, Reason
from .kube import Kube


def _missing(namespace: str, name: str, keys: str) -> CollectionError:
    return CollectionError(Reason.CONFIG, f"Secret {namespace}/{name} has no text {keys}", condition="SecretKeyMissing")


async def load_credentials(kube: Kube, namespace: str, spec: MonitorSpec) -> Credentials:
    ref = spec.credentials_secret
    if ref is None:
        raise CollectionError(Reason.CONFIG, "spec.credentialsSecret is not set", condition="SecretNotFound")
    data = await kube.read_secret(namespace, ref.name)
    if data.get(ref.username_key):
        if not data.get(ref.password_key):
            raise _missing(namespace, ref.name, f"key '{ref.password_key}' beside '{ref.username_key}'")
        return Credentials(
            username=data[ref.username_key],
            password=data[ref.password_key],
            client_id=data.get(ref.client_id_key) or None,
            client_secret=data.get(ref.client_secret_key) or None,
        )
    if data.get(ref.client_id_key) and data.get(ref.client_secret_key):
        return Credentials(client_id=data[ref.client_id_key], client_secret=data[ref.client_secret_key])
    raise _missing(
        namespace,
        ref.name,
        f"keys '{ref.username_key}'/'{ref.password_key}' or '{ref.client_id_key}'/'{ref.client_secret_key}'",
    )


async def load_ca(kube: Kube, namespace: str, spec: MonitorSpec) -> str | None:
    if spec.ca_secret is None:
        return None
    name, key = spec.ca_secret
    data = await kube.read_secret(namespace, name)
    if not data.get(key):
        raise _missing(namespace, name, f"key '{key}' (tls.caSecret)")
    try:  # checked here, every cycle, so the error names the Secret and a fix applies at once
        ssl.create_default_context(cadata=data[key])
    except (ssl.SSLError, ValueError):
        raise CollectionError(
            Reason.CONFIG,
            f"key '{key}' of Secret {namespace}/{name} (tls.caSecret) is not a PEM CA bundle",
            condition="InvalidCA",
        ) from None
    return data[key]
