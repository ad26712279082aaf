"""One small HTTP server for /metrics (Prometheus) and /healthz (liveness/readiness)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

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

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
