"""Rolls the workloads that opted in (ROLLOUT_ANNOTATION) once a certificate they use is rotated in service.

For clients that read their certificate files once at start: the kubelet refreshes the mounted Secret within about
a minute, but such a process keeps the old certificate until it restarts, and fails when that one expires
(cert-manager #1168). Writing the new serial into the pod template rolls the workload the way the workload's own
strategy rolls it (maxUnavailable, PodDisruptionBudgets apply), as `kubectl rollout restart` would.

Runs from the work queue, one key per namespace (rotations coalesce); an outage raises, so the queue retries with
backoff. Off unless --roll-workloads (its RBAC, patch on apps workloads, is a chart value).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import SERIALS_ANNOTATION
from mtls_operator.kube.health import is_outage
from mtls_operator.kube.objects import Owner
from mtls_operator.kube.workloads import WorkloadIO
from mtls_operator.lifecycle.policy.rollout import rollout

log = logging.getLogger(__name__)

PostEvent = Callable[[Owner, str, str, str], Awaitable[None]]


class WorkloadRoller:
    def __init__(self, workloads: WorkloadIO, post_event: PostEvent) -> None:
        self.workloads = workloads
        self.post_event = post_event

    async def roll_namespace(
        self, namespace: str, serials_in_service: Mapping[str, str], rotated: set[str], owners: Mapping[str, Owner]
    ) -> list[str]:
        """Rolls every opted-in workload of `namespace` whose Pods started with another serial; returns them."""
        rolled: list[str] = []
        for attempt in range(3):
            try:
                listed = await self.workloads.list_workloads(namespace)
                for workload in listed:
                    decision = rollout(workload, serials_in_service, rotated)
                    if decision is None:
                        continue
                    value, causes = decision
                    meta = workload["metadata"]
                    label = f"{workload['kind']}/{meta['name']}"
                    await self.workloads.set_template_annotation(
                        workload["kind"], namespace, meta["name"], SERIALS_ANNOTATION, value, meta["resourceVersion"]
                    )
                    rolled.append(label)
                    for certificate in causes:
                        if certificate in owners:
                            message = f"rolled {label}: its Pods start with serial {serials_in_service[certificate]}"
                            await self.post_event(owners[certificate], "Normal", "WorkloadRolled", message)
                return rolled
            except ApiException as exc:
                if is_outage(exc):
                    raise  # the queue retries with backoff
                if exc.status == 409 and attempt < 2:
                    continue  # the workload changed since the list: read it again
                problem = f"cannot roll workloads in {namespace}: {exc.status} {exc.reason}"
                log.warning("%s", problem)
                for certificate in rotated:
                    if certificate in owners:
                        await self.post_event(owners[certificate], "Warning", "WorkloadRolloutFailed", problem)
                return rolled
        return rolled
