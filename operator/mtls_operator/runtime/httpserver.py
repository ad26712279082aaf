"""One small HTTP server for /metrics (Prometheus), /healthz and /readyz, and the issuers' CRLs.

/crl/clustermtlsissuer/<name>.crl and /crl/mtlsissuer/<namespace>/<name>.crl serve the CRL an issuer published
(DER, application/pkix-crl), for servers that fetch it (an issuer's spec.crl.distributionPointURL). Only issuers
the operator knows are served, from the CRL's ConfigMap read at most every few seconds: a request never makes the
operator read an object it was not going to read anyway. Every replica serves it (a standby too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mtls_operator.api.names import CLUSTER_ISSUER_KIND, ISSUER_KIND
from mtls_operator.api.refs import IssuerKey

if TYPE_CHECKING:
    from mtls_operator.runtime.controller import Controller


async def start_http_server(controller: Controller, address: str, port: int) -> web.AppRunner:
    async def metrics(_: web.Request) -> web.Response:
        payload = controller.metrics.exposition()
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

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
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/crl/{kind}/{name}.crl", crl)
    app.router.add_get("/crl/{kind}/{namespace}/{name}.crl", crl)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
