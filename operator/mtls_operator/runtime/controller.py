"""Ties the pieces together: a cache of MtlsCertificates fed by watch events, an index from Secret names to the
certificates that read them, the work queue that runs reconciles, and the metrics.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mtls_operator.aio.workqueue import WorkQueue
from mtls_operator.api.issuer import issuer_key_of, uses_token
from mtls_operator.api.names import (
    CERTIFICATE_LABEL,
    CLUSTER_ISSUER_KIND,
    ISSUER_KIND,
    NAMESPACE_LABEL,
    PLURAL,
    REVOKE_ON_DELETE_FINALIZER,
)
from mtls_operator.api.refs import IssuerKey
from mtls_operator.api.spec import published_configmap, referenced_secrets, secret_name_of
from mtls_operator.api.status import parse_time, utcnow
from mtls_operator.hsm.token import TokenKeys
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.health import ApiProbe, is_outage
from mtls_operator.kube.objects import Conflict, Owner
from mtls_operator.lifecycle.autorevoke import AutoRevoker
from mtls_operator.lifecycle.issuerstatus import IssuerStatusReconciler, IssuerUser
from mtls_operator.lifecycle.policy.usepolicy import use_policy_problem
from mtls_operator.lifecycle.publisher import CAPublisher
from mtls_operator.lifecycle.reconciler import Outcome, Reconciler
from mtls_operator.lifecycle.revocations import RevocationReconciler
from mtls_operator.runtime.cpulimit import cgroup_cpu_limit
from mtls_operator.runtime.issuerbook import IssuerBook
from mtls_operator.runtime.memory import settle_heap
from mtls_operator.runtime.metrics import Metrics
from mtls_operator.runtime.rollout import WorkloadRoller
from mtls_operator.runtime.secretindex import CertKey, SecretIndex
from mtls_operator.runtime.settings import Settings

log = logging.getLogger(__name__)

PUBLISH = "publish-ca"  # queue keys (PUBLISH, namespace, configMapName) rebuild a spec.publishCA ConfigMap
ROLL = "roll-workloads"  # queue keys (ROLL, namespace, ""): roll the namespace's opted-in workloads (runtime.rollout)
ISSUER = "issuer"  # queue keys (ISSUER, kind, namespace, name): an issuer's status (lifecycle.issuerstatus)
REVOKE = "revoke"  # queue keys (REVOKE, namespace, name): an MtlsRevocation (lifecycle.revocations)
FINALIZE = "finalize"  # queue keys (FINALIZE, namespace, name): a deleted certificate to revoke (revokeOnDelete)
# Until every MtlsRevocation has been listed once, no CRL is signed: one signed before would leave entries out.
REVOCATIONS_RETRY_SECONDS = 5.0
# An issuer's counts follow its certificates' re-issues at most this often: a rotation of 10,000 certificates must
# not recount them 10,000 times.
ISSUER_RECOUNT_SECONDS = 2.0


@dataclass(slots=True)
class CachedCertificate:
    """One MtlsCertificate as compact JSON, parsed again for each reconcile (about 50 µs).

    Measured at 10,000 certificates: the parsed bodies cost ~100 Python objects each, interleaved on the heap with
    the managedFields and status-patch temporaries freed around them, so RSS stayed at several times their size;
    and every full GC pass walked them all (pauses up to 2 s on the loop). One bytes object is neither."""

    resource_version: int
    raw: bytes
    publish_ca: str | None  # spec.publishCA's ConfigMap: _publish needs it without parsing every body

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> CachedCertificate:
        slimmed = slim(body)
        raw = json.dumps(slimmed, separators=(",", ":")).encode()
        return cls(_resource_version(body), raw, published_configmap(slimmed))

    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)  # type: ignore[no-any-return]


def _issuer_queue_key(key: IssuerKey) -> tuple[str, str, str, str]:
    return (ISSUER, key.kind, key.namespace, key.name)


def _crl_number(body: Mapping[str, Any]) -> str | None:
    return ((body.get("status") or {}).get("crl") or {}).get("number")


def _serial(body: Mapping[str, Any]) -> str | None:
    return (body.get("status") or {}).get("serialNumber")


def _resource_version(body: Mapping[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without managedFields and kubectl's last-applied copy: a third of the memory of 10,000 objects."""
    meta = dict(body["metadata"])
    meta.pop("managedFields", None)
    annotations = dict(meta.get("annotations") or {})
    if annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None) is not None:
        meta["annotations"] = annotations
    return {**body, "metadata": meta}


class Controller:
    def __init__(
        self,
        kube: KubeIO,
        probe: ApiProbe,
        *,
        metrics: Metrics | None = None,
        settings: Settings | None = None,
        secret_changes: Callable[[], int] = lambda: 0,
        roller: WorkloadRoller | None = None,
        tokens: TokenKeys | None = None,
        sweep: Callable[[], int] | None = None,
    ) -> None:
        """Built by runtime.composition. `secret_changes`: how many Secret events the cache applied so far;
        `sweep`: the Secret cache's, run every few seconds."""
        self.sweep = sweep
        settings = settings or Settings(namespaces=None)
        self.kube = kube
        self.probe = probe
        self.settings = settings
        self.shard = settings.shard
        self.metrics = metrics or Metrics()
        self.metrics.set_shard(self.shard.index, self.shard.count)
        self._secret_changes = secret_changes
        self.roller = roller
        self._rotated: dict[str, set[str]] = {}  # namespace -> certificates rotated since its last ROLL
        self._rollout_namespaces: set[str] = set()  # namespaces checked once since start (a roll missed by a crash)
        work = settings.work
        self.queue = WorkQueue(
            self._process,
            slots=work.concurrency,
            quiet_failure=is_outage,
            base_backoff=work.base_backoff_seconds,
            max_backoff=work.max_backoff_seconds,
        )
        limit = cgroup_cpu_limit()
        log.info(
            "key generation threads: %d (CPU limit %s, %d cores)",
            work.key_threads,
            "none" if limit is None else f"{limit:g}",
            os.cpu_count() or 0,
        )
        self.issuers = IssuerBook(settings.cluster_issuer_namespace)
        self.issuers.requester_records_checked = settings.cluster_issuer_use_policy is not None
        self.reconciler = Reconciler(
            kube,
            issuers=self.issuers,
            cpu_threads=work.key_threads,
            on_outcome=self._observed,
            on_key_generated=self.metrics.keys_generated.inc,
            released_slot=self.queue.released_slot,
            kubernetes_signer=settings.kubernetes_signer,
            kubernetes_signer_names=settings.kubernetes_signer_names,
            tokens=tokens,
            floors=settings.floors,
            use_review_ttl=datetime.timedelta(seconds=settings.use_review_seconds),
            require_requester=settings.require_requester,
        )
        self.cache: dict[CertKey, CachedCertificate] = {}
        self._leadership = asyncio.Lock()
        self.revocations: dict[tuple[str, str], dict[str, Any]] = {}  # MtlsRevocation bodies (shard 0 acts on them)
        self.revocations_listed = False
        self.issuer_status = IssuerStatusReconciler(
            kube,
            self.reconciler.issuer_cas,
            self.issuers,
            self.reconciler.clock,
            self.metrics.observe_issuer,
            revoked=self.issuers.revocations.entries,
        )
        self.revocation_reconciler = RevocationReconciler(
            kube, self.issuers, settings.cluster_issuer_namespace, self.reconciler.clock
        )
        self.autorevoke = AutoRevoker(kube, self.issuers)
        self._finalizing: dict[CertKey, dict[str, Any]] = {}  # deleted certificates waiting for their revocation
        self.publisher = CAPublisher(kube, self.issuers, self.issuer_status.crls)
        self._publish_problems: dict[tuple[str, str], str | None] = {}
        if settings.leader.enabled:  # with leader election, nothing is reconciled until the Lease is ours
            self.queue.active = False
            self.metrics.set_leader(False)
        self._secrets = SecretIndex()

    def start(self) -> None:
        self.queue.start()
        self._lag_task = asyncio.create_task(self._sample_loop_lag(), name="loop-lag")
        self._probe_task = asyncio.create_task(self._probe_api(), name="api-probe")
        self._heap_task = asyncio.create_task(self._settle_heap(), name="heap")
        self._use_policy_task = asyncio.create_task(self._watch_use_policy(), name="use-policy")

    async def stop(self) -> None:
        self._lag_task.cancel()
        self._probe_task.cancel()
        self._heap_task.cancel()
        self._use_policy_task.cancel()
        await self.queue.stop()
        self.reconciler.close()  # queued key generation dropped; logs out of every token

    async def _settle_heap(self) -> None:
        """Once a wave of work is over (the initial sync, a burst, a renewal wave, thousands of Secret events):
        memory.settle_heap."""
        interval, batch = self.settings.heap.check_interval_seconds, self.settings.heap.batch
        settled_at = -batch

        def work_done() -> int:
            return self.queue.processed + self._secret_changes()

        while True:
            await asyncio.sleep(interval)
            if self.sweep is not None:
                self.sweep()  # the data of Secrets no certificate of ours names goes (kube.secretcache)
            if self.queue.in_flight() == 0 and work_done() - settled_at >= batch:
                settled_at = work_done()
                settle_heap()

    async def set_leader(self, leader: bool) -> None:
        """Leader election moved: start acting on every cached certificate, or stop acting at once."""
        async with self._leadership:
            if leader == self.queue.active:
                return
            if leader:
                self.metrics.set_leader(True)
                # publishCA keys follow from these reconciles; issuers' status is ours to write from now on
                revocations = [(REVOKE, *key) for key in self.revocations] if self.shard.index == 0 else []
                self.queue.activate(
                    [*self.cache, *(_issuer_queue_key(key) for key, _ in self.issuers.issuers()), *revocations]
                )
            else:
                await self.queue.deactivate()
                self.metrics.set_leader(False)

    @property
    def standby(self) -> bool:
        return not self.queue.active

    async def _probe_api(self) -> None:
        """/readyz must notice an outage even when no reconcile is due: a cheap probe every few seconds, the first
        at once (a restart during an outage is when it matters most)."""
        while True:
            await self.probe.probe()
            await asyncio.sleep(self.settings.api.probe_interval_seconds)

    async def _sample_loop_lag(self, interval: float = 0.1) -> None:
        """How late the loop wakes us: a blocked event loop shows here before anything else suffers."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - started - interval))

    # --- watch events -------------------------------------------------------------------------------------

    def certificate_changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key = (sys.intern(meta["namespace"]), meta["name"])  # one string per namespace, not per object
        if not self.shard.owns(*key):
            return  # another shard's: not cached, not reconciled, not metered here
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            self._forget(key)
            if event_type != "DELETED" and REVOKE_ON_DELETE_FINALIZER in (meta.get("finalizers") or []):
                self._finalizing[key] = dict(body)
                self.queue.add((FINALIZE, *key))
            return
        old = self.cache.get(key)
        if old is not None and old.resource_version >= _resource_version(body):
            # Older than, or the echo of, what our own status patch already returned: nothing new to decide.
            return
        self._store(key, body)
        self.queue.add(key)

    def secret_wanted(self, namespace: str, name: str) -> bool:
        """The Secret informer keeps a Secret's data only for this (runtime.secretindex, runtime.issuerbook)."""
        return self._secrets.named(namespace, name) or self.issuers.reads(namespace, name)

    def secret_changed(self, namespace: str, name: str) -> None:
        """The informer saw a version of this Secret newer than any we read or wrote."""
        for key in self._secrets.holders(namespace, name):
            self.queue.add(key)
        for issuer in self.issuers.readers_of(namespace, name):
            self.queue.add(_issuer_queue_key(issuer))  # its status changes; the certificates follow from that

    def issuer_changed(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """An MtlsIssuer or ClusterMtlsIssuer changed: its status is recomputed; when what its certificates
        depend on changed (the policy, the CA, a rotation), they are reconciled again."""
        if event_type == "DELETED" or (body.get("metadata") or {}).get("deletionTimestamp"):
            key = self.issuers.forget_issuer(kind, body)
            self.metrics.remove_issuer(key)
            self.issuer_status.crls.forget(key)  # its CRL's ConfigMap stays (the record of what it revoked)
            self.issuer_status.crl_refresh.pop(key, None)
            self.queue.forget(_issuer_queue_key(key))
            changed = True
        else:
            previous = self.issuers.find(issuer_key_of(kind, body))
            key, changed = self.issuers.store_issuer(kind, body)
            if self.shard.index == 0:  # one writer of an issuer's status, whatever the sharding
                self.queue.add(_issuer_queue_key(key))
            if previous is not None and _crl_number(previous) != _crl_number(body):
                self._crl_changed(key, _crl_number(body))
        if changed:
            for cert in self.issuers.users(key):
                if cert in self.cache:
                    self.queue.add(cert)

    async def prime_issuers(self) -> None:
        """Before the first certificate is reconciled: every issuer and namespace label, listed once, so a restart
        never reports a certificate's issuer as missing (or its namespace as unselected) until the watches catch up.
        An API that does not answer leaves it to the watches."""
        try:
            namespaces = await self.kube.list_namespaces()
            bodies = [(CLUSTER_ISSUER_KIND, b) for b in await self.kube.list_issuers(CLUSTER_ISSUER_KIND)]
            scopes: list[str | None] = [None] if self.settings.namespaces is None else [*self.settings.namespaces]
            for namespace in scopes:
                bodies += [(ISSUER_KIND, b) for b in await self.kube.list_issuers(ISSUER_KIND, namespace)]
        except Exception as exc:  # any failure: the watches deliver the same objects soon after
            log.warning("could not list issuers and namespaces at start (%s); waiting for the watches", exc)
            return
        for body in namespaces:
            self.issuers.store_namespace(body)
        for kind, body in bodies:
            self.issuer_changed(kind, "ADDED", body)
        log.info("issuers at start: %d, namespaces: %d", len(bodies), len(namespaces))

    async def check_use_policy(self) -> None:
        """settings.cluster_issuer_use_policy: is the admission policy that checks `use` on cluster issuers in
        force (lifecycle.policy.usepolicy)? Cluster-issuer issuance waits while it is not, or cannot be read; when it
        is back, the certificates that waited are reconciled at once."""
        name = self.settings.cluster_issuer_use_policy
        if not name:
            return
        try:
            policy, binding = await self.kube.get_admission_policy(name)
            problem = use_policy_problem(name, policy, binding)
        except Exception as exc:  # fail closed: an unreadable policy is not a policy in force
            # The same words for the same failure (an ApiException's text carries headers and body, different every
            # time): a changed message would re-queue every user of a cluster issuer at each look.
            status = getattr(exc, "status", None)
            cause = f"HTTP {status}" if status else type(exc).__name__
            problem = (
                f"the admission policy {name} that checks RBAC verb use on ClusterMtlsIssuers cannot be read ({cause})"
            )
        previous, self.issuers.use_policy = self.issuers.use_policy, problem
        if problem == previous:
            return
        if problem is not None:
            log.warning("cluster issuers do not sign: %s", problem)
        else:
            log.info("the admission policy %s checks use on cluster issuers: they sign", name)
        for key, _ in self.issuers.issuers():
            if key.kind == CLUSTER_ISSUER_KIND:
                for cert in self.issuers.users(key):
                    if cert in self.cache:
                        self.queue.add(cert)

    async def _watch_use_policy(self) -> None:
        while True:
            await asyncio.sleep(self.settings.use_policy_check_seconds)
            await self.check_use_policy()

    async def prime_secret_index(self) -> None:
        """Before the Secret informer lists: which Secrets this shard's certificates name, from one paged list of
        the certificates. The informer keeps a Secret's data only when something names it (secret_wanted); racing
        kopf's own list of certificates, it would keep most by version alone, and each certificate's first
        reconcile after a restart would GET its Secret (10,000 GETs for 10,000 certificates). An API that does not
        answer leaves it to the watches (and those GETs)."""
        scopes: list[str | None] = [None] if self.settings.namespaces is None else [*self.settings.namespaces]
        indexed = 0
        try:
            for namespace in scopes:
                async for page in self.kube.pages(PLURAL, namespace):
                    for body in page:
                        meta = body.get("metadata") or {}
                        key = (meta.get("namespace") or "", meta.get("name") or "")
                        if self.shard.owns(*key) and key not in self.cache:  # the watch's copy is newer
                            self._secrets.update(key, referenced_secrets(body))
                            indexed += 1
        except Exception as exc:  # any failure: the watches deliver the same objects soon after
            log.warning("could not list certificates at start (%s); their Secrets are read as they are needed", exc)
            return
        log.info("certificates at start: %d (their Secrets are kept by the informer)", indexed)

    def _crl_changed(self, key: IssuerKey, number: str | None) -> None:
        """A new CRL: the publishCA ConfigMaps of its certificates carry it (ca.crl), its revocations say so."""
        listed = self.issuer_status.crls.listed(key)
        if listed is None or str(listed[0]) != number:
            self.issuer_status.crls.forget(key)  # signed by another replica: read it again
        for cert in self.issuers.users(key):
            cached = self.cache.get(cert)
            if cached is not None and cached.publish_ca:
                self.queue.add((PUBLISH, cert[0], cached.publish_ca))
        if self.shard.index == 0:
            for revocation in self.issuers.revocations.revocations_of(key):
                self.queue.add((REVOKE, *revocation))

    def revocation_changed(self, event_type: str | None, body: Mapping[str, Any], *, ours: bool = False) -> None:
        """An MtlsRevocation changed: resolved ones are indexed by issuer and serial (every shard: its certificates
        must know they are revoked); shard 0 resolves them and re-signs the issuer's CRL."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self.revocations.pop(key, None)
            issuer, changed = self.issuers.revocations.forget(body), True
            self.queue.forget((REVOKE, *key))
        else:
            old = self.revocations.get(key)
            if old is not None and _resource_version(old) >= _resource_version(body):
                return  # the echo of our own write, or older
            self.revocations[key] = dict(body)
            issuer, changed = self.issuers.revocations.store(body)
            published = any(
                c.get("type") == "Published" and c.get("status") == "True"
                for c in (body.get("status") or {}).get("conditions") or []
            )
            if self.shard.index == 0 and not ours and (issuer is None or not published):
                self.queue.add((REVOKE, *key))
        if issuer is not None and changed:
            if self.shard.index == 0:
                self.queue.add(_issuer_queue_key(issuer))
            for cert in self.issuers.users(issuer):  # a certificate in service may be the one revoked
                if cert in self.cache:
                    self.queue.add(cert)

    async def prime_revocations(self) -> None:
        """Every MtlsRevocation, listed once before any CRL is signed (retried until the API answers)."""
        while True:
            scopes: list[str | None] = [None] if self.settings.namespaces is None else [*self.settings.namespaces]
            try:
                bodies = [body for scope in scopes for body in await self.kube.list_revocations(scope)]
            except Exception as exc:
                log.warning("could not list MtlsRevocations (%s); no CRL is signed until they are", exc)
                await asyncio.sleep(REVOCATIONS_RETRY_SECONDS)
                continue
            for body in bodies:
                self.revocation_changed("ADDED", body)
            self.revocations_listed = True
            log.info("revocations at start: %d", len(bodies))
            return

    def namespace_changed(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Labels decide a cluster issuer's namespaceSelector: the namespace's certificates look again."""
        name = (body.get("metadata") or {}).get("name", "")
        if event_type == "DELETED":
            self.issuers.forget_namespace(name)
            return
        if self.issuers.store_namespace(body):
            for cert in self.issuers.users_in(name):
                self.queue.add(cert)

    def csr_changed(self, labels: Mapping[str, str]) -> None:
        """A CertificateSigningRequest we created changed (approved, denied, issued) or vanished."""
        key = (labels.get(NAMESPACE_LABEL, ""), labels.get(CERTIFICATE_LABEL, ""))
        if key in self.cache:
            self.queue.add(key)

    # --- internals ------------------------------------------------------------------------------------------

    def _store(self, key: CertKey, body: Mapping[str, Any]) -> None:
        self.cache[key] = CachedCertificate.of(body)
        self._secrets.update(key, referenced_secrets(body))
        self._issuer_users_changed(*self.issuers.set_certificate(key, body))

    def _issuer_users_changed(self, *keys: IssuerKey | None) -> None:
        for issuer in keys:
            if issuer is not None and self.shard.index == 0 and self.issuers.find(issuer) is not None:
                self.queue.add_after(_issuer_queue_key(issuer), ISSUER_RECOUNT_SECONDS)

    def _forget(self, key: CertKey) -> None:
        cached = self.cache.pop(key, None)
        if cached is not None and cached.publish_ca:
            self.queue.add((PUBLISH, key[0], cached.publish_ca))  # its CAs leave the bundle
        self._issuer_users_changed(*self.issuers.set_certificate(key, None))
        self._secrets.forget(key)
        self.queue.forget(key)
        self.metrics.remove(*key)

    async def _process(self, key: Any) -> datetime.datetime | None:
        if len(key) == 3 and key[0] == PUBLISH:
            await self._publish(key[1], key[2])
            return None
        if len(key) == 3 and key[0] == ROLL:
            await self._roll(key[1])
            return None
        if len(key) == 4 and key[0] == ISSUER:
            return await self._reconcile_issuer(IssuerKey(key[1], key[2], key[3]))
        if len(key) == 3 and key[0] == REVOKE:
            return await self._reconcile_revocation((key[1], key[2]))
        if len(key) == 3 and key[0] == FINALIZE:
            finalizing = self._finalizing.get((key[1], key[2]))
            if finalizing is not None:
                await self.autorevoke.on_delete(finalizing)
                self._finalizing.pop((key[1], key[2]), None)
            return None
        cached = self.cache.get(key)
        if cached is None:
            return None
        body = cached.body()
        with self.metrics.reconcile_duration.time():
            updated, wake_at = await self.reconciler.reconcile(body)
        if updated is not None and key in self.cache:
            self.certificate_changed_from_write(key, updated)
        await self.autorevoke.after_reconcile(body, updated or body)
        if self.roller is not None:
            self._note_rotation(key, body, updated)
        if updated is not None and _serial(updated) != _serial(body):
            self._issuer_users_changed(self.issuers.issuer_of(key))  # its issuer's counts follow
        configmap = published_configmap(body)
        if configmap:
            self.queue.add((PUBLISH, key[0], configmap))  # one queue key per ConfigMap: coalesced
        return wake_at

    async def _reconcile_issuer(self, key: IssuerKey) -> datetime.datetime | None:
        """Returns when to look again by the clock alone: when its CA expires (Ready turns False then), and for a
        CA key in a token its next probe."""
        body = self.issuers.find(key)
        if body is None:
            return None
        users = []
        for cert in sorted(self.issuers.users(key)):
            cached = self.cache.get(cert)
            if cached is not None:
                users.append(IssuerUser(cert[0], secret_name_of(cached.body())))
        if not self.revocations_listed:
            return utcnow() + datetime.timedelta(seconds=REVOCATIONS_RETRY_SECONDS)
        updated = await self.issuer_status.reconcile(key.kind, body, users)
        if updated is not None:
            self.issuer_changed(key.kind, "MODIFIED", updated)
        now = utcnow()
        crl_refresh = self.issuer_status.crl_refresh.get(key)
        not_after = parse_time((((updated or body).get("status") or {}).get("ca") or {}).get("notAfter"))
        wake = not_after if not_after is not None and not_after > now else None
        if crl_refresh is not None:
            wake = crl_refresh if wake is None else min(wake, crl_refresh)
        if uses_token(body):  # a token can go away or come back without any Kubernetes event: probe it
            probe = now + datetime.timedelta(seconds=self.settings.hsm.probe_seconds)
            wake = probe if wake is None else min(wake, probe)
        return wake

    async def _reconcile_revocation(self, key: tuple[str, str]) -> datetime.datetime | None:
        body = self.revocations.get(key)
        if body is None:
            return None
        crls = self.issuer_status.crls
        updated, wake_at = await self.revocation_reconciler.reconcile(body, crls.listed)
        if updated is not None and key in self.revocations:
            self.revocation_changed("MODIFIED", updated, ours=True)
        return wake_at

    async def _publish(self, namespace: str, configmap: str) -> None:
        sources = [c.body() for (ns, _), c in self.cache.items() if ns == namespace and c.publish_ca == configmap]
        try:
            problem = await self.publisher.publish(namespace, configmap, sources)
        except Conflict:
            self.queue.add_after((PUBLISH, namespace, configmap), 1.0)  # lost a race: read and write again
            return
        if problem != self._publish_problems.get((namespace, configmap)):
            self._publish_problems[(namespace, configmap)] = problem
            if problem:
                log.warning("publishCA %s/%s: %s", namespace, configmap, problem)
                for body in sources:
                    await self.kube.post_event(Owner.of(body), "Warning", "PublishCAConflict", problem)

    def _note_rotation(self, key: CertKey, before: Mapping[str, Any], updated: Mapping[str, Any] | None) -> None:
        """A new serial in service after an earlier one: the namespace's opted-in workloads roll (once per batch)."""
        namespace, name = key
        old = (before.get("status") or {}).get("serialNumber")
        new = ((updated or before).get("status") or {}).get("serialNumber")
        rotated = bool(old and new and old != new)
        if rotated:
            self._rotated.setdefault(namespace, set()).add(name)
        if rotated or (new and namespace not in self._rollout_namespaces):
            self._rollout_namespaces.add(namespace)
            self.queue.add((ROLL, namespace, ""))

    async def _roll(self, namespace: str) -> None:
        assert self.roller is not None
        rotated = self._rotated.pop(namespace, set())
        serials, owners = {}, {}
        for (ns, name), cached in list(self.cache.items()):
            if ns != namespace:
                continue
            body = cached.body()
            serial = (body.get("status") or {}).get("serialNumber")
            if serial:
                serials[name], owners[name] = serial, Owner.of(body)
        try:
            await self.roller.roll_namespace(namespace, serials, rotated, owners)
        except Exception:
            self._rotated.setdefault(namespace, set()).update(rotated)  # kept for the queue's retry
            raise

    def certificate_changed_from_write(self, key: CertKey, body: Mapping[str, Any]) -> None:
        current = self.cache.get(key)
        if current is None or _resource_version(body) >= current.resource_version:
            self._store(key, body)

    def _observed(self, body: Mapping[str, Any], outcome: Outcome) -> None:
        meta = body["metadata"]
        if (meta["namespace"], meta["name"]) in self.cache:
            self.metrics.observe(body, outcome.events)
