"""An in-memory Kubernetes of our own small client interface (the methods of kube.client.KubeIO the lifecycle
calls), with the API's semantics where the lifecycle depends on them: create refuses an existing name (409),
writes are guarded by resourceVersion (409), a merge patch's None removes a key, status patches of a vanished
object answer None. Failures are injected per method to play conflicts and outages.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from mtls_operator.api.names import CERTIFICATE_LABEL, MANAGED_BY, MANAGER, PUBLISHED_BY
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.health import ApiHealth
from mtls_operator.kube.objects import Conflict, Owner, SecretView

Key = tuple[str, str]


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[Key, SecretView] = {}
        self.configmaps: dict[Key, dict[str, Any]] = {}
        self.csrs: dict[str, dict[str, Any]] = {}
        self.certificates: dict[Key, dict[str, Any]] = {}
        self.issuers: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, namespace, name)
        self.revocations: dict[Key, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str, str]] = []  # (certificate name, type, reason, message)
        self.calls: list[str] = []
        # RBAC for SubjectAccessReviews: (user or group, resource, name, verb) that are allowed, in any namespace
        self.grants: set[tuple[str, str, str, str]] = set()
        self.health = ApiHealth()
        self._versions = itertools.count(1)
        # method name -> a callable raising (or returning None to let the call through), consumed once per call
        self.failures: dict[str, list[Callable[[], None]]] = {}

    # --- test controls ------------------------------------------------------------------------------------------

    def fail_next(self, method: str, exc: BaseException) -> None:
        def raise_it() -> None:
            raise exc

        self.failures.setdefault(method, []).append(raise_it)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        pending = self.failures.get(method)
        if pending:
            pending.pop(0)()

    def _rv(self) -> str:
        return str(next(self._versions))

    def put_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        *,
        secret_type: str = "Opaque",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> SecretView:
        """As a person or another tool would create it (no ownership metadata unless given)."""
        view = SecretView(
            name, namespace, dict(data), dict(labels or {}), [], self._rv(), secret_type, dict(annotations or {})
        )
        self.secrets[(namespace, name)] = view
        return copy.deepcopy(view)

    def add_certificate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(body))
        stored.setdefault("metadata", {})["resourceVersion"] = self._rv()
        self.certificates[(stored["metadata"]["namespace"], stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def reasons(self, name: str | None = None) -> list[str]:
        return [reason for cert, _, reason, _ in self.events if name is None or cert == name]

    # --- the client interface -----------------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> SecretView | None:
        self._call("get_secret")
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        return await self.get_secret(namespace, name)

    @staticmethod
    def _owned(owner: Owner) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """The ownership metadata the real client writes (one source: the fake cannot drift from it)."""
        meta = KubeIO._owned_metadata(owner)
        return meta["labels"], meta["annotations"], [ref["uid"] for ref in meta["ownerReferences"]]

    async def create_secret(
        self,
        owner: Owner,
        name: str,
        secret_type: str,
        data: Mapping[str, bytes | None],
        annotations: Mapping[str, str | None] | None = None,
    ) -> SecretView:
        self._call("create_secret")
        key = (owner.namespace, name)
        if key in self.secrets:
            raise Conflict(f"Secret {name} already exists")
        labels, owned_annotations, owner_uids = self._owned(owner)
        owned_annotations.update({k: v for k, v in (annotations or {}).items() if v is not None})
        view = SecretView(
            name,
            owner.namespace,
            {k: v for k, v in data.items() if v is not None},
            labels,
            owner_uids,
            self._rv(),
            secret_type,
            owned_annotations,
        )
        self.secrets[key] = view
        return copy.deepcopy(view)

    async def replace_secret_data(
        self,
        secret: SecretView,
        data: Mapping[str, bytes | None] | None,
        owner: Owner | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> SecretView:
        self._call("replace_secret_data")
        key = (secret.namespace, secret.name)
        current = self.secrets.get(key)
        if current is None or current.resource_version != secret.resource_version:
            raise Conflict(f"Secret {secret.name} changed while we wrote it")
        updated = copy.deepcopy(current)
        if data is not None:
            for k, v in data.items():
                if v is None:
                    updated.data.pop(k, None)
                else:
                    updated.data[k] = v
        if owner is not None:
            labels, owned_annotations, owner_uids = self._owned(owner)
            updated.labels.update(labels)
            updated.annotations.update(owned_annotations)
            updated.owner_uids = owner_uids
        for k, v in (annotations or {}).items():
            if v is None:
                updated.annotations.pop(k, None)
            else:
                updated.annotations[k] = v
        updated.resource_version = self._rv()
        self.secrets[key] = updated
        return copy.deepcopy(updated)

    async def delete_secret(self, namespace: str, name: str) -> None:
        self._call("delete_secret")
        self.secrets.pop((namespace, name), None)

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_configmap")
        found = self.configmaps.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def get_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = await self.get_configmap(namespace, name)
        return None if found is None else dict(found.get("data") or {})

    async def write_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str | None],
        existing: Mapping[str, Any] | None,
        *,
        source: str,
    ) -> None:
        self._call("write_configmap")
        current = self.configmaps.get((namespace, name))
        if (existing is None) != (current is None) or (
            current is not None
            and existing is not None
            and current["metadata"]["resourceVersion"] != existing["metadata"]["resourceVersion"]
        ):
            raise Conflict(f"ConfigMap {name} changed while we wrote it")
        merged = {**((current or {}).get("data") or {}), **data}
        self.configmaps[(namespace, name)] = {
            "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER},
                         "annotations": {PUBLISHED_BY: source}, "resourceVersion": self._rv()},
            "data": {k: v for k, v in merged.items() if v is not None},
        }  # fmt: skip

    async def get_csr(self, name: str) -> dict[str, Any] | None:
        self._call("get_csr")
        found = self.csrs.get(name)
        return copy.deepcopy(found) if found is not None else None

    async def create_csr(self, owner: Owner, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        self._call("create_csr")
        if name in self.csrs:
            raise Conflict(f"CertificateSigningRequest {name} already exists")
        obj = {"metadata": {"name": name, "labels": {CERTIFICATE_LABEL: owner.name}}, "spec": dict(spec), "status": {}}
        self.csrs[name] = obj
        return copy.deepcopy(obj)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        self._call("patch_status")
        body = self.certificates.get((namespace, name))
        if body is None:
            return None
        merged = dict(body.get("status") or {})
        for k, v in status.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = copy.deepcopy(v)
        body["status"] = merged
        body["metadata"]["resourceVersion"] = self._rv()
        return copy.deepcopy(body)

    def add_issuer(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(body))
        meta = stored.setdefault("metadata", {})
        meta["resourceVersion"] = self._rv()
        self.issuers[(kind, meta.get("namespace") or "", meta["name"])] = stored
        return copy.deepcopy(stored)

    async def patch_issuer_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        self._call("patch_issuer_status")
        body = self.issuers.get((kind, namespace, name))
        if body is None:
            return None
        body["status"] = _merge_patch(body.get("status") or {}, status)
        body["metadata"]["resourceVersion"] = self._rv()
        return copy.deepcopy(body)

    async def get_certificate(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_certificate")
        found = self.certificates.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def add_revocation(self, body: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(body))
        meta = stored.setdefault("metadata", {})
        meta["resourceVersion"] = self._rv()
        self.revocations[(meta["namespace"], meta["name"])] = stored
        return copy.deepcopy(stored)

    async def annotate_revocation(
        self, namespace: str, name: str, uid: str, annotations: Mapping[str, str]
    ) -> dict[str, Any] | None:
        self._call("annotate_revocation")
        body = self.revocations.get((namespace, name))
        if body is None or body["metadata"].get("uid") != uid:
            return None
        body["metadata"].setdefault("annotations", {}).update(annotations)
        body["metadata"]["resourceVersion"] = self._rv()
        return copy.deepcopy(body)

    async def patch_revocation_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        self._call("patch_revocation_status")
        body = self.revocations.get((namespace, name))
        if body is None:
            return None
        body["status"] = _merge_patch(body.get("status") or {}, status)
        body["metadata"]["resourceVersion"] = self._rv()
        return copy.deepcopy(body)

    async def review_resource_access(
        self,
        username: str,
        groups: tuple[str, ...],
        group: str,
        resource: str,
        name: str,
        verb: str,
        namespace: str = "",
    ) -> bool:
        self._call("review_resource_access")
        return any((subject, resource, name, verb) in self.grants for subject in (username, *groups))

    async def post_event(self, involved: Owner, event_type: str, reason: str, message: str) -> None:
        self._call("post_event")
        assert involved.name and (involved.namespace or involved.events_namespace), "an Event names its object"
        self.events.append((involved.name, event_type, reason, message))


def _merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386: objects merge key by key, None removes, anything else replaces."""
    merged = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge_patch(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
