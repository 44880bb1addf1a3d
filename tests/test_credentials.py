"""The opt-in of Secrets, as pure functions of the Secret object (read or cached alike)."""

import base64

import pytest

from keycloak_monitor.config import parse_spec
from keycloak_monitor.controller.credentials import OPT_IN_LABEL, ca_from, credentials_from
from keycloak_monitor.controller.kube import SecretBody
from keycloak_monitor.errors import CollectionError

SPEC = parse_spec({"url": "https://sso.example.com", "realm": "shop", "credentialsSecret": {"name": "kc"}})
OPTED_IN = {OPT_IN_LABEL: "true"}


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_an_opted_in_secret_gives_its_credentials_beside_a_binary_keystore() -> None:
    data = {"username": b64(b"monitor"), "password": b64(b"pw"), "keystore.p12": b64(b"\x30\x82\xff\xfe")}
    credentials = credentials_from("ns", "kc", SecretBody(OPTED_IN, data), SPEC)
    assert (credentials.username, credentials.password) == ("monitor", "pw")


@pytest.mark.parametrize("labels", [{}, {OPT_IN_LABEL: "false"}, {"other": "true"}])
def test_a_secret_without_the_opt_in_is_refused_before_its_values_are_read(labels: dict[str, str]) -> None:
    # Values that are not even base64: refused by the label, never decoded.
    body = SecretBody(labels, {"username": "%%%", "password": "%%%"})
    with pytest.raises(CollectionError) as refused:
        credentials_from("ns", "kc", body, SPEC)
    assert refused.value.condition == "SecretNotOptedIn"
    with pytest.raises(CollectionError) as refused:
        ca_from("ns", "ca", "ca.crt", body)
    assert refused.value.condition == "SecretNotOptedIn"


def test_an_opted_in_secret_without_the_keys_says_which_are_missing() -> None:
    with pytest.raises(CollectionError) as missing:
        credentials_from("ns", "kc", SecretBody(OPTED_IN, {"username": b64(b"monitor")}), SPEC)
    assert missing.value.condition == "SecretKeyMissing" and "'password'" in missing.value.message
