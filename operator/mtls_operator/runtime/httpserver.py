"""The operator's HTTP endpoints: plain HTTP for /healthz and /readyz (the kubelet's probes, revealing nothing)
and the issuers' CRLs (public by nature); /metrics over HTTPS behind a TokenReview and a SubjectAccessReview
(runtime.metricsauth), or, only when asked (--insecure-metrics), on the plain port as before.

/crl/clustermtlsissuer/<name>.crl and /crl/mtlsissuer/<namespace>/<name>.crl serve the CRL an issuer published
(DER, application/pkix-crl), for servers that fetch it (an issuer's spec.crl.distributionPointURL). Only issuers
the operator knows are served, from the CRL's ConfigMap read at most every few seconds: a request never makes the
operator read an object it was not going to read anyway. Every replica serves it (a standby too).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mtls_operator.api.names import CLUSTER_ISSUER_KIND, ISSUER_KIND
from mtls_operator.api.refs import IssuerKey
from mtls_operator.runtime.metricsauth import MetricsAuthorizer

if TYPE_CHECKING:
    from mtls_operator.runtime.controller import Controller


def _exposition(controller: Controller) -> web.Response:
    return web.Response(body=controller.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_secure_metrics_server(
    controller: Controller, address: str, port: int, context: ssl.SSLContext, authorizer: MetricsAuthorizer
) -> web.AppRunner:
    async def metrics(request: web.Request) -> web.Response:
        status = await authorizer.status_for(request.headers.get("Authorization"))
        if status == 200:
            return _exposition(controller)
        reasons = {
            401: "a bearer token the Kubernetes API accepts is needed (a ServiceAccount token)\n",
            403: "forbidden: RBAC must allow get on the non-resource URL /metrics "
            "(ClusterRole <release>-metrics-reader)\n",
            503: "the Kubernetes API could not review the token; try again\n",
        }
        return web.Response(status=status, text=reasons[status])

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port, ssl_context=context).start()
    return runner


async def start_http_server(controller: Controller, address: str, port: int, *, metrics: bool) -> web.AppRunner:
    """`metrics`: serve /metrics here without authentication (--insecure-metrics)."""

    async def plain_metrics(_: web.Request) -> web.Response:
        return _exposition(controller)

    async def healthz(_: web.Request) -> web.Response:
        """Liveness: the process works. An apiserver outage is not a reason to restart it (that cannot help)."""
        if not controller.queue.alive:
            return web.Response(status=503, text="work queue stopped\n")
        health = controller.kube.health
        if not health.reachable:
            return web.Response(text=f"ok; Kubernetes API unreachable for {health.outage_seconds():.0f}s\n")
        return web.Response(text="standby\n" if controller.standby else "ok\n")

    async def readyz(_: web.Request) -> web.Response:
        """Readiness: able to do its job now, i.e. the work queue runs and the Kubernetes API answers."""
        health = controller.kube.health
        if not controller.queue.alive:
            return web.Response(status=503, text="work queue stopped\n")
        if not health.reachable:
            return web.Response(status=503, text=f"Kubernetes API unreachable for {health.outage_seconds():.0f}s\n")
        return web.Response(text="standby\n" if controller.standby else "ok\n")

    async def crl(request: web.Request) -> web.Response:
        info = request.match_info
        kind = {"mtlsissuer": ISSUER_KIND, "clustermtlsissuer": CLUSTER_ISSUER_KIND}.get(info["kind"])
        namespace = info.get("namespace", "")
        if kind is None or (kind == ISSUER_KIND) != bool(namespace):
            return web.Response(status=404, text="no such issuer kind here\n")
        key = IssuerKey(kind, namespace, info["name"])
        if controller.issuers.find(key) is None:
            return web.Response(status=404, text=f"{key} is not known to this operator\n")
        published = await controller.issuer_status.crls.current(key, controller.issuers.ca_namespace(key))
        if published is None:
            return web.Response(status=404, text=f"{key} has not published a CRL yet\n")
        headers = {"Content-Type": "application/pkix-crl", "Cache-Control": "max-age=60"}
        return web.Response(body=published.der, headers=headers)

    app = web.Application()
    if metrics:
        app.router.add_get("/metrics", plain_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/crl/{kind}/{name}.crl", crl)
    app.router.add_get("/crl/{kind}/{namespace}/{name}.crl", crl)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
