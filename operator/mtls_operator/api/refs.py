"""References between our kinds: a certificate's issuerRef and the key an issuer is found by (below spec and issuer,
which both use them)."""

from __future__ import annotations

from dataclasses import dataclass

from mtls_operator.api.names import ISSUER_KIND


@dataclass(frozen=True)
class IssuerRef:
    """spec.signer.issuerRef: which issuer, as the certificate names it."""

    kind: str  # ISSUER_KIND | CLUSTER_ISSUER_KIND
    name: str

    def key(self, certificate_namespace: str) -> IssuerKey:
        """A namespaced MtlsIssuer is the one in the certificate's own namespace."""
        return IssuerKey(self.kind, certificate_namespace if self.kind == ISSUER_KIND else "", self.name)


@dataclass(frozen=True, order=True)
class IssuerKey:
    kind: str
    namespace: str  # "" for a ClusterMtlsIssuer
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"
