"""Keycloak with Phase Two's `keycloak-events` plugin (Maven Central) in its providers/ folder.

    python -m tests.testbed.keycloak_events fetch

A provider changes start-dev's Quarkus build, so the plugin lives in a home of its own: a copy
of the cached distribution with the verified jar added, primed once under the cache lock, so the
shared plain home is never rebuilt and two servers never augment one home at the same time.

Version 0.59 is the newest on Maven Central (maven-metadata.xml, checked 2026-11) and is built
against Keycloak 26.6.3; its POM lists only `provided` dependencies (guava, nashorn, httpclient,
all shipped in Keycloak 26.7's lib/), and the jar shades its own backoff library, so it needs no
companion jar. Its classes are Java 21 bytecode (class file 65): under Java 17 the Quarkus build
fails with UnsupportedClassVersionError, so this server runs on a JDK 21+ (the machine's Temurin
25, or KEYCLOAK_EVENTS_JAVA_HOME). What it does, found against Keycloak 26.7.3:

- The realm's event listener `ext-event-webhook` sends every user and admin event to each enabled
  webhook of the realm, made with POST /realms/{realm}/webhooks (an admin token with
  manage-events): {"enabled": "true", "url": ..., "secret": ..., "eventTypes": ["*"]}.
- One POST per event and webhook, body JSON: {"id": Keycloak's event id, "uid": a new id per
  webhook send (kept across its retries), "type": "access.LOGIN" | "admin.USER-CREATE" | ...,
  "time", "realmId" (realm name), "authDetails": {"realmId", "clientId", "userId", "ipAddress",
  "sessionId", "username"}, "details", "error", and for admin events "operationType",
  "resourceType", "resourcePath", "representation"}.
- With a secret, header X-Keycloak-Signature: hex HMAC-SHA256 of the body with that secret.
- A non-2xx answer is retried with exponential backoff (first after ~0.5 s).
"""

import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tests.testbed.cache import cached_dir
from tests.testbed.keycloak import (
    KEYCLOAK_VERSION,
    KeycloakAdmin,
    KeycloakServer,
    _fetch_verified,
    ensure_distribution,
)

log = logging.getLogger(__name__)

PLUGIN_VERSION = "0.59"
PLUGIN_URL = (
    "https://repo.maven.apache.org/maven2/io/phasetwo/keycloak/keycloak-events/"
    f"{PLUGIN_VERSION}/keycloak-events-{PLUGIN_VERSION}.jar"
)
WEBHOOK_LISTENER = "ext-event-webhook"
MIN_JAVA = 21
# The plugin adds a second event store (ext-event-mdc-logger-store); with two and none chosen,
# Keycloak stores no event and GET /events fails with a NullPointerException (HTTP 500). A build
# option, so the plugin home is primed with it.
EVENT_STORE_OPTION = "--spi-events-store--provider=jpa"
JVM_DIRS = Path("/usr/lib/jvm")


def java_home() -> Path:
    """A JDK that runs the plugin's Java 21 classes: KEYCLOAK_EVENTS_JAVA_HOME, else the newest
    under /usr/lib/jvm whose `release` file says 21 or later."""
    if os.environ.get("KEYCLOAK_EVENTS_JAVA_HOME"):
        return Path(os.environ["KEYCLOAK_EVENTS_JAVA_HOME"])
    found: list[tuple[int, Path]] = []
    for release in JVM_DIRS.glob("*/release"):
        match = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.MULTILINE)
        if match and int(match.group(1)) >= MIN_JAVA and (release.parent / "bin" / "java").exists():
            found.append((int(match.group(1)), release.parent))
    if not found:
        raise RuntimeError(
            f"keycloak-events {PLUGIN_VERSION} needs Java {MIN_JAVA}+ and none is under {JVM_DIRS}; "
            "install one or set KEYCLOAK_EVENTS_JAVA_HOME"
        )
    return max(found)[1]


class PluginKeycloakServer(KeycloakServer):
    """A KeycloakServer on the plugin home, run by a JDK new enough for the plugin."""

    def __init__(self, home: Path | None = None, **kwargs: Any) -> None:
        super().__init__(home or ensure_plugin_home(), **kwargs)
        self.java_home = java_home()

    def command(self) -> list[str]:
        return [*super().command(), EVENT_STORE_OPTION]

    def _environment(self) -> dict[str, str]:
        return {**super()._environment(), "JAVA_HOME": str(self.java_home)}


def ensure_plugin_jar() -> Path:
    """The plugin jar, downloaded once and checked against Maven Central's SHA-1."""
    name = f"keycloak-events-{PLUGIN_VERSION}.jar"

    def fill(out: Path) -> None:
        log.info("downloading %s", PLUGIN_URL)
        _fetch_verified(PLUGIN_URL, out / name)

    return cached_dir(f"plugins/keycloak-events-{PLUGIN_VERSION}", fill) / name


def ensure_plugin_home(version: str = KEYCLOAK_VERSION) -> Path:
    """A primed Keycloak home with the plugin installed, cached beside the plain one."""
    base = ensure_distribution(version)
    jar = ensure_plugin_jar()

    def fill(out: Path) -> None:
        home = out / base.name
        shutil.copytree(base, home, symlinks=True)
        shutil.copy2(jar, home / "providers" / jar.name)
        started = time.monotonic()
        log.info("priming %s with %s (Quarkus build) ...", home, jar.name)
        with PluginKeycloakServer(home, https=False):
            pass
        log.info("primed in %.1fs", time.monotonic() - started)

    return cached_dir(f"keycloak/{version}+keycloak-events-{PLUGIN_VERSION}", fill) / base.name


def add_webhook(admin: KeycloakAdmin, realm: str, url: str, secret: str) -> None:
    """Send every event of `realm` to `url`, signed with `secret`: the listener and one webhook."""
    listeners = admin.get(f"/{realm}/events/config").get("eventsListeners") or []
    if WEBHOOK_LISTENER not in listeners:
        admin.update_realm(realm, eventsListeners=[*listeners, WEBHOOK_LISTENER])
    webhook = {"enabled": "true", "url": url, "secret": secret, "eventTypes": ["*"]}
    admin.realm_request("POST", f"/{realm}/webhooks", json=webhook)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        sys.exit("usage: python -m tests.testbed.keycloak_events fetch")
    logging.basicConfig(format="%(message)s")
    log.setLevel(logging.INFO)
    started = time.monotonic()
    try:
        home = ensure_plugin_home()
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
    took = time.monotonic() - started
    print(f"Keycloak {KEYCLOAK_VERSION} + keycloak-events {PLUGIN_VERSION} at {home} in {took:.1f}s")


if __name__ == "__main__":
    main()
