"""kopf handlers: thin adapters from watch events to the Controller. No decisions are made here."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import kopf
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory  # kopf.run(memories=...) takes one

from mtls_operator.api.names import (
    CLUSTER_ISSUER_KIND,
    CLUSTER_ISSUER_PLURAL,
    GROUP,
    ISSUER_KIND,
    ISSUER_PLURAL,
    MANAGED_BY,
    MANAGER,
    PLURAL,
    REVOCATION_PLURAL,
    VERSION,
)
from mtls_operator.api.status import utcnow
from mtls_operator.pki.servingcert import from_directory, self_signed, server_context
from mtls_operator.runtime.composition import Operator
from mtls_operator.runtime.httpserver import start_http_server, start_secure_metrics_server
from mtls_operator.runtime.metricsauth import MetricsAuthorizer

log = logging.getLogger(__name__)


class NoDiffBase(kopf.DiffBaseStorage):
    """We register on-event handlers only, which never look at a diff; kopf still builds one per event (a deep
    copy of the body): a tenth of the operator's CPU during a burst, measured with py-spy. Nothing to build."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class ForgetfulMemories(ResourceMemories):
    """kopf remembers a record per object it has seen (a copy of the memo, daemon and throttling state: about
    1 KB traced, 10 MB at 10,000 certificates) until the object is deleted. Its only users are daemons, timers,
    indexes and resuming handlers, none of which we register: each event gets a fresh record instead."""

    async def recall(
        self,
        raw_body: kopf.RawBody,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> ResourceMemory:
        return await super().recall(raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True)


def serving_context(cert_dir: str | None) -> ssl.SSLContext:
    """The HTTPS identity of /metrics: the mounted certificate, or a self-signed one made now."""
    if cert_dir:
        return server_context(*from_directory(Path(cert_dir)))
    names = [socket.gethostname(), "localhost", "127.0.0.1"]
    return server_context(*self_signed(names, utcnow()))


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own Events are posted by the reconciler; kopf's log-to-Event mirroring would duplicate them.
    settings.posting.enabled = False
    # Long server-side watches with a client-side guard, so a silently dropped connection is noticed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # The first list in pages: one unpaginated list of 10,000 certificates is tens of MB parsed at once, and the
    # allocator keeps that peak long after it is garbage.
    settings.watching.chunk_size = 500
    # Resources are known in advance: no need to watch CRDs/namespaces (and no RBAC for it).
    settings.scanning.disabled = True
    settings.networking.request_timeout = 60
    # kopf keeps a worker task per object until it has been idle this long (default 5 s), and the idle worker
    # still holds the last parsed body: after a list, every body at once. 2,000 certificates after a restart:
    # 147 MB RSS with 1.0 s, 132-137 MB with 0.2 s (11-13 fewer 1 MiB allocator arenas).
    settings.batching.idle_timeout = 0.2
    settings.persistence.diffbase_storage = NoDiffBase()
    operator: Operator = memo.operator
    controller = operator.controller
    ours = operator.settings
    address, port = ours.metrics_address, ours.metrics_port
    try:
        memo.http_runner = await start_http_server(controller, address, port, metrics=ours.insecure_metrics)
        if not ours.insecure_metrics:
            port = ours.secure_metrics_port
            context, authorizer = serving_context(ours.metrics_cert_dir), MetricsAuthorizer(controller.kube)
            memo.metrics_runner = await start_secure_metrics_server(controller, address, port, context, authorizer)
    except OSError as exc:
        # Fail fast (the pod restarts, the log says why) rather than run for a minute without reconciling.
        raise kopf.PermanentError(f"cannot serve HTTP on port {port}: {exc}") from exc
    await controller.prime_issuers()  # before any certificate is reconciled
    await controller.check_use_policy()  # cluster issuers sign only once their `use` policy is known to be in force
    memo.revocations_task = asyncio.create_task(controller.prime_revocations(), name="prime-revocations")
    controller.start()
    await controller.prime_secret_index()  # before the Secret informer decides which Secrets it keeps whole
    # Secrets are watched by our own cache (kube.secretcache), not by kopf: server-side selectors, pagination,
    # metadata only for Secrets that are not ours.
    operator.secret_cache.start(
        on_change=controller.secret_changed,
        on_relist=controller.metrics.secret_relists.inc,
        wanted=controller.secret_wanted,
    )
    if operator.elector is not None:
        memo.elector_task = asyncio.create_task(operator.elector.run(), name="leader-election")


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    operator: Operator = memo.operator
    if memo.get("elector_task") is not None and operator.elector is not None:
        memo.elector_task.cancel()
        await operator.controller.set_leader(False)  # stop writing first, then hand the Lease over
        await asyncio.get_running_loop().run_in_executor(None, operator.elector.release)
    operator.secret_cache.stop()
    await operator.controller.stop()
    if memo.get("http_runner") is not None:
        await memo.http_runner.cleanup()
    if memo.get("metrics_runner") is not None:
        await memo.metrics_runner.cleanup()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def certificate_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.operator.controller.certificate_changed(event.get("type"), dict(body))


@kopf.on.event(GROUP, VERSION, ISSUER_PLURAL)
async def issuer_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.operator.controller.issuer_changed(ISSUER_KIND, event.get("type"), dict(body))


@kopf.on.event(GROUP, VERSION, CLUSTER_ISSUER_PLURAL)
async def cluster_issuer_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.operator.controller.issuer_changed(CLUSTER_ISSUER_KIND, event.get("type"), dict(body))


@kopf.on.event(GROUP, VERSION, REVOCATION_PLURAL)
async def revocation_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.operator.controller.revocation_changed(event.get("type"), dict(body))


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Labels only: a ClusterMtlsIssuer's namespaceSelector decides by them."""
    memo.operator.controller.namespace_changed(event.get("type"), dict(body))


def register_csr_watch() -> None:
    """Watches our CertificateSigningRequests (signer `kubernetes`); only registered when that signer is enabled,
    because listing cluster-scoped CSRs needs RBAC that the chart grants only then."""

    @kopf.on.event("certificates.k8s.io", "v1", "certificatesigningrequests", labels={MANAGED_BY: MANAGER})
    async def csr_event(labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
        memo.operator.controller.csr_changed(dict(labels))
