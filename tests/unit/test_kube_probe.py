"""The health probe against a real socket that accepts requests and never answers, as an apiserver does while
etcd is down: the probe must report the outage even when every kube-io thread is stuck in such a request."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import kubernetes
import pytest

from mtls_operator.kube import KubeIO


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections, reads what comes, never writes a byte back."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    connections: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connections.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in connections:  # the stuck requests fail now, which frees their threads
            connection.close()
        server.close()


async def test_probe_reports_the_outage_while_every_io_thread_is_stuck(silent_server: str) -> None:
    config = kubernetes.client.Configuration()
    config.host = silent_server
    kube = KubeIO(kubernetes.client.ApiClient(config), threads=2)
    try:
        # Two requests without a client timeout (as reconciles' writes are) hold both kube-io threads.
        stuck = [asyncio.create_task(kube._run(kube.core.read_namespaced_secret, "s", "ns")) for _ in range(2)]
        await asyncio.sleep(0.5)
        assert not any(task.done() for task in stuck)

        started = time.monotonic()
        await asyncio.wait_for(kube.probe(), KubeIO.PROBE_DEADLINE_SECONDS + 3)
        assert not kube.health.reachable
        # One request's timeout: not queued behind the stuck threads, not retried by urllib3.
        assert time.monotonic() - started <= KubeIO.PROBE_TIMEOUT_SECONDS + 1.5
    finally:
        for task in stuck:
            task.cancel()
        kube.executor.shutdown(wait=False, cancel_futures=True)
