"""The composition root: the one place that builds the running operator's object graph from its Settings.

Order matters and is the whole point of this module: metrics first (the client counts every request into them),
the Secret cache, the client reading through that cache, the probe sharing the client's health, the controller,
and the leader elector. Nothing is wired by assigning attributes afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import kubernetes

from mtls_operator.hsm.token import TokenKeys
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.health import ApiProbe
from mtls_operator.kube.secretcache import SecretInformer
from mtls_operator.kube.workloads import WorkloadIO
from mtls_operator.runtime.controller import Controller
from mtls_operator.runtime.leader import LeaderElector, default_namespace
from mtls_operator.runtime.metrics import Metrics
from mtls_operator.runtime.rollout import WorkloadRoller
from mtls_operator.runtime.settings import Settings


@dataclass
class Operator:
    settings: Settings
    controller: Controller
    secret_cache: SecretInformer
    elector: LeaderElector | None


def build(settings: Settings) -> Operator:
    """Needs a loaded client configuration (kube.config.load_client_config)."""
    metrics = Metrics()
    # Its own client: long-running watches must not hold connections of the reconcilers' pool.
    secret_cache = SecretInformer(
        kubernetes.client.ApiClient(kubernetes.client.Configuration.get_default_copy()),
        settings.secret_namespaces,
        page_size=settings.secret_cache.page_size,
        watch_seconds=settings.secret_cache.watch_seconds,
    )
    metrics.watch_cache(secret_cache.counts)
    kube = KubeIO(
        threads=settings.api.threads,
        cache=secret_cache,
        on_request=metrics.count_request,
        request_timeout=settings.api.request_timeout,
    )
    probe = ApiProbe(
        kube.api_client.configuration, kube.health, settings.probe_namespace, settings.api.probe_timeout_seconds
    )
    roller = WorkloadRoller(WorkloadIO(kube), kube.post_event) if settings.roll_workloads else None
    controller = Controller(
        kube,
        probe,
        metrics=metrics,
        settings=settings,
        secret_changes=lambda: secret_cache.changes,
        roller=roller,
        tokens=TokenKeys(settings.hsm.modules, settings.hsm.namespaced_tokens),
        sweep=secret_cache.sweep,
    )
    elector = None
    if settings.leader.enabled:
        leader = settings.leader
        elector = LeaderElector(
            leader.namespace or default_namespace(),
            leader.name,
            on_change=controller.set_leader,
            lease_duration=leader.lease_duration_seconds,
            renew_deadline=leader.renew_deadline_seconds,
            retry_period=leader.retry_period_seconds,
        )
    return Operator(settings, controller, secret_cache, elector)
