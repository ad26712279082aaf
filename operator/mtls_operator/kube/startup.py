"""Start-up: wait until the MtlsCertificate API serves before the operator starts watching it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import GROUP, PLURAL, VERSION
from mtls_operator.kube.client import REQUEST_TIMEOUT


def wait_until_served(
    namespace: str | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    warn_every: float = 60.0,
) -> float:
    """Blocks until the MtlsCertificate list endpoint answers 200; returns the seconds waited.

    A CRD that was just created is `Established` before its storage is ready: a list then answers
    429 "storage is (re)initializing" for a moment. Starting kopf in that moment makes it log an error and retry;
    waiting here first keeps a normal start free of error lines. A missing CRD is waited for too (a user may install
    the operator before the CRD), with a warning each `warn_every` seconds saying what is missing.
    """
    api = kubernetes.client.CustomObjectsApi()
    log = logging.getLogger(__name__)
    started = last_warning = clock()
    first = True
    while True:
        try:
            bounded: dict[str, Any] = {
                "limit": 1,
                "_preload_content": False,
                "_request_timeout": REQUEST_TIMEOUT,
            }
            if namespace:
                api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **bounded)
            else:
                api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **bounded)
            return clock() - started
        except ApiException as exc:
            if exc.status not in (404, 429, 503):
                raise
            what = "is not installed" if exc.status == 404 else "is still initialising its storage"
        now = clock()
        if first:
            log.info("waiting for the %s.%s API: the CRD %s", PLURAL, GROUP, what)
            first = False
        elif now - last_warning >= warn_every:
            log.warning("still waiting after %.0fs for the %s.%s API: the CRD %s", now - started, PLURAL, GROUP, what)
            last_warning = now
        sleep(0.5)
