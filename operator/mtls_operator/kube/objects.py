"""The values Kubernetes I/O hands to the layers above: a Secret as plain bytes, a conflict, an owner."""

from __future__ import annotations

import base64
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtls_operator.api.names import CA_CRT, KIND, MANAGED_BY, OPAQUE_SECRET


class Conflict(Exception):
    """Someone else changed or created the object first; re-read and decide again."""


class Refused(Exception):
    """The apiserver refused a request made on a tenant's behalf (403 from an admission plugin, 422 invalid): not a
    fault of ours to retry at once, but an answer to show on the object. `message` is the apiserver's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class SecretView:
    name: str
    namespace: str
    data: dict[str, bytes]
    labels: dict[str, str]
    owner_uids: list[str]
    resource_version: str
    type: str = OPAQUE_SECRET
    annotations: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)


# The same CA certificate sits in the ca.crt of every Secret it signed: kept once (a few distinct values in a
# cluster, about 1.2 KB each saved per Secret; bounded, since only the CA bundles are shared like this).
_SHARED_VALUES: dict[bytes, int] = {}  # value → its index in _SHARED_LIST
_SHARED_LIST: list[bytes] = []
SHARED_KEYS = (CA_CRT,)
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


def shared_index(value: bytes) -> int | None:
    return _SHARED_VALUES.get(value)


def shared_value_at(index: int) -> bytes:
    return _SHARED_LIST[index]


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


def encode_data(data: Mapping[str, bytes | None]) -> dict[str, str | None]:
    """None removes a key in a merge patch."""
    return {k: None if v is None else base64.b64encode(v).decode() for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class Owner:
    """The MtlsCertificate an object we write belongs to. `garbage_collected`: give it an owner reference, so
    deleting the certificate deletes the object too (a decision made above this layer, from the spec)."""

    name: str
    namespace: str  # "" for a cluster-scoped object (a ClusterMtlsIssuer)
    uid: str
    garbage_collected: bool = False
    kind: str = KIND
    # Where its Events go: its own namespace, or for a cluster-scoped object one the operator may write Events in.
    events_namespace: str | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any], kind: str = KIND, events_namespace: str | None = None) -> Owner:
        """From an object's metadata alone (Events, which carry no ownership decision)."""
        meta = body["metadata"]
        return cls(meta["name"], meta.get("namespace") or "", meta.get("uid", ""), False, kind, events_namespace)
