"""The one small Kubernetes I/O layer: Secrets, the MtlsCertificate status, and Events.

Everything blocking runs in a thread pool so the event loop stays free. Responses are read as raw JSON
(`_preload_content=False`): faster than the client's models, and Secret bytes stay plain bytes.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import io
import json
import logging
import pickle
import socket
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from . import GROUP, KIND, PLURAL, VERSION
from .apihealth import ApiHealth, is_outage
from .policy.ownership import CERTIFICATE_LABEL, MANAGED_BY, MANAGER, UID_ANNOTATION, secret_ownership

NAMESPACE_LABEL = "mtls.dev/namespace"  # on cluster-scoped objects (CertificateSigningRequests)
PUBLISHED_BY = "mtls.dev/published-by"  # on CA ConfigMaps: the certificates whose CAs it holds
COMPONENT = "mtls-operator"

if TYPE_CHECKING:
    from .informer import SecretInformer


class Conflict(Exception):
    """Someone else changed or created the object first; re-read and decide again."""


@dataclass(slots=True)
class SecretView:
    name: str
    namespace: str
    data: dict[str, bytes]
    labels: dict[str, str]
    owner_uids: list[str]
    resource_version: str
    type: str = "Opaque"
    annotations: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def ownership(self, certificate_name: str, certificate_uid: str) -> str:
        """policy.ownership: OWNED, ADOPTABLE (ours, for an earlier object of that name) or FOREIGN."""
        return secret_ownership(self.labels, self.annotations, self.owner_uids, certificate_name, certificate_uid)


# The same CA certificate sits in the ca.crt of every Secret it signed: kept once (a few distinct values in a
# cluster, about 1.2 KB each saved per Secret; bounded, since only the CA bundles are shared like this).
_SHARED_VALUES: dict[bytes, int] = {}  # value → its index in _SHARED_LIST
_SHARED_LIST: list[bytes] = []
SHARED_KEYS = ("ca.crt",)
MAX_SHARED = 1024


def _decoded(key: str, value: str) -> bytes:
    data = base64.b64decode(value)
    if key not in SHARED_KEYS:
        return data
    index = _SHARED_VALUES.get(data)
    if index is not None:
        return _SHARED_LIST[index]
    if len(_SHARED_LIST) < MAX_SHARED:
        _SHARED_VALUES[data] = len(_SHARED_LIST)
        _SHARED_LIST.append(data)
    return data


class _Packer(pickle.Pickler):
    def persistent_id(self, obj: Any) -> int | None:
        return _SHARED_VALUES.get(obj) if type(obj) is bytes else None  # a shared value: its index, not its bytes


class _Unpacker(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> bytes:
        return _SHARED_LIST[pid]


def pack_view(view: SecretView) -> bytes:
    """One bytes object for a cached Secret (the informer keeps thousands): see informer.Entry."""
    out = io.BytesIO()
    _Packer(out, protocol=pickle.HIGHEST_PROTOCOL).dump(view)
    return out.getvalue()


def unpack_view(packed: bytes) -> SecretView:
    view: SecretView = _Unpacker(io.BytesIO(packed)).load()  # our own bytes, never input
    return view


def secret_from_json(obj: Mapping[str, Any]) -> SecretView:
    # Keys, namespaces, types and our managed-by value repeat in every Secret: interned, each is kept once
    # (a parsed JSON document has its own copy of every string; about 600 bytes per cached Secret).
    intern = sys.intern
    meta = obj.get("metadata", {})
    return SecretView(
        name=meta["name"],
        namespace=intern(meta.get("namespace", "")),
        data={intern(k): _decoded(k, v) for k, v in (obj.get("data") or {}).items()},
        labels={intern(k): intern(v) if k == MANAGED_BY else v for k, v in (meta.get("labels") or {}).items()},
        annotations={intern(k): v for k, v in (meta.get("annotations") or {}).items()},
        owner_uids=[o.get("uid", "") for o in meta.get("ownerReferences") or []],
        resource_version=meta.get("resourceVersion", ""),
        type=intern(obj.get("type", "Opaque")),
    )


def _encode(data: Mapping[str, bytes | None]) -> dict[str, str | None]:
    """None removes a key in a merge patch."""
    return {k: None if v is None else base64.b64encode(v).decode() for k, v in data.items()}


def client_without_retries(configuration: kubernetes.client.Configuration) -> kubernetes.client.ApiClient:
    """For calls that must fail within their own timeout (health probe, leader election): urllib3 retries a timed-out
    read three times by default, four times the timeout for one silent request."""
    config = copy.deepcopy(configuration)
    config.retries = False
    return kubernetes.client.ApiClient(config)


def load_client_config() -> None:
    """In-cluster service account when running in a pod, else KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()


class KubeIO:
    def __init__(self, api_client: kubernetes.client.ApiClient | None = None, threads: int = 8) -> None:
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
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube-io")
        # The probe's own thread and client: during an etcd outage every kube-io thread can sit in a request the
        # apiserver holds for up to a minute, and a probe queued behind them would leave /readyz at 200 throughout.
        self._probe_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-probe")
        self._probe_client: kubernetes.client.ApiClient | None = None
        self.health = ApiHealth()
        self.instance = socket.gethostname()
        self.on_request: Callable[[str, str], None] | None = None
        # Reads of Secrets come from here when set (informer.SecretInformer); our writes are fed back into it.
        self.secrets: SecretInformer | None = None
        self.probe_namespace: str | None = None  # where the health probe may list MtlsCertificates (None: all)

    # (connect, read) seconds. The apiserver answers every request within its own --request-timeout (60 s, a 504
    # while etcd is away); without a client timeout a connection that died without a reset would hold a kube-io
    # thread forever, and eight of those would stop every reconcile.
    REQUEST_TIMEOUT = (10.0, 65.0)

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One API call in the thread pool; the JSON is parsed there too, so the loop only gets the result."""
        if self.on_request is not None:
            name = fn.__name__
            verb, _, resource = name.partition("_namespaced_") if "_namespaced_" in name else name.partition("_")
            self.on_request(verb, resource)
        loop = asyncio.get_running_loop()
        kwargs.setdefault("_request_timeout", self.REQUEST_TIMEOUT)
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

    PROBE_TIMEOUT_SECONDS = 5.0  # per request; the probe's client does not retry, so one silent request fails it
    PROBE_DEADLINE_SECONDS = 2 * PROBE_TIMEOUT_SECONDS + 2.0  # a guard should a request outlive its timeout

    async def probe(self) -> None:
        """Tells `health` whether the API can serve us: GET /readyz, then a one-item list of our resource.

        The apiserver's own /readyz notices a dead etcd only after 15-30 s (longer under load); the list is a
        consistent read, so it needs etcd and fails (or times out) as soon as etcd is gone."""

        def call() -> None:
            if self._probe_client is None:
                # The first sign of an etcd outage is a silent apiserver (the consistent list hangs).
                self._probe_client = client_without_retries(self.api_client.configuration)
            config = self._probe_client.configuration
            token = config.auth_settings().get("BearerToken", {}).get("value")
            headers = {"Authorization": token} if token else {}
            scope = f"/namespaces/{self.probe_namespace}" if self.probe_namespace else ""
            for path in ("/readyz", f"/apis/{GROUP}/{VERSION}{scope}/{PLURAL}?limit=1"):
                resp = self._probe_client.call_api(
                    "GET", f"{config.host}{path}", header_params=headers, _request_timeout=self.PROBE_TIMEOUT_SECONDS
                )
                if resp.status >= 400:
                    raise ApiException(status=resp.status, reason=f"{path} answered {resp.status}")

        try:
            probing = asyncio.get_running_loop().run_in_executor(self._probe_executor, call)
            await asyncio.wait_for(probing, self.PROBE_DEADLINE_SECONDS)
        except Exception as exc:
            if is_outage(exc):
                self.health.failed(exc)
            return
        self.health.succeeded()

    async def get_secret(self, namespace: str, name: str) -> SecretView | None:
        """From the informer's cache when there is one: a GET only for what the cache cannot answer."""
        if self.secrets is not None:
            return await self.secrets.get(namespace, name, lambda: self.read_secret(namespace, name))
        return await self.read_secret(namespace, name)

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        try:
            resp = await self._run(self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return secret_from_json(resp)

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
        self, namespace: str, name: str, data: Mapping[str, str], existing: Mapping[str, Any] | None, *, source: str
    ) -> None:
        """Creates our ConfigMap, or replaces its data guarded by resourceVersion. Holds certificates only."""
        if existing is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER},
                             "annotations": {PUBLISHED_BY: source}},
                "data": dict(data),
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

    async def create_csr(self, owner: Mapping[str, Any], name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Labelled with the certificate it serves (a cluster-scoped object cannot have a namespaced owner)."""
        meta = owner["metadata"]
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {
                "name": name,
                "labels": {MANAGED_BY: MANAGER, CERTIFICATE_LABEL: meta["name"], NAMESPACE_LABEL: meta["namespace"]},
            },
            "spec": dict(spec),
        }
        try:
            return await self._run(self.certificates.create_certificate_signing_request, body)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"CertificateSigningRequest {name} already exists") from None
            raise

    @staticmethod
    def _owned_metadata(owner: Mapping[str, Any]) -> dict[str, Any]:
        """Labels and an annotation name the MtlsCertificate; an owner reference only with secretDeletionPolicy
        Delete, so by default deleting the MtlsCertificate never garbage-collects a key or a signed certificate."""
        meta = owner["metadata"]
        delete_with_owner = (owner.get("spec") or {}).get("secretDeletionPolicy") == "Delete"
        reference = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": False,
        }
        return {
            "labels": {MANAGED_BY: MANAGER, CERTIFICATE_LABEL: meta["name"]},
            "annotations": {UID_ANNOTATION: meta["uid"]},
            "ownerReferences": [reference] if delete_with_owner else [],
        }

    async def create_secret(
        self,
        owner: Mapping[str, Any],
        name: str,
        secret_type: str,
        data: Mapping[str, bytes | None],
        annotations: Mapping[str, str | None] | None = None,
    ) -> SecretView:
        """Create only: a create cannot silently replace a key someone else stored first."""
        meta = {"name": name, "namespace": owner["metadata"]["namespace"], **self._owned_metadata(owner)}
        meta["annotations"].update({k: v for k, v in (annotations or {}).items() if v is not None})
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta,
            "type": secret_type,
            "data": _encode({k: v for k, v in data.items() if v is not None}),
        }
        try:
            resp = await self._run(
                self.core.create_namespaced_secret,
                owner["metadata"]["namespace"],
                body,
            )
        except ApiException as exc:
            if exc.status == 409:
                self._conflicted(owner["metadata"]["namespace"], name)
                raise Conflict(f"Secret {name} already exists") from None
            raise
        return self._remember(secret_from_json(resp))

    async def replace_secret_data(
        self,
        secret: SecretView,
        data: Mapping[str, bytes | None] | None,
        owner: Mapping[str, Any] | None = None,
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
            body["data"] = _encode(data)
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
        if self.secrets is not None:
            self.secrets.written(secret)
        return secret

    def _conflicted(self, namespace: str, name: str) -> None:
        if self.secrets is not None:
            self.secrets.conflicted(namespace, name)  # the cache was behind: read it fresh next time

    async def delete_secret(self, namespace: str, name: str) -> None:
        try:
            await self._run(self.core.delete_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if self.secrets is not None:
            self.secrets.deleted(namespace, name)

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

    async def get_certificate(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            resp = await self._run(
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return resp

    async def post_event(self, involved: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the MtlsCertificate. Messages are built by us and never contain key bytes."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
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
        await self._run(self.core.create_namespaced_event, meta["namespace"], body)


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
                "_request_timeout": KubeIO.REQUEST_TIMEOUT,
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
