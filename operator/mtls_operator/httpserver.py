"""One small HTTP server for /metrics (Prometheus) and /healthz (liveness/readiness)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .controller import Controller


async def start_http_server(controller: Controller, address: str, port: int) -> web.AppRunner:
    async def metrics(_: web.Request) -> web.Response:
        payload = controller.metrics.exposition()
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        if controller.queue.alive:
            return web.Response(text="standby\n" if controller.standby else "ok\n")
        return web.Response(status=503, text="work queue stopped\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
