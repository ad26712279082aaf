"""Leader election on a coordination.k8s.io/v1 Lease, gating the work queue (active/standby replicas).

Only the holder of the Lease reconciles, and so only it writes. A standby keeps its watch caches warm and takes
over when the holder stops renewing for `lease_duration` (a crash) or releases the Lease (a graceful stop). A
holder that cannot renew within `renew_deadline` steps down before its Lease can expire, so two processes never
act at once (the standby waits the full lease duration, which is longer).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from mtls_operator.kube.config import client_without_retries
from mtls_operator.runtime.leadership import ACQUIRE, FOLLOW, LeaseRecord, decide_lease

log = logging.getLogger(__name__)

SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace() -> str:
    """The pod's own namespace in a cluster (where the chart grants Lease access), else `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SA_NAMESPACE_FILE) as f:
            return f.read().strip()
    except OSError:
        return "default"


def new_identity() -> str:
    # A fresh suffix per process: a restarted pod must not mistake its predecessor's Lease for its own.
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _micro(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        on_change: Callable[[bool], Awaitable[None]],
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        api: kubernetes.client.CoordinationV1Api | None = None,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.identity = identity or new_identity()
        self.on_change = on_change
        self.lease_duration = datetime.timedelta(seconds=lease_duration)
        self.renew_deadline = datetime.timedelta(seconds=renew_deadline)
        self.retry_period = retry_period
        # Without urllib3's retries: one round would otherwise outlast the renew deadline four times over.
        self.api = api or kubernetes.client.CoordinationV1Api(
            client_without_retries(kubernetes.client.Configuration.get_default_copy())
        )
        self.clock = clock
        self.is_leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) as last seen
        self._observed_at: datetime.datetime | None = None
        self._last_renewal: datetime.datetime | None = None
        # Each request is bounded (a connection that died without a reset would otherwise hang a round forever,
        # and a holder stuck in it would never step down while a standby takes the Lease over).
        self.request_timeout = (retry_period, retry_period * 2)
        # Own threads: a round abandoned at its deadline may still sit in its request, and must not take a thread
        # of the loop's default executor (key generation runs there).
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="leader-election")

    def round_deadline(self) -> float:
        """Seconds one round may take: a holder must have renewed by `renew_deadline` after its last renewal."""
        if not self.is_leader or self._last_renewal is None:
            return self.renew_deadline.total_seconds()
        left = self.renew_deadline - (self.clock() - self._last_renewal)
        return max(left.total_seconds(), 0.1)

    async def run(self) -> None:
        """Forever: read the Lease, act on the decision, sleep `retry_period`. API calls run in a thread."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                leader, reason = await asyncio.wait_for(
                    loop.run_in_executor(self._executor, self._step), self.round_deadline()
                )
            except Exception as exc:  # the apiserver may be away: keep trying, and step down in time
                error = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
                log.debug("leader election: %s", error)
                stale = self._last_renewal is None or self.clock() - self._last_renewal >= self.renew_deadline
                leader, reason = (self.is_leader and not stale), f"could not renew the Lease: {error}"
            await self._set(leader, reason)
            await asyncio.sleep(self.retry_period)

    def _step(self) -> tuple[bool, str]:
        """One round (blocking I/O): whether we hold the Lease afterwards, and why."""
        now = self.clock()
        lease = self._read()
        record = self._record(lease)
        if record is not None and (record.holder, record.renew_time) != self._observed:
            self._observed, self._observed_at = (record.holder, record.renew_time), now
        decision = decide_lease(record, self.identity, self._observed_at, now)
        if decision.action == FOLLOW:
            return False, decision.reason
        try:
            self._write(lease, now, taking_over=decision.action == ACQUIRE)
        except ApiException as exc:
            if exc.status in (409, 422):  # someone else wrote first: read again next round
                return False, "lost the race for the Lease"
            raise
        self._last_renewal = now
        return True, decision.reason if decision.action == ACQUIRE else "renewed"

    def _read(self) -> Any:
        try:
            return self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _record(self, lease: Any) -> LeaseRecord | None:
        if lease is None:
            return None
        spec = lease.spec
        renew = spec.renew_time
        return LeaseRecord(
            holder=spec.holder_identity or "",
            renew_time=renew.isoformat() if hasattr(renew, "isoformat") else str(renew or ""),
            duration=datetime.timedelta(seconds=spec.lease_duration_seconds or self.lease_duration.seconds),
        )

    def _write(self, lease: Any, now: datetime.datetime, *, taking_over: bool) -> None:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration.total_seconds()),
            "renewTime": _micro(now),
        }
        body: Any
        if lease is None:
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": _micro(now), "leaseTransitions": 0},
            }
            self.api.create_namespaced_lease(self.namespace, body, _request_timeout=self.request_timeout)
            return
        # A replace writes the whole spec: carry acquireTime and leaseTransitions over when renewing.
        acquired = lease.spec.acquire_time
        spec["acquireTime"] = _micro(now) if taking_over or acquired is None else _micro(acquired)
        spec["leaseTransitions"] = (lease.spec.lease_transitions or 0) + (1 if taking_over else 0)
        body = {"metadata": {"name": self.name, "resourceVersion": lease.metadata.resource_version}, "spec": spec}
        self.api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=self.request_timeout)

    async def _set(self, leader: bool, reason: str) -> None:
        if leader != self.is_leader:
            self.is_leader = leader
            role = "active: reconciling" if leader else "standby: not reconciling"
            log.info("leader election %s/%s: %s (%s)", self.namespace, self.name, role, reason)
            await self.on_change(leader)

    def release(self) -> None:
        """On a graceful stop (after the work queue stopped): hand the Lease over at once instead of making the
        standby wait for it to expire. Blocking: call it from a thread."""
        if not self.is_leader:
            return
        try:
            lease = self._read()
            if lease is not None and lease.spec.holder_identity == self.identity:
                body: Any = {
                    "metadata": {"name": self.name, "resourceVersion": lease.metadata.resource_version},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro(self.clock())},
                }
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self.request_timeout
                )
        except Exception as exc:
            log.warning("could not release the Lease %s/%s: %s", self.namespace, self.name, exc)
        self.is_leader = False
