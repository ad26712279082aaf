"""The Kubernetes client we use: CRUD for Secrets, ConfigMaps, CertificateSigningRequests, our status, Events.

No decisions are made here. Everything blocking runs in a thread pool so the event loop stays free. Responses are
read as raw JSON (`_preload_content=False`): faster than the client's models, and Secret bytes stay plain bytes.
Secret reads come from a cache when one is given (the Secret cache, handed over at construction), and our writes are
fed back into it; the cache never imports this module (controller-runtime's split of client and cache).
Over 300 lines on purpose: one method per verb and kind, each small; split by kind it would repeat `_run`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import kubernetes
from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import (
    API_VERSION,
    CERTIFICATE_LABEL,
    COMPONENT,
    GROUP,
    ISSUER_KIND,
    ISSUER_PLURALS,
    KIND,
    MANAGED_BY,
    MANAGER,
    NAMESPACE_LABEL,
    PLURAL,
    PUBLISHED_BY,
    REVOCATION_PLURAL,
    UID_ANNOTATION,
    VERSION,
)
from mtls_operator.api.status import format_time, utcnow
from mtls_operator.kube.health import ApiHealth, is_outage
from mtls_operator.kube.objects import Conflict, Owner, Refused, SecretView, encode_data, secret_from_json

# (connect, read) seconds. The apiserver answers every request within its own --request-timeout (60 s, a 504
# while etcd is away); without a client timeout a connection that died without a reset would hold a kube-io
# thread forever, and eight of those would stop every reconcile.
REQUEST_TIMEOUT = (10.0, 65.0)


class SecretCache(Protocol):
    """What the client needs of a Secret cache (kube.secretcache.SecretInformer implements it)."""

    async def get(
        self, namespace: str, name: str, fetch: Callable[[], Awaitable[SecretView | None]]
    ) -> SecretView | None: ...

    def written(self, view: SecretView) -> None: ...

    def deleted(self, namespace: str, name: str) -> None: ...

    def conflicted(self, namespace: str, name: str) -> None: ...


class KubeIO:
    def __init__(
        self,
        api_client: kubernetes.client.ApiClient | None = None,
        *,
        threads: int = 8,
        cache: SecretCache | None = None,
        on_request: Callable[[str, str], None] | None = None,
        request_timeout: tuple[float, float] = REQUEST_TIMEOUT,
    ) -> None:
        if api_client is None:
            config = kubernetes.client.Configuration.get_default_copy()
            # One kept-alive connection per thread: the default pool of 4 closes the rest after every request,
            # and each new TLS handshake costs CPU that the event loop then waits for.
            config.connection_pool_maxsize = threads
            api_client = kubernetes.client.ApiClient(config)
        self.api_client = api_client
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.certificates = kubernetes.client.CertificatesV1Api(self.api_client)
        self.admission = kubernetes.client.AdmissionregistrationV1Api(self.api_client)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube-io")
        self.health = ApiHealth()
        self.instance = socket.gethostname()
        self.on_request = on_request  # (verb, resource) of every call: the API request metric
        self.cache = cache  # Secret reads come from here when set; our writes are fed back into it
        self.request_timeout = request_timeout

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One API call in the thread pool; the JSON is parsed there too, so the loop only gets the result."""
        if self.on_request is not None:
            name = fn.__name__
            verb, _, resource = name.partition("_namespaced_") if "_namespaced_" in name else name.partition("_")
            self.on_request(verb, resource)
        loop = asyncio.get_running_loop()
        kwargs.setdefault("_request_timeout", self.request_timeout)
        try:
            result: dict[str, Any] = await loop.run_in_executor(
                self.executor, lambda: json.loads(fn(*args, _preload_content=False, **kwargs).data)
            )
        except Exception as exc:
            if is_outage(exc):
                self.health.failed(exc)
            else:
                self.health.succeeded()  # an answer, even a refusal, means the API is there
            raise
        self.health.succeeded()
        return result

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Any client method through the same pool, health tracking and request metric (kube.workloads uses it)."""
        return await self._run(fn, *args, **kwargs)

    async def get_secret(self, namespace: str, name: str) -> SecretView | None:
        """From the informer's cache when there is one: a GET only for what the cache cannot answer."""
        if self.cache is not None:
            return await self.cache.get(namespace, name, lambda: self.read_secret(namespace, name))
        return await self.read_secret(namespace, name)

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        try:
            resp = await self._run(self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return secret_from_json(resp)

    async def get_admission_policy(self, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(ValidatingAdmissionPolicy `name`, ValidatingAdmissionPolicyBinding `name`), each None when absent."""
        found: list[dict[str, Any] | None] = []
        for read in (
            self.admission.read_validating_admission_policy,
            self.admission.read_validating_admission_policy_binding,
        ):
            try:
                found.append(await self._run(read, name))
            except ApiException as exc:
                if exc.status != 404:
                    raise
                found.append(None)
        return found[0], found[1]

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._run(self.core.read_namespaced_config_map, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

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
        """Creates our ConfigMap, or replaces its data guarded by resourceVersion (a None value removes a key).
        Holds certificates and CRLs only."""
        if existing is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER},
                             "annotations": {PUBLISHED_BY: source}},
                "data": {k: v for k, v in data.items() if v is not None},
            }  # fmt: skip
            try:
                await self._run(self.core.create_namespaced_config_map, namespace, body)
            except ApiException as exc:
                if exc.status == 409:
                    raise Conflict(f"ConfigMap {name} was created meanwhile") from None
                raise
            return
        patch = {
            "metadata": {"resourceVersion": existing["metadata"]["resourceVersion"],
                         "annotations": {PUBLISHED_BY: source}},
            "data": dict(data),
        }  # fmt: skip
        try:
            await self._run(
                self.core.patch_namespaced_config_map, name, namespace, patch,
                _content_type="application/merge-patch+json",
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"ConfigMap {name} changed while we wrote it") from None
            raise

    async def get_csr(self, name: str) -> dict[str, Any] | None:
        """A certificates.k8s.io/v1 CertificateSigningRequest (cluster-scoped), or None."""
        try:
            return await self._run(self.certificates.read_certificate_signing_request, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def create_csr(self, owner: Owner, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Labelled with the certificate it serves (a cluster-scoped object cannot have a namespaced owner)."""
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {
                "name": name,
                "labels": {MANAGED_BY: MANAGER, CERTIFICATE_LABEL: owner.name, NAMESPACE_LABEL: owner.namespace},
            },
            "spec": dict(spec),
        }
        try:
            return await self._run(self.certificates.create_certificate_signing_request, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"CertificateSigningRequest {name} already exists") from None
            if exc.status in (400, 403, 422):
                raise Refused(exc.status, _api_message(exc)) from None
            raise

    @staticmethod
    def _owned_metadata(owner: Owner) -> dict[str, Any]:
        """Labels and an annotation name the MtlsCertificate; an owner reference only when the owner is to be
        garbage-collected with it (the lifecycle decides: secretDeletionPolicy Delete)."""
        reference = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": owner.name,
            "uid": owner.uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
        return {
            "labels": {MANAGED_BY: MANAGER, CERTIFICATE_LABEL: owner.name},
            "annotations": {UID_ANNOTATION: owner.uid},
            "ownerReferences": [reference] if owner.garbage_collected else [],
        }

    async def create_secret(
        self,
        owner: Owner,
        name: str,
        secret_type: str,
        data: Mapping[str, bytes | None],
        annotations: Mapping[str, str | None] | None = None,
    ) -> SecretView:
        """Create only: a create cannot silently replace a key someone else stored first."""
        meta = {"name": name, "namespace": owner.namespace, **self._owned_metadata(owner)}
        meta["annotations"].update({k: v for k, v in (annotations or {}).items() if v is not None})
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": secret_type,
            "data": encode_data({k: v for k, v in data.items() if v is not None}),
        }
        try:
            resp = await self._run(
                self.core.create_namespaced_secret,
                owner.namespace,
                body,
            )
        except ApiException as exc:
            if exc.status == 409:
                self._conflicted(owner.namespace, name)
                raise Conflict(f"Secret {name} already exists") from None
            raise
        return self._remember(secret_from_json(resp))

    async def replace_secret_data(
        self,
        secret: SecretView,
        data: Mapping[str, bytes | None] | None,
        owner: Owner | None = None,
        annotations: Mapping[str, str | None] | None = None,
    ) -> SecretView:
        """One atomic write of all keys (a None value removes one), guarded by resourceVersion (optimistic
        concurrency). With `owner`, the ownership metadata is set too (adoption by a re-created object, or a
        changed secretDeletionPolicy); `annotations` are merged (None removes one)."""
        meta: dict[str, Any] = {"name": secret.name, "namespace": secret.namespace}
        meta["resourceVersion"] = secret.resource_version
        if owner is not None:
            meta.update(self._owned_metadata(owner))
        if annotations:
            meta["annotations"] = {**meta.get("annotations", {}), **annotations}
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta}
        if data is not None:
            body["data"] = encode_data(data)
        try:
            resp = await self._run(
                self.core.patch_namespaced_secret,
                secret.name,
                secret.namespace,
                body,
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                self._conflicted(secret.namespace, secret.name)
                raise Conflict(f"Secret {secret.name} changed while we wrote it") from None
            raise
        return self._remember(secret_from_json(resp))

    def _remember(self, secret: SecretView) -> SecretView:
        """Our write's result is the newest version we know: the cache serves it at once, and the watch event
        that echoes it later changes nothing."""
        if self.cache is not None:
            self.cache.written(secret)
        return secret

    def _conflicted(self, namespace: str, name: str) -> None:
        if self.cache is not None:
            self.cache.conflicted(namespace, name)  # the cache was behind: read it fresh next time

    async def delete_secret(self, namespace: str, name: str) -> None:
        try:
            await self._run(self.core.delete_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if self.cache is not None:
            self.cache.deleted(namespace, name)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patches status (a None value removes a field); returns the updated object or None if gone."""
        try:
            resp = await self._run(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": dict(status)},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return resp

    async def list_issuers(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every MtlsIssuer (of `namespace`, or all) or ClusterMtlsIssuer."""
        scope = namespace if kind == ISSUER_KIND else None
        return [item async for page in self.pages(ISSUER_PLURALS[kind], scope) for item in page]

    async def pages(self, plural: str, namespace: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """The objects of one of our resources (of `namespace`, or all), one page of 500 at a time: a caller that
        handles a page before asking for the next never holds more than one parsed page."""
        token = None
        while True:
            paging = {"limit": 500, **({"_continue": token} if token else {})}
            if namespace is not None:
                page = await self._run(
                    self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural, **paging
                )
            else:
                page = await self._run(self.custom.list_cluster_custom_object, GROUP, VERSION, plural, **paging)
            yield page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    async def get_certificate(self, namespace: str, name: str) -> dict[str, Any] | None:
        """An MtlsCertificate read from the API (not this shard's cache: a revocation may name any certificate)."""
        try:
            return await self._run(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list_revocations(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every MtlsRevocation (of `namespace`, or all)."""
        return [item async for page in self.pages(REVOCATION_PLURAL, namespace) for item in page]

    async def annotate_revocation(
        self, namespace: str, name: str, uid: str, annotations: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """Records on the object what it revokes (guarded by its uid: never on a newer object of that name)."""
        body = {"metadata": {"uid": uid, "annotations": dict(annotations)}}
        try:
            return await self._run(
                self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, REVOCATION_PLURAL, name, body,
                _content_type="application/merge-patch+json",
            )  # fmt: skip
        except ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise

    async def patch_revocation_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        try:
            return await self._run(
                self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, REVOCATION_PLURAL,
                name, {"status": dict(status)}, _content_type="application/merge-patch+json",
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def review_token(self, token: str) -> dict[str, Any]:
        """A TokenReview: who presents this bearer token (status.authenticated, status.user)."""
        api = kubernetes.client.AuthenticationV1Api(self.api_client)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        return dict((await self._run(api.create_token_review, body)).get("status") or {})

    async def review_access(self, user: Mapping[str, Any], path: str, verb: str) -> bool:
        """A SubjectAccessReview: may this user `verb` the non-resource URL `path`?"""
        spec = {
            "user": user.get("username"),
            "groups": user.get("groups") or [],
            "uid": user.get("uid"),
            "extra": user.get("extra") or {},
            "nonResourceAttributes": {"path": path, "verb": verb},
        }
        return await self._access_allowed(spec)

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
        """A SubjectAccessReview: may this user `verb` the object group/resource/name (in `namespace`; "" for a
        cluster-scoped one)?"""
        attributes = {"group": group, "resource": resource, "name": name, "verb": verb, "namespace": namespace}
        return await self._access_allowed({"user": username, "groups": list(groups), "resourceAttributes": attributes})

    async def _access_allowed(self, spec: dict[str, Any]) -> bool:
        api = kubernetes.client.AuthorizationV1Api(self.api_client)
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        return bool(((await self._run(api.create_subject_access_review, body)).get("status") or {}).get("allowed"))

    async def whoami(self) -> str:
        """The name the apiserver authenticates us as (a SelfSubjectReview: every authenticated user may ask)."""
        api = kubernetes.client.AuthenticationV1Api(self.api_client)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        review = await self._run(api.create_self_subject_review, body)
        return str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")

    async def create_revocation(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """False when one of that name exists already (made by an earlier attempt: revocation names are fixed)."""
        try:
            await self._run(
                self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, REVOCATION_PLURAL, dict(body)
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def set_finalizers(self, namespace: str, name: str, resource_version: str, finalizers: list[str]) -> None:
        """Replaces an MtlsCertificate's finalizers, guarded by resourceVersion (Conflict when it changed)."""
        patch = {"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}}
        try:
            await self._run(
                self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch,
                _content_type="application/merge-patch+json",
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"MtlsCertificate {name} changed while we set its finalizers") from None
            if exc.status != 404:
                raise

    async def list_namespaces(self) -> list[dict[str, Any]]:
        """Namespaces' metadata (their labels decide cluster issuers' namespaceSelectors)."""
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = await self._run(self.core.list_namespace, limit=500, **({"_continue": token} if token else {}))
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def patch_issuer_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patches an MtlsIssuer's or ClusterMtlsIssuer's status; None if it is gone."""
        body = {"status": dict(status)}
        try:
            if namespace:
                return await self._run(
                    self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace,
                    ISSUER_PLURALS[kind], name, body, _content_type="application/merge-patch+json",
                )  # fmt: skip
            return await self._run(
                self.custom.patch_cluster_custom_object_status, GROUP, VERSION, ISSUER_PLURALS[kind], name, body,
                _content_type="application/merge-patch+json",
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def post_event(self, involved: Owner, event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on one of our objects. Messages are built by us and never contain key bytes."""
        now = format_time(utcnow())
        namespace = involved.events_namespace or involved.namespace or "default"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved.name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": involved.kind,
                "name": involved.name,
                "namespace": involved.namespace or None,
                "uid": involved.uid or None,
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": f"{GROUP}/{COMPONENT}",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._run(self.core.create_namespaced_event, namespace, body)


def _api_message(exc: ApiException) -> str:
    """The apiserver's own words from a Status body ("... is forbidden: ..."), else the HTTP reason."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or exc.reason or f"HTTP {exc.status}")[:1024]
