"""Signers as plug-ins: one module per way of getting a signature, behind the `Signer` protocol (base.py).

Adding a signer is one new module and one line in `build_signers`.
"""

from __future__ import annotations

from mtls_operator.api.spec import CertificateSpec
from mtls_operator.lifecycle.signers.base import Signer, SignerContext
from mtls_operator.lifecycle.signers.ca import CASigner
from mtls_operator.lifecycle.signers.issuer import IssuerSigner
from mtls_operator.lifecycle.signers.issuerca import IssuerCALoader
from mtls_operator.lifecycle.signers.kubernetes import KubernetesSigner
from mtls_operator.lifecycle.signers.manual import ManualSigner
from mtls_operator.lifecycle.signers.partner_csr import PartnerCSRSigner

PARTNER_CSR = "partner-csr"  # outbound: spec.csr set, signed by our CA


def signer_kind(spec: CertificateSpec) -> str:
    if spec.signer.kind == "issuer":
        return "issuer"  # both directions: the issuer's policy decides what it signs
    return PARTNER_CSR if spec.outbound else spec.signer.kind


def build_signers(ctx: SignerContext, issuer_cas: IssuerCALoader) -> dict[str, Signer]:
    cas = issuer_cas.cas  # one CA cache for every signer that uses a CA Secret
    return {
        "manual": ManualSigner(ctx),
        "ca": CASigner(ctx, cas),
        "kubernetes": KubernetesSigner(ctx),
        PARTNER_CSR: PartnerCSRSigner(ctx, cas),
        "issuer": IssuerSigner(ctx, issuer_cas),
    }


__all__ = ["PARTNER_CSR", "Signer", "SignerContext", "build_signers", "signer_kind"]
