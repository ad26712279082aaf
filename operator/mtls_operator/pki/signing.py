"""Signing with our own CA: our CSR (signer `ca`) and a partner's CSR (outbound direction)."""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtls_operator.pki.certificates import is_ca, load_pem_bundle
from mtls_operator.pki.csr import csr_dns_names, key_usage_for
from mtls_operator.pki.keys import PrivateKey, load_private_key, same_public_key
from mtls_operator.pki.pathvalidation import path_problem

BACKDATE = datetime.timedelta(minutes=1)  # tolerate small clock skew between us and the peer


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    key: PrivateKey


def load_ca(tls_crt: bytes | None, tls_key: bytes | None) -> CertificateAuthority:
    """Raises ValueError with a message naming the problem (never the key bytes)."""
    if not tls_crt or not tls_key:
        raise ValueError("the CA Secret needs both tls.crt and tls.key")
    try:
        certificate = load_pem_bundle(tls_crt)[0]
    except ValueError as exc:
        raise ValueError(f"the CA's tls.crt is unreadable: {exc}") from exc
    try:
        key = load_private_key(tls_key)
    except ValueError as exc:
        raise ValueError(f"the CA's tls.key is unreadable: {exc}") from exc
    if not same_public_key(certificate.public_key(), key):  # type: ignore[arg-type]
        raise ValueError("the CA's tls.key does not belong to its tls.crt")
    if not is_ca(certificate):
        raise ValueError("the CA's tls.crt is not a CA certificate (basicConstraints CA:FALSE)")
    ca = CertificateAuthority(certificate=certificate, key=key)
    problem = issuer_problem(ca)
    if problem is not None:
        raise ValueError(problem)
    return ca


def issuer_problem(ca: CertificateAuthority) -> str | None:
    """Would servers accept what this CA signs? Asked of OpenSSL (and Go's rules) the only way that is certain:
    the CA signs a probe certificate for a throwaway key, and a server trusting only the CA judges it in a real
    handshake. Catches what a glance at the CA certificate misses or gets wrong: an RSA key under 2048 bits, CA:TRUE
    without keyCertSign, a v1 certificate that is not a self-signed root, an unknown critical extension.

    Time is not judged here (`ca_validity_problem` is, at each use); the answer depends only on the certificate and
    key, so callers may keep it as long as they keep the CA. One CA signature: for a token key, one token operation.
    """
    probe_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtls-operator issuer probe")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(probe_key, hashes.SHA256())
    moment = max(ca.certificate.not_valid_before_utc, datetime.datetime.now(datetime.UTC))
    moment = min(moment, ca.certificate.not_valid_after_utc - datetime.timedelta(seconds=1))
    try:
        probe = sign_csr(csr, ca, datetime.timedelta(hours=1), moment + BACKDATE)
    except (ValueError, TypeError) as exc:
        return f"the CA cannot sign with its key ({exc})"
    problem = path_problem([probe], [ca.certificate], probe_key, moment, lambda _cert: "")
    if problem is None:
        return None
    rule = problem.message.split("; ask the partner")[0].replace("the partner's CA certificate", "the CA certificate")
    return (
        f"servers would refuse every certificate this CA issues: {rule}; replace the CA certificate (and key) with "
        "one that meets that rule"
    )


def ca_validity_problem(ca: CertificateAuthority, now: datetime.datetime) -> str | None:
    """An expired (or not yet valid) CA must not sign: nothing would verify what it issues."""
    if now >= ca.certificate.not_valid_after_utc:
        return f"the CA certificate expired at {ca.certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    if now < ca.certificate.not_valid_before_utc:
        return f"the CA certificate is not valid before {ca.certificate.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
    return None


def random_serial_number() -> int:
    """128 random bits (RFC 5280 allows up to 20 octets; CA/B asks for at least 64 bits of entropy)."""
    return secrets.randbits(128) or 1


def sign_csr(
    csr: x509.CertificateSigningRequest,
    ca: CertificateAuthority,
    duration: datetime.timedelta,
    now: datetime.datetime,
    crl_url: str | None = None,
) -> x509.Certificate:
    """Issues a clientAuth certificate for `csr`, like `openssl x509 -req -CA ca.crt -CAkey ca.key -sha256`.
    `crl_url`: where the issuer's CRL is served (a cRLDistributionPoints extension), for servers that fetch it."""
    public_key = csr.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + duration, ca.certificate.not_valid_after_utc))  # never outlives its CA
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage_for(public_key), critical=True)  # type: ignore[arg-type]
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(authority_key_identifier(ca.certificate), critical=False)
    )
    if crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    dns_names = csr_dns_names(csr)
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    return builder.sign(ca.key, hashes.SHA256())


def authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
