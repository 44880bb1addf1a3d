"""The test bed fails loudly: a server that cannot be had stops the run with the reason."""

import pytest

from tests.testbed.cache import CACHE
from tests.testbed.keycloak import ensure_distribution


def test_a_keycloak_that_cannot_be_downloaded_fails_with_the_url():
    with pytest.raises(RuntimeError, match=r"keycloak-quarkus-dist-0\.0\.0-missing\.tar\.gz"):
        ensure_distribution("0.0.0-missing")
    assert not (CACHE / "keycloak" / "0.0.0-missing").exists()  # nothing half-made left behind
