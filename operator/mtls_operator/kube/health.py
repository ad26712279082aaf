"""Is the Kubernetes API reachable? ApiProbe asks every few seconds; ApiHealth keeps the answer, with one log line
when the API goes away, one when it is back, and counts in between.

Without this, every failed reconcile attempt during an apiserver outage logged a full urllib3 traceback: a 30 s
outage with a few certificates made 446 lines, and at 10,000 certificates the flood hides the line that matters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import GROUP, PLURAL, VERSION
from mtls_operator.kube.config import client_without_retries

log = logging.getLogger(__name__)

UNAVAILABLE_STATUSES = {429, 500, 502, 503, 504}


def is_outage(exc: BaseException) -> bool:
    """An error that says the API is away or overloaded, not that our request was wrong."""
    if isinstance(exc, ApiException):
        return exc.status in UNAVAILABLE_STATUSES or not exc.status
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


class ApiHealth:
    FLAP_SECONDS = 30.0  # a failure this soon after recovering continues the same outage in the log

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.down_since: float | None = None
        self.failures = 0
        self._recovered_at: float | None = None
        self._quiet = False  # this outage continues one already logged (the API flapped while coming back)

    @property
    def reachable(self) -> bool:
        return self.down_since is None

    def outage_seconds(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.down_since is None:
            self.down_since = self.clock()
            self._quiet = self._recovered_at is not None and self.down_since - self._recovered_at < self.FLAP_SECONDS
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            if self._quiet:
                log.debug("Kubernetes API unreachable again (%s), right after recovering", reason)
            else:
                log.warning(
                    "Kubernetes API unreachable (%s); retrying with backoff, further failures are counted", reason
                )

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.log(
                logging.DEBUG if self._quiet else logging.INFO,
                "Kubernetes API reachable again after %.0fs; %d requests failed meanwhile",
                self.outage_seconds(), self.failures,
            )  # fmt: skip
            self.down_since = None
            self.failures = 0
            self._recovered_at = self.clock()


class ApiProbe:
    """Tells `health` whether the API can serve us: GET /readyz, then a one-item list of our resource.

    The apiserver's own /readyz notices a dead etcd only after 15-30 s (longer under load); the list is a
    consistent read, so it needs etcd and fails (or times out) as soon as etcd is gone. The probe has its own thread
    and client: during an etcd outage every kube-io thread can sit in a request the apiserver holds for up to a
    minute, and a probe queued behind them would leave /readyz at 200 throughout."""

    TIMEOUT_SECONDS = 5.0  # per request; the probe's client does not retry, so one silent request fails it

    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        health: ApiHealth,
        namespace: str | None,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self.configuration = configuration
        self.timeout_seconds = timeout_seconds
        self.deadline_seconds = 2 * timeout_seconds + 2.0  # a guard should a request outlive its timeout
        self.health = health
        self.namespace = namespace  # where the probe may list MtlsCertificates (None: all)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-probe")
        self._client: kubernetes.client.ApiClient | None = None

    def _call(self) -> None:
        if self._client is None:
            # Built lazily: the first sign of an etcd outage is a silent apiserver (the consistent list hangs).
            self._client = client_without_retries(self.configuration)
        config = self._client.configuration
        token = config.auth_settings().get("BearerToken", {}).get("value")
        headers = {"Authorization": token} if token else {}
        scope = f"/namespaces/{self.namespace}" if self.namespace else ""
        for path in ("/readyz", f"/apis/{GROUP}/{VERSION}{scope}/{PLURAL}?limit=1"):
            resp = self._client.call_api(
                "GET", f"{config.host}{path}", header_params=headers, _request_timeout=self.timeout_seconds
            )
            if resp.status >= 400:
                raise ApiException(status=resp.status, reason=f"{path} answered {resp.status}")

    async def probe(self) -> None:
        try:
            probing = asyncio.get_running_loop().run_in_executor(self._executor, self._call)
            await asyncio.wait_for(probing, self.deadline_seconds)
        except Exception as exc:
            if is_outage(exc):
                self.health.failed(exc)
            return
        self.health.succeeded()
