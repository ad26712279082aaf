"""Who may read /metrics: the bearer token's owner, as the apiserver says (a TokenReview), if RBAC lets them `get`
the non-resource URL /metrics (a SubjectAccessReview) — what controller-runtime's secure metrics and
kube-rbac-proxy do. The series name every certificate's namespace, name and common name (partners' host names):
not for every Pod in the cluster.

Answers are kept for a minute per token (by its SHA-256, never the token), at most MAX_ENTRIES of them, and at most
REVIEWS_AT_ONCE reviews run at a time: a flood of made-up tokens costs the apiserver a bounded rate of reviews and
the operator a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict

from mtls_operator.kube.client import KubeIO

log = logging.getLogger(__name__)

TTL_SECONDS = 60.0
MAX_ENTRIES = 1024
REVIEWS_AT_ONCE = 4
METRICS_PATH = "/metrics"


class MetricsAuthorizer:
    def __init__(self, kube: KubeIO) -> None:
        self.kube = kube
        self._answers: OrderedDict[bytes, tuple[float, int]] = OrderedDict()
        self._reviews = asyncio.Semaphore(REVIEWS_AT_ONCE)

    async def status_for(self, authorization: str | None) -> int:
        """200, 401 (no or unknown token) or 403 (known, not allowed); 503 when the apiserver cannot say."""
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return 401
        token = authorization[7:].strip()
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._answers.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._reviews:
            try:
                status = await self._review(token)
            except Exception as exc:  # an outage: say so, remember nothing
                log.warning("could not review a /metrics request's token: %s", exc)
                return 503
        self._answers[digest] = (now + TTL_SECONDS, status)
        self._answers.move_to_end(digest)
        while len(self._answers) > MAX_ENTRIES:
            self._answers.popitem(last=False)
        return status

    async def _review(self, token: str) -> int:
        review = await self.kube.review_token(token)
        if not review.get("authenticated"):
            return 401
        user = review.get("user") or {}
        return 200 if await self.kube.review_access(user, METRICS_PATH, "get") else 403
