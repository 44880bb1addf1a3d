"""A real Keycloak for tests and the demo: the official distribution from Maven Central,
started with `kc.sh start-dev` on loopback, provisioned through its own Admin API.

Shapes this project relies on (Keycloak 26, checked against the running server):
- client-session-stats: [{"id": uuid, "clientId": str, "active": "3", "offline": "1"}],
  only clients that have sessions, counts as strings;
- events: newest first, each with an "id", "time" (epoch ms), "type", "clientId",
  "userId", "error", "details" {"username", ...}; admin-events: "id", "time",
  "operationType", "resourceType", "authDetails";
- an unknown realm: 404 {"error": "Realm not found."}.
"""

import atexit
import hashlib
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.testbed.cache import cached_dir

KEYCLOAK_VERSION = os.environ.get("KEYCLOAK_VERSION", "26.7.3")
MAVEN = "https://repo.maven.apache.org/maven2/org/keycloak/keycloak-quarkus-dist"


def _download(url: str, path: Path) -> None:
    with urllib.request.urlopen(url, timeout=120) as response, path.open("wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)


def _fetch(version: str, out: Path) -> None:
    url = f"{MAVEN}/{version}/keycloak-quarkus-dist-{version}.tar.gz"
    archive = out / "dist.tar.gz"
    try:
        _download(url, archive)
        with urllib.request.urlopen(url + ".sha1", timeout=60) as response:
            expected = response.read().decode().split()[0]
    except OSError as exc:
        raise RuntimeError(f"downloading {url} failed: {exc}") from exc
    digest = hashlib.sha1(archive.read_bytes()).hexdigest()  # Maven Central publishes SHA-1
    if digest != expected:
        raise RuntimeError(f"{url}: SHA-1 {digest} does not match the published {expected}")
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="tar")
    archive.unlink()


def ensure_distribution(version: str = KEYCLOAK_VERSION) -> Path:
    """The unpacked server, downloaded once and cached by version."""
    root = cached_dir(f"keycloak/{version}", lambda out: _fetch(version, out))
    return root / f"keycloak-{version}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KeycloakServer:
    def __init__(self, home: Path, admin_user: str = "admin", admin_password: str = "admin-Pa55word") -> None:
        self.home = home
        self.admin_user, self.admin_password = admin_user, admin_password
        self.port, self.https_port = free_port(), free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # HTTPS beside HTTP, with a self-signed certificate, to test TLS verification.
        self.https_url = f"https://127.0.0.1:{self.https_port}"
        self.tls_dir = Path(tempfile.mkdtemp(prefix="kc-tls-"))
        self.ca_file = self.tls_dir / "cert.pem"
        self.log_path = Path(os.environ.get("KEYCLOAK_LOG", f"/tmp/keycloak-{self.port}.log"))
        self._process: subprocess.Popen[bytes] | None = None

    def _make_certificate(self) -> None:
        key = self.tls_dir / "key.pem"
        request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
        names = ["-addext", "subjectAltName=IP:127.0.0.1"]
        subprocess.run(
            [*request, *names, "-keyout", str(key), "-out", str(self.ca_file)], check=True, capture_output=True
        )

    def start(self, timeout: float = 240) -> None:
        self._make_certificate()
        command = [
            str(self.home / "bin" / "kc.sh"),
            "start-dev",
            "--db=dev-mem",
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
            f"--https-port={self.https_port}",
            f"--https-certificate-file={self.ca_file}",
            f"--https-certificate-key-file={self.tls_dir / 'key.pem'}",
            f"--http-management-port={free_port()}",
            "--health-enabled=true",
            "--cache=local",
        ]
        env = {
            **os.environ,
            "KC_BOOTSTRAP_ADMIN_USERNAME": self.admin_user,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "JAVA_OPTS_KC_HEAP": "-XX:MaxRAMPercentage=25 -XX:InitialRAMPercentage=5",
        }
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        ready = f"{self.base_url}/realms/master/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"`{' '.join(command)}` exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(ready, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Keycloak not ready within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class ClientInfo:
    uuid: str
    client_id: str
    secret: str | None


class KeycloakAdmin:
    """Provisioning through the Admin API, as the master realm's admin (sync, for tests)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self._username, self._password = username, password
        self._http = httpx.Client(base_url=base_url, timeout=60)
        self._token, self._expires = "", 0.0

    def _headers(self) -> dict[str, str]:
        if time.monotonic() > self._expires:
            response = self._http.post(
                "/realms/master/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": self._username,
                    "password": self._password,
                },
            )
            response.raise_for_status()
            body = response.json()
            self._token, self._expires = body["access_token"], time.monotonic() + body["expires_in"] - 10
        return {"Authorization": f"Bearer {self._token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, f"/admin/realms{path}", headers=self._headers(), **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response

    # realms
    def create_realm(self, name: str, **settings: Any) -> None:
        self._call("POST", "", json={"realm": name, "enabled": True, **settings})

    def update_realm(self, name: str, **settings: Any) -> None:
        self._call("PUT", f"/{name}", json=settings)

    def delete_realm(self, name: str) -> None:
        self._call("DELETE", f"/{name}")

    def set_cheap_password_hashing(self, realm: str) -> None:
        """One PBKDF2 round: hundreds of test logins take seconds, not minutes."""
        self.update_realm(realm, passwordPolicy="hashAlgorithm(pbkdf2-sha256) and hashIterations(1)")

    def enable_events(self, realm: str, *, user: bool = True, admin: bool = True) -> None:
        self.update_realm(realm, eventsEnabled=user, adminEventsEnabled=admin, adminEventsDetailsEnabled=admin)

    # clients
    def create_client(
        self,
        realm: str,
        client_id: str,
        *,
        public: bool = True,
        service_account: bool = False,
        direct_access: bool = True,
    ) -> ClientInfo:
        self._call(
            "POST",
            f"/{realm}/clients",
            json={
                "clientId": client_id,
                "publicClient": public,
                "serviceAccountsEnabled": service_account,
                "directAccessGrantsEnabled": direct_access,
                "standardFlowEnabled": False,
            },
        )
        uuid = self.client_uuid(realm, client_id)
        secret = None if public else self._call("GET", f"/{realm}/clients/{uuid}/client-secret").json()["value"]
        return ClientInfo(uuid, client_id, secret)

    def client_uuid(self, realm: str, client_id: str) -> str:
        return str(self._call("GET", f"/{realm}/clients", params={"clientId": client_id}).json()[0]["id"])

    def _realm_management_roles(self, realm: str, roles: list[str]) -> tuple[str, list[dict[str, Any]]]:
        management = self.client_uuid(realm, "realm-management")
        available = self._call("GET", f"/{realm}/clients/{management}/roles").json()
        return management, [r for r in available if r["name"] in roles]

    def grant_realm_management_roles(self, realm: str, client_uuid: str, roles: list[str]) -> None:
        user = self._call("GET", f"/{realm}/clients/{client_uuid}/service-account-user").json()
        self.grant_user_realm_management_roles(realm, user["id"], roles)

    def grant_user_realm_management_roles(self, realm: str, user_id: str, roles: list[str]) -> None:
        management, representations = self._realm_management_roles(realm, roles)
        self._call("POST", f"/{realm}/users/{user_id}/role-mappings/clients/{management}", json=representations)

    # users
    @staticmethod
    def _user(username: str, password: str, email: str | None) -> dict[str, Any]:
        return {
            "username": username,
            "enabled": True,
            "email": email or f"{username}@example.org",
            "emailVerified": True,
            "firstName": username.capitalize(),
            "lastName": "Test",
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        }

    def create_user(self, realm: str, username: str, password: str, *, email: str | None = None) -> str:
        self._call("POST", f"/{realm}/users", json=self._user(username, password, email))
        return self.user_id(realm, username)

    def create_users_bulk(self, realm: str, users: list[tuple[str, str]]) -> None:
        body = {"ifResourceExists": "SKIP", "users": [self._user(u, p, None) for u, p in users]}
        self._call("POST", f"/{realm}/partialImport", json=body)

    def user_id(self, realm: str, username: str) -> str:
        found = self._call("GET", f"/{realm}/users", params={"username": username, "exact": "true"}).json()
        return str(found[0]["id"])

    # sessions, through the realm's own token endpoint
    def _token_call(self, realm: str, data: dict[str, str]) -> httpx.Response:
        return self._http.post(f"/realms/{realm}/protocol/openid-connect/token", data=data)

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
        """A password grant: one real session (and an offline one with offline=True)."""
        data = {"grant_type": "password", "client_id": client_id, "username": username, "password": password}
        if client_secret:
            data["client_secret"] = client_secret
        if offline:
            data["scope"] = "openid offline_access"
        response = self._token_call(realm, data)
        if response.status_code != 200:
            raise RuntimeError(f"login of {username} to {realm}/{client_id} failed: {response.text[:300]}")
        return dict(response.json())

    def failed_login(self, realm: str, client_id: str, username: str) -> None:
        """A wrong password: Keycloak records a LOGIN_ERROR event."""
        data = {"grant_type": "password", "client_id": client_id, "username": username, "password": "wrong-password"}
        response = self._token_call(realm, data)
        if response.status_code not in (400, 401):  # 26.7 answers 400 invalid_grant
            raise RuntimeError(f"a wrong password for {username} got {response.status_code}: {response.text[:200]}")

    def logout(self, realm: str, client_id: str, refresh_token: str, client_secret: str | None = None) -> None:
        data = {"client_id": client_id, "refresh_token": refresh_token}
        if client_secret:
            data["client_secret"] = client_secret
        response = self._http.post(f"/realms/{realm}/protocol/openid-connect/logout", data=data)
        if response.status_code not in (200, 204):
            raise RuntimeError(f"logout from {realm}/{client_id} failed: {response.status_code}")

    def login_many(self, realm: str, client_id: str, credentials: list[tuple[str, str]], concurrency: int = 8) -> None:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda c: self.login(realm, client_id, *c), credentials))


def main() -> None:
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m tests.testbed.keycloak fetch")
    started = time.monotonic()
    home = ensure_distribution()
    print(f"Keycloak {KEYCLOAK_VERSION} at {home} ({time.monotonic() - started:.1f}s)")


if __name__ == "__main__":
    main()
