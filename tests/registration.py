"""Signing up through Keycloak's own registration form, as a browser does."""

import html
import re
from urllib.parse import urlencode

import httpx

from tests.testbed.keycloak import KeycloakAdmin

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never followed: the test stops at the redirect


def enable_registration(admin: KeycloakAdmin, realm: str, client_id: str = "signup") -> None:
    """Self-registration on, and a browser-flow client to register through."""
    admin.update_realm(realm, registrationAllowed=True)
    client = {
        "clientId": client_id,
        "publicClient": True,
        "standardFlowEnabled": True,
        "directAccessGrantsEnabled": False,
        "redirectUris": [REDIRECT_URI],
    }
    admin.request("POST", f"/{realm}/clients", json=client)


def register(base_url: str, realm: str, username: str, password: str, client_id: str = "signup") -> str:
    """Fetch the registration form, fill it in and post it with the form's cookies; returns where
    Keycloak redirects the browser (the client's redirect URI with a code)."""
    query = urlencode(
        {"client_id": client_id, "response_type": "code", "scope": "openid", "redirect_uri": REDIRECT_URI}
    )
    with httpx.Client(base_url=base_url, follow_redirects=True, timeout=30) as browser:
        page = browser.get(f"/realms/{realm}/protocol/openid-connect/registrations?{query}")
        page.raise_for_status()
        match = re.search(r'<form[^>]*id="kc-register-form"[^>]*action="([^"]+)"', page.text)
        if match is None:
            match = re.search(r'<form[^>]*action="([^"]*registration[^"]*)"', page.text)
        assert match is not None, f"no registration form in {page.url}: {page.text[:500]}"
        form = {
            "firstName": username.capitalize(),
            "lastName": "Newcomer",
            "email": f"{username}@example.org",
            "username": username,
            "password": password,
            "password-confirm": password,
        }
        # Keycloak marks its login cookies Secure; browsers still send them to http://127.0.0.1
        # (a potentially trustworthy origin), which http.cookiejar does not, so they go by hand.
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookies.jar)
        answer = browser.post(
            html.unescape(match.group(1)), data=form, headers={"Cookie": cookies}, follow_redirects=False
        )
        location = answer.headers.get("Location", "")
        assert answer.status_code == 302 and location.startswith(REDIRECT_URI), (
            f"registration answered {answer.status_code}: {answer.text[:500]}"
        )
        return location
