"""Who may read /metrics in the operator: the bearer token is authenticated with a TokenReview
and authorised with a SubjectAccessReview for `get` on the non-resource URL /metrics, as
kubebuilder's secure metrics do. Grant it with the ClusterRole keycloak-monitor-metrics-reader.

Verdicts are cached briefly per token (by its hash), so a scrape every few seconds costs the
apiserver two calls a minute, and a revoked token stops working within CACHE_SECONDS.
"""

import asyncio
import hashlib
import logging
import time

from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)

CACHE_SECONDS = 30.0
CACHE_ENTRIES = 1024
REVIEW_TIMEOUT = 10.0


class KubernetesMetricsAuth:
    def __init__(self, api: client.ApiClient, path: str = "/metrics") -> None:
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)
        self._path = path
        self._verdicts: dict[str, tuple[float, int]] = {}

    async def __call__(self, request: web.Request) -> web.Response | None:
        """None lets the request through; otherwise the 401 or 403 to answer."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _refusal(401)
        status = await self.verdict(token.strip())
        return None if status == 200 else _refusal(status)

    async def verdict(self, token: str) -> int:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._verdicts.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            async with asyncio.timeout(REVIEW_TIMEOUT):
                status = await self._review(token)
        except (ApiException, TimeoutError, OSError) as exc:  # not cached: the next scrape asks again
            log.warning("cannot review a /metrics token with the apiserver: %s", type(exc).__name__)
            return 503
        if len(self._verdicts) >= CACHE_ENTRIES:
            self._verdicts.clear()
        self._verdicts[key] = (now + CACHE_SECONDS, status)
        return status

    async def _review(self, token: str) -> int:
        review = await self._authn.create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)), _request_timeout=REVIEW_TIMEOUT
        )
        user = review.status.user if review.status and review.status.authenticated else None
        if user is None:
            return 401
        access = await self._authz.create_subject_access_review(
            client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user=user.username,
                    groups=user.groups,
                    uid=user.uid,
                    extra=user.extra,
                    non_resource_attributes=client.V1NonResourceAttributes(path=self._path, verb="get"),
                )
            ),
            _request_timeout=REVIEW_TIMEOUT,
        )
        return 200 if access.status and access.status.allowed else 403


def _refusal(status: int) -> web.Response:
    texts = {401: "Unauthorized\n", 403: "Forbidden\n", 503: "cannot check the token now\n"}
    headers = {"WWW-Authenticate": 'Bearer realm="keycloak-monitor"'} if status == 401 else None
    return web.Response(status=status, text=texts[status], headers=headers)
