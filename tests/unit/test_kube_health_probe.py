"""The health probe against a real socket that accepts requests and never answers, as an apiserver does while
etcd is down: the probe must report the outage even when every kube-io thread is stuck in such a request."""

from __future__ import annotations

import asyncio
import time

import kubernetes

from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.health import ApiProbe


async def test_probe_reports_the_outage_while_every_io_thread_is_stuck(silent_server: str) -> None:
    config = kubernetes.client.Configuration()
    config.host = silent_server
    kube = KubeIO(kubernetes.client.ApiClient(config), threads=2)
    try:
        # Two requests held for as long as their client timeout (65 s, as reconciles' are) take both kube-io threads.
        stuck = [asyncio.create_task(kube._run(kube.core.read_namespaced_secret, "s", "ns")) for _ in range(2)]
        await asyncio.sleep(0.5)
        assert not any(task.done() for task in stuck)

        probe = ApiProbe(kube.api_client.configuration, kube.health, "ns")
        started = time.monotonic()
        await asyncio.wait_for(probe.probe(), probe.deadline_seconds + 3)
        assert not kube.health.reachable
        # One request's timeout: not queued behind the stuck threads, not retried by urllib3.
        assert time.monotonic() - started <= probe.timeout_seconds + 1.5
    finally:
        for task in stuck:
            task.cancel()
        kube.executor.shutdown(wait=False, cancel_futures=True)
