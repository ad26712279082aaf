"""Deployments, StatefulSets and DaemonSets: read them and patch their pod template (the workload rollout).

Through KubeIO's thread pool, health tracking and request metric, like every other call. No decisions here
(lifecycle.policy.rollout makes them).
"""

from __future__ import annotations

from typing import Any

import kubernetes

from mtls_operator.kube.client import KubeIO

KINDS = ("Deployment", "StatefulSet", "DaemonSet")


class WorkloadIO:
    def __init__(self, kube: KubeIO) -> None:
        self.kube = kube
        self.apps = kubernetes.client.AppsV1Api(kube.api_client)

    def _verb(self, verb: str, kind: str) -> Any:
        resource = {"Deployment": "deployment", "StatefulSet": "stateful_set", "DaemonSet": "daemon_set"}[kind]
        return getattr(self.apps, f"{verb}_namespaced_{resource}")

    async def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
        """Every Deployment, StatefulSet and DaemonSet of the namespace, each with its `kind` set."""
        found: list[dict[str, Any]] = []
        for kind in KINDS:
            listed = await self.kube.call(self._verb("list", kind), namespace)
            found.extend({**item, "kind": kind} for item in listed.get("items", []))
        return found

    async def set_template_annotation(
        self, kind: str, namespace: str, name: str, key: str, value: str, resource_version: str
    ) -> None:
        """Merge-patches one pod-template annotation, on the resourceVersion read (a 409 if it changed since)."""
        patch = {
            "metadata": {"resourceVersion": resource_version},
            "spec": {"template": {"metadata": {"annotations": {key: value}}}},
        }
        await self.kube.call(
            self._verb("patch", kind), name, namespace, patch, _content_type="application/merge-patch+json"
        )
