"""A real Keycloak for tests and the demo: the official distribution from Maven Central,
started with `kc.sh start-dev` on loopback, provisioned through its own Admin API.

    python -m tests.testbed.keycloak fetch      # download, verify, unpack and prime once

What Keycloak 26.7.3 answers (found against the running server; the collector relies on it).
All paths below /admin/realms/{realm}; "role" = the realm-management client role a service
account of that realm needs (403 {"error": "HTTP 403 Forbidden"} without it; any one
realm-management role already allows GET /{realm}, but only view-realm gets the full realm).

- GET /client-session-stats (role view-realm; view-clients is NOT enough):
  [{"id": client uuid, "clientId": "web", "active": "2", "offline": "0"}]; counts are strings;
  only clients with at least one online or offline session (a client with only offline ones
  shows "active": "0"); order not defined.
- GET /clients/{uuid}/user-sessions?first&max (role view-clients; query-clients is not enough,
  view-users is not needed) and /clients/{uuid}/offline-sessions (same): 100 per page by default,
  max=-1 returns all; pages are stable (ordered by session id). Each:
  {"id", "username", "userId", "ipAddress", "start", "lastAccess" (epoch ms, whole seconds),
  "rememberMe", "clients": {client uuid: clientId}, "transientUser": false}.
  One session per password grant, so one user can have several sessions of one client.
- GET /clients/{uuid}/session-count and /offline-session-count (role view-clients): {"count": 2}.
- GET /users/count (role query-users, which view-users includes): a bare JSON number, e.g. 3.
  GET /users?first&max: query-users (100 per page by default); GET /users/{id} and
  /users/{id}/sessions need view-users.
- GET /events?type&client&user&dateFrom&dateTo&first&max&direction (role view-events or
  manage-events): newest first (direction=asc reverses), 100 per page by default. dateFrom and
  dateTo take yyyy-MM-dd (a whole day, server time zone) or epoch milliseconds, both inclusive.
  A realm with eventsEnabled=false answers []. Each event:
  {"id": uuid, "time": epoch ms, "type": "LOGIN", "realmId", "clientId", "userId" (absent
  when error=user_not_found), "sessionId" (on LOGIN/LOGOUT), "ipAddress", "error"
  (LOGIN_ERROR: "invalid_user_credentials" or "user_not_found"), "details": {"username",
  "grant_type", "auth_method", ...}}.
- GET /admin-events (same roles, paging, order, dateFrom/dateTo and direction): {"id", "time",
  "realmId", "authDetails": {"realmId", "clientId", "userId", "ipAddress"}, "operationType"
  ("CREATE", "UPDATE", "DELETE", "ACTION"), "resourceType" ("USER", "CLIENT", "REALM", ...),
  "resourcePath", "representation" (a JSON string, with adminEventsDetailsEnabled)}.
- GET /events/config (view-events): {"eventsEnabled", "eventsListeners", "enabledEventTypes",
  "adminEventsEnabled", "adminEventsDetailsEnabled"}.
- Errors: unknown realm 404 {"error": "Realm not found."}; unknown client uuid 404
  {"error": "Could not find client"}; missing or bad token 401 {"error": "HTTP 401 Unauthorized"};
  a wrong password at the token endpoint 400 {"error": "invalid_grant", "error_description":
  "Invalid user credentials"}; an unknown auth realm's token endpoint 404 {"error":
  "Realm does not exist"}. admin-cli tokens live 60 s (refresh tokens 1800 s).
- Sessions: a password grant with scope offline_access makes ONLY an offline session (no
  online one). Logout with an offline refresh token ends that offline session; the admin
  POST /users/{id}/logout ends the user's online sessions and leaves offline ones.
  Users made by partialImport get no default roles unless named (so no offline_access):
  create_users_bulk names default-roles-{realm}.
"""

import atexit
import contextlib
import ctypes
import hashlib
import http.client
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.testbed.cache import CACHE, cached_dir

log = logging.getLogger(__name__)

# The newest 26.x on Maven Central (maven-metadata.xml, checked 2026-11); KEYCLOAK_VERSION overrides.
DEFAULT_VERSION = "26.7.3"
KEYCLOAK_VERSION = os.environ.get("KEYCLOAK_VERSION") or DEFAULT_VERSION
# The older line, before 26.2 changed /events (no direction=asc, dateFrom a day only).
# KEYCLOAK_COMPAT_VERSION overrides; 22.0 on starts here (the management port is given from 25).
DEFAULT_COMPAT_VERSION = "25.0.6"
KEYCLOAK_COMPAT_VERSION = os.environ.get("KEYCLOAK_COMPAT_VERSION") or DEFAULT_COMPAT_VERSION
MAVEN = "https://repo.maven.apache.org/maven2/org/keycloak/keycloak-quarkus-dist"

# Build-time options: start-dev re-runs Quarkus' augmentation (~20 s, rewriting lib/quarkus in the
# shared cached home) whenever these change, so every server uses the same ones and the cached home
# is primed with them once, under the cache lock.
BUILD_OPTIONS = ("--db=dev-mem", "--health-enabled=true", "--cache=local")
# A small fixed heap instead of kc.sh's default share of the machine's memory (the tests hold a few
# thousand sessions at most). The JIT stays as it is: C1 only (-XX:TieredStopAtLevel=1) saved ~2 s
# of a ~15 s start but halved provisioning throughput (600 imported users: 4.5 s -> 8.5 s).
JVM_HEAP = "-Xms128m -Xmx1g"
DEFAULT_ADMIN_PASSWORD = "admin-Pa55word"  # a loopback test server; tests read it from the server
READY_PATH = "/realms/master/.well-known/openid-configuration"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: between fork and exec only the call is safe
PORT_CLASH_MESSAGES = ("Address already in use", "seems to be in use by another process")


# --------------------------------------------------------------------------- distribution


def dist_url(version: str) -> str:
    return f"{MAVEN}/{version}/keycloak-quarkus-dist-{version}.tar.gz"


def _download_with_sha1(url: str, path: Path) -> str:
    """Stream `url` to `path` and return its SHA-1, without holding ~180 MB in memory."""
    digest = hashlib.sha1()
    with urllib.request.urlopen(url, timeout=120) as response, path.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _published_sha1(url: str) -> str:
    with urllib.request.urlopen(url + ".sha1", timeout=60) as response:
        return response.read().decode().split()[0].lower()


def _fetch_verified(url: str, archive: Path) -> None:
    try:
        actual = _download_with_sha1(url, archive)
        expected = _published_sha1(url)
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:  # incl. a cut-off body
        raise RuntimeError(f"downloading {url} failed: {exc}") from exc
    if actual != expected:  # Maven Central publishes SHA-1 beside every artifact
        raise RuntimeError(f"{url}: SHA-1 {actual} does not match the published {expected}")


def _prime(home: Path) -> None:
    """Start once so start-dev's augmentation happens here, serialized by the cache lock, and
    never in two test servers sharing the home at the same time."""
    with KeycloakServer(home, https=False):
        pass


def _fill(version: str, out: Path) -> None:
    url = dist_url(version)
    archive = out / "dist.tar.gz"
    started = time.monotonic()
    log.info("downloading %s", url)
    _fetch_verified(url, archive)
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="tar")
    archive.unlink()
    log.info(
        "downloaded, verified and unpacked in %.1fs; first start-dev (Quarkus build) ...", time.monotonic() - started
    )
    started = time.monotonic()
    _prime(out / f"keycloak-{version}")
    log.info("primed in %.1fs", time.monotonic() - started)


def ensure_distribution(version: str = KEYCLOAK_VERSION) -> Path:
    """The unpacked, primed server: downloaded once and cached by version. It is filled in a
    temporary folder renamed into place at the end (cache.cached_dir), so an interrupted fill
    never leaves a half tree where the next run would take it for a whole one."""
    root = cached_dir(f"keycloak/{version}", lambda out: _fill(version, out))
    return root / f"keycloak-{version}"


def is_cached(version: str = KEYCLOAK_VERSION) -> bool:
    return (CACHE / "keycloak" / version / f"keycloak-{version}").is_dir()


# --------------------------------------------------------------------------- server


def free_port() -> int:
    """A port the kernel just handed out on loopback; a rare race is caught by KeycloakServer."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KeycloakStartError(RuntimeError):
    """Keycloak did not come up; the message has the command and the tail of its log."""


class KeycloakServer:
    """`kc.sh start-dev` on loopback: HTTP (and HTTPS with a self-signed certificate, to test TLS
    verification), the management interface on its own free port, an in-memory database."""

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        admin_user: str = "admin",
        admin_password: str = DEFAULT_ADMIN_PASSWORD,
        *,
        https: bool = True,
    ) -> None:
        self.home = home
        self.admin_user, self.admin_password = admin_user, admin_password
        self.https = https
        self._fixed_port = port is not None
        self.workdir = Path(tempfile.mkdtemp(prefix="keycloak-"))
        self.tls_dir = self.workdir  # the certificate and key live beside the log
        self.ca_file = self.workdir / "cert.pem"
        self.log_path = Path(os.environ.get("KEYCLOAK_LOG") or self.workdir / "keycloak.log")
        self._process: subprocess.Popen[bytes] | None = None
        self._pick_ports(port)

    def _pick_ports(self, port: int | None) -> None:
        self.port = port or free_port()
        self.https_port, self.management_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.https_url = f"https://127.0.0.1:{self.https_port}"

    @property
    def version(self) -> str:
        """The distribution's version: every home is named keycloak-<version>, as unpacked."""
        return self.home.name.removeprefix("keycloak-")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        command = [
            str(self.home / "bin" / "kc.sh"),
            "start-dev",
            *BUILD_OPTIONS,
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
        ]
        if self._major() >= 25:
            # Health is on the management interface (default 9000, since 25): a free port of
            # its own, so two servers never clash.
            command.append(f"--http-management-port={self.management_port}")
        if self.https:
            key = self.workdir / "key.pem"
            command += [
                f"--https-port={self.https_port}",
                f"--https-certificate-file={self.ca_file}",
                f"--https-certificate-key-file={key}",
            ]
        else:
            command.append(f"--https-port={self.https_port}")  # never the default 8443 either
        return command

    def _major(self) -> int:
        """The major version from the home's name; a home named otherwise counts as 26 (as in
        the test bed's own tests)."""
        major = re.match(r"\d+", self.version)
        return int(major.group()) if major else 26

    def _environment(self) -> dict[str, str]:
        # JAVA_OPTS_KC_HEAP and JAVA_OPTS_APPEND from the caller's environment still win.
        if self._major() < 26:
            settings = {
                "KEYCLOAK_ADMIN": self.admin_user,
                "KEYCLOAK_ADMIN_PASSWORD": self.admin_password,
                # Before 26 the in-memory H2 database is dropped when its pool reaps the last
                # idle connection, so a server left idle for minutes came back with no realms.
                # Set here, not as an option: kc.sh before 25 evaluates its arguments, and `;`
                # ends one.
                "KC_DB_URL_PROPERTIES": ";DB_CLOSE_DELAY=-1",
            }
        else:  # 26.0 on (and a home named otherwise, as in the test bed's own tests)
            settings = {
                "KC_BOOTSTRAP_ADMIN_USERNAME": self.admin_user,
                "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            }
        return {"JAVA_OPTS_KC_HEAP": JVM_HEAP, **os.environ, **settings}

    def _make_certificate(self) -> None:
        if self.ca_file.exists():
            return
        request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
        names = ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
        files = ["-keyout", str(self.workdir / "key.pem"), "-out", str(self.ca_file)]
        result = subprocess.run([*request, *names, *files], capture_output=True, text=True)
        if result.returncode != 0:
            raise KeycloakStartError(f"`{' '.join(request)}` failed: {result.stderr.strip()}")

    def _launch(self) -> None:
        command = self.command()
        if not Path(command[0]).is_file():
            raise KeycloakStartError(f"`{' '.join(command)}` cannot run: {command[0]} does not exist")
        with self.log_path.open("wb") as output:
            # A session of its own: stop() signals kc.sh and the JVM together, and a Ctrl-C in the
            # terminal reaches pytest (which stops us cleanly) rather than the JVM half-way.
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # The kernel ties PDEATHSIG to the launching *thread*: from a worker thread, the
                # server would die with that thread, so only the main thread asks for it.
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        atexit.register(self.stop)

    def start(self, timeout: float = 240) -> "KeycloakServer":
        """Start and wait until the master realm's discovery document answers 200."""
        if self.https:
            self._make_certificate()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            self._launch()
            if self._wait_ready(timeout):
                return self
            # Another process took one of our ports between free_port() and Keycloak's bind.
            message = self._failure("could not bind its ports")
            self.stop()
            if attempt == attempts:
                raise KeycloakStartError(message)
            self._pick_ports(None)
        return self

    def _wait_ready(self, timeout: float) -> bool:
        """True once ready, False when Keycloak exited because a port was taken; raises otherwise."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        url = self.base_url + READY_PATH
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                if any(clash in self.log_tail(80) for clash in PORT_CLASH_MESSAGES):
                    return False
                message = self._failure(f"exited with {self._process.returncode}")
                self.stop()
                raise KeycloakStartError(message)
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.5)
        message = self._failure(f"was not ready within {timeout:.0f}s")
        self.stop()
        raise KeycloakStartError(message)

    def _failure(self, what: str) -> str:
        return f"`{' '.join(self.command())}` {what} (log: {self.log_path}):\n{self.log_tail()}"

    def stop(self) -> None:
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)  # kc.sh forwards it too; Keycloak stops in ~1 s
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> "KeycloakServer":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies, even by SIGKILL, where
    atexit never runs (kc.sh forwards SIGTERM to the JVM, which shuts down)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)


# --------------------------------------------------------------------------- admin API


@dataclass(frozen=True)
class ClientInfo:
    uuid: str
    client_id: str
    secret: str | None


class KeycloakAdminError(RuntimeError):
    """The Admin API refused a provisioning call; the message has the call and Keycloak's answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# One PBKDF2 round instead of the default hashing: hundreds of test logins take seconds.
CHEAP_PASSWORD_POLICY = "hashAlgorithm(pbkdf2-sha256) and hashIterations(1)"
WRONG_PASSWORD = "certainly-not-the-password"


class KeycloakAdmin:
    """Provisioning through Keycloak's own APIs, as an admin of `auth_realm` (sync, for tests).

    The admin token is kept fresh: renewed shortly before it expires, and once more on a 401.
    Safe to share between threads (login_many does). Passwords and tokens never reach a message.
    """

    def __init__(
        self, base_url: str, username: str, password: str, *, auth_realm: str = "master", verify: bool | str = True
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth_realm = auth_realm
        self._username, self._password = username, password
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        self._http = httpx.Client(base_url=self.base_url, timeout=60, limits=limits, verify=verify)
        self._lock = threading.Lock()
        self._token, self._expires = "", 0.0

    def close(self) -> None:
        self._http.close()

    # ---- token

    def _renew(self) -> None:
        response = self._http.post(
            f"/realms/{self.auth_realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self._username,
                "password": self._password,
            },
        )
        if response.status_code != 200:
            raise KeycloakAdminError(
                f"admin login as {self._username!r} to realm {self.auth_realm!r} answered "
                f"{response.status_code}: {response.text[:200]}",  # Keycloak's error; no secret in it
                401,
            )
        body = response.json()
        # Renew a little early (10 s, less for short-lived tokens): a token that expires in
        # flight is a confusing 401 in a test.
        lifetime = float(body["expires_in"])
        self._token, self._expires = body["access_token"], time.monotonic() + lifetime - min(10.0, lifetime / 5)

    def _headers(self, force: bool = False) -> dict[str, str]:
        with self._lock:
            if force or time.monotonic() > self._expires:
                self._renew()
            return {"Authorization": f"Bearer {self._token}"}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An Admin API call below /admin/realms; raises KeycloakAdminError on 4xx/5xx."""
        url = f"/admin/realms{path}"
        response = self._http.request(method, url, headers=self._headers(), **kwargs)
        if response.status_code == 401:  # revoked or expired early: one fresh token, one retry
            response = self._http.request(method, url, headers=self._headers(force=True), **kwargs)
        if response.status_code >= 400:
            raise KeycloakAdminError(
                f"{method} {url} answered {response.status_code}: {response.text[:300]}", response.status_code
            )
        return response

    def realm_request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call below /realms with the admin token (a plugin's realm resource, e.g. /r/webhooks)."""
        response = self._http.request(method, f"/realms{path}", headers=self._headers(), **kwargs)
        if response.status_code >= 400:
            raise KeycloakAdminError(
                f"{method} /realms{path} answered {response.status_code}: {response.text[:300]}", response.status_code
            )
        return response

    def get(self, path: str, **params: Any) -> Any:
        """GET an Admin API path below /admin/realms, e.g. get("/r/client-session-stats")."""
        return self.request("GET", path, params=params or None).json()

    # ---- realms

    def create_realm(self, name: str, **settings: Any) -> None:
        self.request("POST", "", json={"realm": name, "enabled": True, **settings})

    def update_realm(self, name: str, **settings: Any) -> None:
        self.request("PUT", f"/{name}", json=settings)

    def delete_realm(self, name: str) -> None:
        self.request("DELETE", f"/{name}")

    def set_cheap_password_hashing(self, realm: str) -> None:
        """Applies to passwords set afterwards: call it before creating users."""
        self.update_realm(realm, passwordPolicy=CHEAP_PASSWORD_POLICY)

    def enable_events(self, realm: str, *, user: bool = True, admin: bool = True) -> None:
        """Store user events of every type (not only Keycloak's default selection) and admin
        events with their representations."""
        settings: dict[str, Any] = {
            "eventsEnabled": user,
            "adminEventsEnabled": admin,
            "adminEventsDetailsEnabled": admin,
        }
        if user:
            settings["enabledEventTypes"] = self.event_types()
        self.update_realm(realm, **settings)

    def event_types(self) -> list[str]:
        """Every user event type this server knows, from its server info."""
        response = self._http.get("/admin/serverinfo", headers=self._headers())
        response.raise_for_status()
        return sorted(response.json()["enums"]["eventType"])

    # ---- clients

    def create_client(
        self,
        realm: str,
        client_id: str,
        *,
        public: bool = True,
        service_account: bool = False,
        direct_access: bool = True,
    ) -> ClientInfo:
        """A client for password grants (direct access) and/or client_credentials (service account)."""
        representation = {
            "clientId": client_id,
            "publicClient": public,
            "serviceAccountsEnabled": service_account,
            "directAccessGrantsEnabled": direct_access,
            "standardFlowEnabled": False,  # no browser flow in tests: no redirect URIs to invent
        }
        self.request("POST", f"/{realm}/clients", json=representation)
        uuid = self.client_uuid(realm, client_id)
        secret = None if public else self.get(f"/{realm}/clients/{uuid}/client-secret")["value"]
        return ClientInfo(uuid, client_id, secret)

    def client_uuid(self, realm: str, client_id: str) -> str:
        found = self.get(f"/{realm}/clients", clientId=client_id)
        if not found:
            raise KeycloakAdminError(f"no client {client_id!r} in realm {realm!r}", 404)
        return str(found[0]["id"])

    def _realm_management_roles(self, realm: str, roles: Iterable[str]) -> tuple[str, list[dict[str, Any]]]:
        wanted = set(roles)
        management = self.client_uuid(realm, "realm-management")
        representations = [r for r in self.get(f"/{realm}/clients/{management}/roles") if r["name"] in wanted]
        missing = wanted - {r["name"] for r in representations}
        if missing:
            raise KeycloakAdminError(f"realm-management in {realm!r} has no role(s) {sorted(missing)}", 404)
        return management, representations

    def grant_user_realm_management_roles(self, realm: str, user_id: str, roles: Iterable[str]) -> None:
        management, representations = self._realm_management_roles(realm, roles)
        self.request("POST", f"/{realm}/users/{user_id}/role-mappings/clients/{management}", json=representations)

    def grant_realm_management_roles(self, realm: str, client_uuid: str, roles: Iterable[str]) -> None:
        """Roles for a client's service account (client_credentials), e.g. view-users."""
        account = self.get(f"/{realm}/clients/{client_uuid}/service-account-user")
        self.grant_user_realm_management_roles(realm, account["id"], roles)

    # ---- users

    @staticmethod
    def user_representation(
        username: str,
        password: str,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str = "Test",
    ) -> dict[str, Any]:
        # Without first name, last name and a verified e-mail the password grant answers
        # "Account is not fully set up" (the user profile requires them).
        return {
            "username": username,
            "enabled": True,
            "email": email or f"{username}@example.org",
            "emailVerified": True,
            "firstName": first_name or username.capitalize(),
            "lastName": last_name,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }

    def create_user(
        self,
        realm: str,
        username: str,
        password: str,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str = "Test",
    ) -> str:
        """Create a user who can log in at once; returns their id."""
        body = self.user_representation(username, password, email=email, first_name=first_name, last_name=last_name)
        response = self.request("POST", f"/{realm}/users", json=body)
        # 201 with Location: .../users/<id>; saves a look-up.
        return response.headers["Location"].rsplit("/", 1)[-1]

    def create_users_bulk(self, realm: str, users: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Many users in one partialImport call; returns username -> id (existing ones skipped)."""
        # partialImport skips what POST /users does for a new user: the realm's default roles
        # (offline_access among them), so they are named here.
        default_roles = [f"default-roles-{realm}"]
        representations = [{**self.user_representation(u, p), "realmRoles": default_roles} for u, p in users]
        body = {"ifResourceExists": "SKIP", "users": representations}
        result = self.request("POST", f"/{realm}/partialImport", json=body).json()
        return {r["resourceName"]: r["id"] for r in result.get("results", []) if r.get("resourceType") == "USER"}

    def user_id(self, realm: str, username: str) -> str:
        found = self.get(f"/{realm}/users", username=username, exact="true")
        if not found:
            raise KeycloakAdminError(f"no user {username!r} in realm {realm!r}", 404)
        return str(found[0]["id"])

    def logout_user(self, realm: str, user_id: str) -> None:
        """End every session of the user (online and offline), as an admin."""
        self.request("POST", f"/{realm}/users/{user_id}/logout")

    # ---- sessions and events, through the realm's own OpenID Connect endpoints

    def _oidc(self, realm: str, endpoint: str, data: dict[str, str]) -> httpx.Response:
        return self._http.post(f"/realms/{realm}/protocol/openid-connect/{endpoint}", data=data)

    def login(
        self,
        realm: str,
        client_id: str,
        username: str,
        password: str,
        *,
        client_secret: str | None = None,
        offline: bool = False,
    ) -> dict[str, Any]:
        """A password grant: one new real session (an offline one with offline=True); returns
        the token response (access_token, refresh_token, session_state, ...)."""
        data = {"grant_type": "password", "client_id": client_id, "username": username, "password": password}
        if client_secret:
            data["client_secret"] = client_secret
        if offline:
            data["scope"] = "openid offline_access"
        response = self._oidc(realm, "token", data)
        if response.status_code != 200:
            raise KeycloakAdminError(
                f"login of {username!r} to {realm}/{client_id} answered {response.status_code}: {response.text[:300]}",
                response.status_code,
            )
        return dict(response.json())

    def failed_login(self, realm: str, client_id: str, username: str) -> None:
        """A wrong password: Keycloak records a LOGIN_ERROR event (invalid_user_credentials)."""
        data = {"grant_type": "password", "client_id": client_id, "username": username, "password": WRONG_PASSWORD}
        response = self._oidc(realm, "token", data)
        if response.status_code not in (400, 401):  # 401 invalid_grant "Invalid user credentials"
            raise KeycloakAdminError(
                f"a wrong password for {username!r} answered {response.status_code}: {response.text[:200]}",
                response.status_code,
            )

    def logout(self, realm: str, client_id: str, refresh_token: str, client_secret: str | None = None) -> None:
        """End the session behind a refresh token (an offline token ends the offline session)."""
        data = {"client_id": client_id, "refresh_token": refresh_token}
        if client_secret:
            data["client_secret"] = client_secret
        response = self._oidc(realm, "logout", data)
        if response.status_code not in (200, 204):
            raise KeycloakAdminError(f"logout from {realm}/{client_id} answered {response.status_code}", 400)

    def refresh(self, realm: str, client_id: str, refresh_token: str) -> dict[str, Any] | None:
        """A refresh-token grant: the session's last refresh moves to now; None once it ended."""
        data = {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": refresh_token}
        response = self._oidc(realm, "token", data)
        if response.status_code == 400:  # invalid_grant: the session ended meanwhile
            return None
        if response.status_code != 200:
            raise KeycloakAdminError(f"refresh in {realm}/{client_id} answered {response.status_code}", 400)
        return dict(response.json())

    def login_many(
        self,
        realm: str,
        client_id: str,
        credentials: Iterable[tuple[str, str]],
        concurrency: int = 8,
        *,
        client_secret: str | None = None,
        offline: bool = False,
    ) -> list[dict[str, Any]]:
        """One session per (username, password), `concurrency` grants in flight; token responses
        in the order given."""

        def one(pair: tuple[str, str]) -> dict[str, Any]:
            return self.login(realm, client_id, *pair, client_secret=client_secret, offline=offline)

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, credentials))

    def __enter__(self) -> "KeycloakAdmin":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# --------------------------------------------------------------------------- CLI


def fetch(version: str = KEYCLOAK_VERSION) -> str:
    """Make sure the distribution is cached; say what was done and how long it took."""
    started = time.monotonic()
    cached = is_cached(version)
    home = ensure_distribution(version)
    took = time.monotonic() - started
    what = "reused cached" if cached else f"downloaded {dist_url(version)}, verified its SHA-1, unpacked and primed"
    return f"Keycloak {version}: {what} at {home} in {took:.1f}s"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args not in (["fetch"], ["fetch", "--compat"]):
        sys.exit("usage: python -m tests.testbed.keycloak fetch [--compat]  (--compat: the older line)")
    logging.basicConfig(format="%(message)s")  # our progress on stderr, not httpx's requests
    log.setLevel(logging.INFO)
    try:
        print(fetch(KEYCLOAK_COMPAT_VERSION if "--compat" in args else KEYCLOAK_VERSION), flush=True)
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
