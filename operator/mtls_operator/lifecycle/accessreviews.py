"""SubjectAccessReviews for a certificate's requester (api.requester) — `use` of a cluster issuer, `get` of a Secret
the certificate names — remembered a short while: a renewal wave of thousands of certificates of a few requesters
asks RBAC a few times, not thousands, and a revoked binding takes effect within the TTL."""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Callable

from mtls_operator.api.names import CLUSTER_ISSUER_PLURAL, GROUP, USE_VERB
from mtls_operator.api.requester import Requester
from mtls_operator.kube.client import KubeIO

REVIEW_TTL = datetime.timedelta(seconds=60)  # the default of --use-review-seconds (runtime.settings says why)
MAX_REMEMBERED = 4096  # answers kept, one per (requester, object, verb); the oldest go first


class AccessReviews:
    def __init__(
        self,
        kube: KubeIO,
        clock: Callable[[], datetime.datetime],
        ttl: datetime.timedelta = REVIEW_TTL,
        believed: Callable[[], bool] = lambda: False,
        required: bool = False,
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.ttl = ttl
        # Whether an admission policy checks the requester records (lifecycle.issuers.IssuerDirectory): without
        # one a record names whoever its writer liked, and no answer about that name means anything.
        self.believed = believed
        self.required = required  # --require-requester: Secrets are read for a believed requester only
        self._answers: OrderedDict[tuple[Requester, str, str, str], tuple[datetime.datetime, bool]] = OrderedDict()

    async def may_use_cluster_issuer(self, requester: Requester, issuer: str) -> bool:
        return await self._review(requester, GROUP, CLUSTER_ISSUER_PLURAL, "", issuer, USE_VERB)

    async def may_read_secret(self, requester: Requester, namespace: str, name: str) -> bool:
        return await self._review(requester, "", "secrets", namespace, name, "get")

    async def _review(
        self, requester: Requester, group: str, resource: str, namespace: str, name: str, verb: str
    ) -> bool:
        key = (requester, f"{group}/{resource}", f"{namespace}/{name}", verb)
        now = self.clock()
        remembered = self._answers.get(key)
        if remembered is not None and now - remembered[0] < self.ttl:
            return remembered[1]
        allowed = await self.kube.review_resource_access(
            requester.username, requester.groups, group, resource, name, verb, namespace
        )
        self._answers[key] = (now, allowed)
        self._answers.move_to_end(key)
        while len(self._answers) > MAX_REMEMBERED:
            self._answers.popitem(last=False)
        return allowed
