"""What the lifecycle asks about issuers: the interface to the operator's view of MtlsIssuers, ClusterMtlsIssuers
and namespace labels (runtime.controller implements it from its watches), and the issuer a certificate uses,
resolved to its spec, status and CA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.issuer import IssuerSpec
from mtls_operator.api.refs import IssuerKey
from mtls_operator.pki.crl import RevokedEntry
from mtls_operator.pki.signing import CertificateAuthority


class IssuerDirectory(Protocol):
    def find(self, key: IssuerKey) -> Mapping[str, Any] | None:
        """The issuer's last seen body (spec and status), or None."""
        ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """A namespace's labels (for a cluster issuer's namespaceSelector), or None when it is not known."""
        ...

    def ca_namespace(self, key: IssuerKey) -> str:
        """Where the issuer's CA Secret lives: its own namespace, or for a cluster issuer the configured one."""
        ...

    def revoked(self, key: IssuerKey, serial_number: int) -> RevokedEntry | None:
        """The issuer's revocation of this serial (from the MtlsRevocations resolved so far), or None."""
        ...

    def use_policy_problem(self) -> str | None:
        """Why cluster issuers may not sign now (their `use` admission policy is not in force), or None."""
        ...

    def requester_records_believed(self) -> bool:
        """Whether an admission policy checks the requester records (api.requester) in this installation: without
        one, anyone may write any name into them, so they say nothing."""
        ...


@dataclass(frozen=True)
class ResolvedIssuer:
    spec: IssuerSpec
    status: Mapping[str, Any]
    ca: CertificateAuthority
    ca_pem: bytes
    fingerprint: str  # of the CA certificate, as status.ca.fingerprint records it
    pool: CpuPool  # where its key signs (a token-held key: the token pool)

    @property
    def recorded_fingerprint(self) -> str | None:
        return (self.status.get("ca") or {}).get("fingerprint")

    @property
    def rotation_started(self) -> str | None:
        return (self.status.get("rotation") or {}).get("startedTime")
