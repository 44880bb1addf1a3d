"""Credentials and CA bundle of a monitor, taken from its Secrets before every collection
(the watch's copy, secret_watch.py, or a read when the watch lacks it).

A Secret is used only when it opts in with the label `keycloak-monitor.io/credentials: "true"`:
whoever may create a KeycloakMonitor must not be able to send any other Secret of the namespace
to a host of their choosing. The checks are pure functions of the Secret object, so they apply
the same to a Secret read from the apiserver or from a cache.
"""

import ssl

from ..config import Credentials, MonitorSpec
from ..errors import CollectionError, Reason
from .kube import Kube, SecretBody

OPT_IN_LABEL = "keycloak-monitor.io/credentials"


def require_opt_in(namespace: str, name: str, secret: SecretBody, use: str) -> None:
    """Refuse a Secret without the opt-in label, before any of its values is read."""
    if secret.labels.get(OPT_IN_LABEL) != "true":
        raise CollectionError(
            Reason.CONFIG,
            f'Secret {namespace}/{name} ({use}) is not labelled {OPT_IN_LABEL}: "true"; '
            "the operator uses only Secrets that opt in",
            condition="SecretNotOptedIn",
        )


def _missing(namespace: str, name: str, keys: str) -> CollectionError:
    return CollectionError(Reason.CONFIG, f"Secret {namespace}/{name} has no text {keys}", condition="SecretKeyMissing")


def credentials_from(namespace: str, name: str, secret: SecretBody, spec: MonitorSpec) -> Credentials:
    """A user and password, or else a client id and secret, from an opted-in Secret."""
    ref = spec.credentials_secret
    assert ref is not None
    require_opt_in(namespace, name, secret, "credentialsSecret")
    if username := secret.text(ref.username_key):
        password = secret.text(ref.password_key)
        if not password:
            raise _missing(namespace, name, f"key '{ref.password_key}' beside '{ref.username_key}'")
        return Credentials(
            username=username,
            password=password,
            client_id=secret.text(ref.client_id_key),
            client_secret=secret.text(ref.client_secret_key),
        )
    client_id, client_secret = secret.text(ref.client_id_key), secret.text(ref.client_secret_key)
    if client_id and client_secret:
        return Credentials(client_id=client_id, client_secret=client_secret)
    raise _missing(
        namespace,
        name,
        f"keys '{ref.username_key}'/'{ref.password_key}' or '{ref.client_id_key}'/'{ref.client_secret_key}'",
    )


def ca_from(namespace: str, name: str, key: str, secret: SecretBody) -> str:
    """The PEM bundle of an opted-in CA Secret, checked so the error names the Secret."""
    require_opt_in(namespace, name, secret, "tls.caSecret")
    bundle = secret.text(key)
    if not bundle:
        raise _missing(namespace, name, f"key '{key}' (tls.caSecret)")
    try:
        ssl.create_default_context(cadata=bundle)
    except (ssl.SSLError, ValueError):
        raise CollectionError(
            Reason.CONFIG,
            f"key '{key}' of Secret {namespace}/{name} (tls.caSecret) is not a PEM CA bundle",
            condition="InvalidCA",
        ) from None
    return bundle


async def load_credentials(kube: Kube, namespace: str, spec: MonitorSpec) -> Credentials:
    ref = spec.credentials_secret
    if ref is None:
        raise CollectionError(Reason.CONFIG, "spec.credentialsSecret is not set", condition="SecretNotFound")
    return credentials_from(namespace, ref.name, await kube.read_secret(namespace, ref.name), spec)


async def load_ca(kube: Kube, namespace: str, spec: MonitorSpec) -> str | None:
    if spec.ca_secret is None:
        return None
    name, key = spec.ca_secret
    return ca_from(namespace, name, key, await kube.read_secret(namespace, name))
