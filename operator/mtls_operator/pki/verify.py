"""verify_signed_certificate: every check a hand-signed certificate must pass before it goes into service."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from .certificates import allows_client_auth, chain_problem, common_name_of, is_issuer_of, load_pem_bundle
from .keys import PrivateKey, PublicKey, same_public_key


@dataclass(frozen=True)
class Rejection:
    reason: str  # a condition reason: InvalidCertificate, KeyMismatch, CommonNameMismatch, ...
    message: str


@dataclass(frozen=True)
class Verified:
    chain: list[x509.Certificate]  # leaf first, then intermediates
    ca_certificates: list[x509.Certificate]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def _fmt(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_signed_certificate(
    tls_crt: bytes | None,
    ca_crt: bytes | None,
    key: PrivateKey | PublicKey,
    common_name: str,
    now: datetime.datetime,
) -> Verified | Rejection:
    """Checks, in order: PEM parses, key matches, CN matches, validity window, chain to ca.crt, clientAuth.

    `key` is the pending private key (operator) or the pending CSR's public key (`kubectl mtls import`),
    so both give the same verdict with the same message.
    """
    if not tls_crt or not tls_crt.strip():
        return Rejection("InvalidCertificate", "tls.crt is missing or empty in the signed Secret")
    try:
        chain = load_pem_bundle(tls_crt)
    except ValueError:
        return Rejection("InvalidCertificate", "tls.crt is not a PEM certificate (it does not parse)")
    anchors: list[x509.Certificate] = []
    if ca_crt and ca_crt.strip():
        try:
            anchors = load_pem_bundle(ca_crt)
        except ValueError:
            return Rejection("InvalidCertificate", "ca.crt is not a PEM certificate (it does not parse)")
    unreadable = _unsupported_keys(chain + anchors)
    if unreadable:
        return Rejection("InvalidCertificate", f"{unreadable}: its public key algorithm is unknown or unsupported")
    leaf = chain[0]
    if not same_public_key(leaf.public_key(), key):  # type: ignore[arg-type]
        position = next((i for i, c in enumerate(chain) if same_public_key(c.public_key(), key)), None)  # type: ignore[arg-type]
        if position is not None:
            return Rejection(
                "KeyMismatch",
                f"the certificate for the pending key is number {position + 1} in tls.crt; put it first, then "
                "its issuers in order",
            )
        return Rejection(
            "KeyMismatch",
            "the certificate's public key does not match the pending private key (it was signed for a different CSR)",
        )
    leaf_cn = common_name_of(leaf)
    if leaf_cn != common_name:
        return Rejection(
            "CommonNameMismatch",
            f"the certificate's Common Name {leaf_cn!r} does not equal spec.commonName {common_name!r}",
        )
    if now >= leaf.not_valid_after_utc:
        return Rejection("Expired", f"the certificate expired at {_fmt(leaf.not_valid_after_utc)}")
    if now < leaf.not_valid_before_utc:
        return Rejection("NotYetValid", f"the certificate is not valid before {_fmt(leaf.not_valid_before_utc)}")
    disorder = _chain_order_problem(chain)
    if disorder is not None:
        return disorder
    if anchors:
        problem = chain_problem(chain, anchors)
        if problem:
            return Rejection("UntrustedChain", f"the chain does not verify to ca.crt: {problem}")
    if not allows_client_auth(leaf):
        return Rejection("WrongUsage", "the certificate's extended key usage does not allow clientAuth")
    return Verified(chain=chain, ca_certificates=anchors)


def _unsupported_keys(certificates: list[x509.Certificate]) -> str | None:
    """The subject of the first certificate whose public key cannot be read (a corrupt or exotic certificate)."""
    for cert in certificates:
        try:
            cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            try:
                return f"certificate {cert.subject.rfc4514_string()!r}"
            except ValueError:
                return "a certificate"
    return None


def _chain_order_problem(chain: list[x509.Certificate]) -> Rejection | None:
    """tls.crt must be the leaf, then only its issuers in order: stray or shuffled certificates are refused."""
    for index in range(1, len(chain)):
        if not is_issuer_of(chain[index], chain[index - 1]):
            return Rejection(
                "InvalidChain",
                f"tls.crt holds {len(chain)} certificates, but number {index + 1} "
                f"({chain[index].subject.rfc4514_string()}) is not the CA that issued number {index}: "
                "put the leaf first, then only its issuers, in order",
            )
    return None
