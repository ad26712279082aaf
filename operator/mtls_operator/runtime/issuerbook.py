"""The issuers and namespace labels the operator watches, and who uses which issuer: the lifecycle's
`IssuerDirectory`, fed by the watch events the controller receives.

Indexes kept here so that no event costs a scan of every certificate: issuer → the certificates naming it, and
(namespace, Secret) → the issuers whose CA it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtls_operator.api.issuer import ca_secret_names, issuer_key_of, issuer_ref_of
from mtls_operator.api.refs import IssuerKey
from mtls_operator.pki.crl import RevokedEntry
from mtls_operator.runtime.revocationbook import RevocationBook
from mtls_operator.runtime.secretindex import CertKey

SecretKey = tuple[str, str]


class IssuerBook:
    def __init__(self, cluster_issuer_namespace: str) -> None:
        self.cluster_issuer_namespace = cluster_issuer_namespace
        self._issuers: dict[IssuerKey, dict[str, Any]] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._users: dict[IssuerKey, set[CertKey]] = {}
        self._issuer_of: dict[CertKey, IssuerKey] = {}
        self._ca_readers: dict[SecretKey, set[IssuerKey]] = {}
        self._ca_of: dict[IssuerKey, set[SecretKey]] = {}  # the CA Secret, or the PIN's and the certificate's
        self.revocations = RevocationBook()
        self.use_policy: str | None = None  # set by the controller's check (lifecycle.policy.usepolicy)
        # --cluster-issuer-use-policy given: an admission policy checks the requester records (api.requester)
        self.requester_records_checked = False

    # --- lifecycle.issuers.IssuerDirectory ------------------------------------------------------------------

    def find(self, key: IssuerKey) -> Mapping[str, Any] | None:
        return self._issuers.get(key)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._labels.get(namespace)

    def ca_namespace(self, key: IssuerKey) -> str:
        return key.namespace or self.cluster_issuer_namespace

    def revoked(self, key: IssuerKey, serial_number: int) -> RevokedEntry | None:
        return self.revocations.revoked(key, serial_number)

    def use_policy_problem(self) -> str | None:
        return self.use_policy

    def requester_records_believed(self) -> bool:
        # Configured is not enough: while the policy is deleted or unbound, a record names whoever wrote it.
        return self.requester_records_checked and self.use_policy is None

    # --- fed by watch events ----------------------------------------------------------------------------------

    def store_issuer(self, kind: str, body: Mapping[str, Any]) -> tuple[IssuerKey, bool]:
        """(its key, whether what certificates depend on changed: spec, CA fingerprint or rotation start)."""
        key = issuer_key_of(kind, body)
        old = self._issuers.get(key)
        self._issuers[key] = dict(body)
        self._unlink_ca(key)
        secrets = {(self.ca_namespace(key), name) for name in ca_secret_names(body)}
        self._ca_of[key] = secrets
        for secret in secrets:
            self._ca_readers.setdefault(secret, set()).add(key)
        return key, old is None or _dependency(old) != _dependency(body)

    def forget_issuer(self, kind: str, body: Mapping[str, Any]) -> IssuerKey:
        key = issuer_key_of(kind, body)
        self._issuers.pop(key, None)
        self._unlink_ca(key)
        return key

    def _unlink_ca(self, key: IssuerKey) -> None:
        for secret in self._ca_of.pop(key, set()):
            readers = self._ca_readers.get(secret, set())
            readers.discard(key)
            if not readers:
                self._ca_readers.pop(secret, None)

    def store_namespace(self, body: Mapping[str, Any]) -> bool:
        """Whether its labels changed or it is new here (a cluster issuer's namespaceSelector may now decide
        otherwise, also for a certificate reconciled before its namespace's watch event arrived)."""
        meta = body.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        old = self._labels.get(meta.get("name", ""))
        self._labels[meta.get("name", "")] = labels
        return old != labels

    def forget_namespace(self, name: str) -> None:
        self._labels.pop(name, None)

    def set_certificate(self, cert: CertKey, body: Mapping[str, Any] | None) -> tuple[IssuerKey | None, ...]:
        """Records which issuer (if any) the certificate's body names; returns the issuers whose users changed
        (the previous and the new one; none when the reference is the same)."""
        new = issuer_ref_of(body) if body is not None else None
        old = self._issuer_of.get(cert)
        if old == new:
            return ()
        if old is not None:
            users = self._users.get(old, set())
            users.discard(cert)
            if not users:
                self._users.pop(old, None)
            del self._issuer_of[cert]
        if new is not None:
            self._issuer_of[cert] = new
            self._users.setdefault(new, set()).add(cert)
        return old, new

    # --- queries ------------------------------------------------------------------------------------------------

    def issuer_of(self, cert: CertKey) -> IssuerKey | None:
        return self._issuer_of.get(cert)

    def users(self, key: IssuerKey) -> set[CertKey]:
        return set(self._users.get(key, ()))

    def reads(self, namespace: str, name: str) -> bool:
        """Whether an issuer reads this Secret (one dict lookup: safe from the informer's threads)."""
        return (namespace, name) in self._ca_readers

    def readers_of(self, namespace: str, name: str) -> set[IssuerKey]:
        """The issuers whose CA Secret this is."""
        return set(self._ca_readers.get((namespace, name), ()))

    def issuers(self) -> list[tuple[IssuerKey, dict[str, Any]]]:
        return list(self._issuers.items())

    def users_in(self, namespace: str) -> set[CertKey]:
        return {cert for cert in self._issuer_of if cert[0] == namespace}


def _dependency(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a certificate's decision reads of its issuer: the spec, whether it is Ready, which CA, and since when
    it rotates (not its counts: each re-issue changes those, and re-checking every user then would be n²)."""
    status = body.get("status") or {}
    ready = [c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return (
        (body.get("metadata") or {}).get("generation"),
        tuple(ready),
        (status.get("ca") or {}).get("fingerprint"),
        (status.get("rotation") or {}).get("startedTime"),
    )
