"""verify_signed_certificate: every check a certificate from outside must pass before it goes into service."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from mtls_operator.pki.bundle import CertificateFile, UnreadableFile, read_certificates
from mtls_operator.pki.certificates import allows_client_auth, chain_problem, common_name_of
from mtls_operator.pki.chain import Found, Rejection, find_leaf, pool, sort_chain
from mtls_operator.pki.keys import PrivateKey, PublicKey, is_private_key
from mtls_operator.pki.pathvalidation import path_problem

__all__ = ["Rejection", "Verified", "verify_signed_certificate"]


@dataclass(frozen=True)
class Verified:
    chain: list[x509.Certificate]  # leaf first, then intermediates in order: what a client sends as it is
    ca_certificates: list[x509.Certificate]  # the root(s), and any other CA the partner gave
    notes: tuple[str, ...] = ()  # worth a Warning, not a refusal (a private key dropped from the files)

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
    """Reads both files in any format (PEM, DER, PKCS#7, mixed), finds the certificate for `key` wherever it is,
    orders its chain, then checks, in order: key, CN, validity window, chain to ca.crt, clientAuth, and finally
    whether a real server accepts the ordered chain (`pki.pathvalidation`: OpenSSL in a handshake, every
    certificate's dates, what Go refuses).

    `key` is the pending private key (operator) or the pending CSR's public key (`kubectl mtls import`). Without
    the private key OpenSSL cannot be asked: the plugin runs every other check, and the operator's verdict is final.
    """
    files = _read(tls_crt, ca_crt)
    if isinstance(files, Rejection):
        return files
    tls, ca = files
    unreadable = _unsupported_keys(tls.certificates + (ca.certificates if ca else []))
    if unreadable:
        return Rejection("InvalidCertificate", f"{unreadable}: its public key algorithm is unknown or unsupported")
    found = pool(tls.certificates, ca.certificates if ca else [])
    leaf = find_leaf(found, key)
    if isinstance(leaf, Rejection):
        return leaf
    cert = leaf.cert
    leaf_cn = common_name_of(cert)
    if leaf_cn != common_name:
        return Rejection(
            "CommonNameMismatch",
            f"the certificate's Common Name {leaf_cn!r} does not equal spec.commonName {common_name!r}",
        )
    if now >= cert.not_valid_after_utc:
        return Rejection("Expired", f"the certificate expired at {_fmt(cert.not_valid_after_utc)}")
    if now < cert.not_valid_before_utc:
        return Rejection("NotYetValid", f"the certificate is not valid before {_fmt(cert.not_valid_before_utc)}")
    ordered = sort_chain(leaf, found)
    if isinstance(ordered, Rejection):
        return ordered
    if not allows_client_auth(cert):
        return Rejection(
            "WrongUsage",
            "the certificate's extendedKeyUsage does not allow clientAuth, so servers refuse it as a client "
            "certificate; ask the partner to re-issue it with extendedKeyUsage clientAuth",
        )
    private = key if is_private_key(key) else None
    problem = path_problem(ordered.chain, ordered.roots, private, now, _where(found))  # type: ignore[arg-type]
    if problem is not None:
        return Rejection(problem.reason, problem.message)
    return Verified(chain=ordered.chain, ca_certificates=ordered.roots, notes=_notes(tls, ca))


def in_service_problem(
    chain: list[x509.Certificate],
    anchors: list[x509.Certificate],
    key: PrivateKey | None,
    now: datetime.datetime,
) -> str | None:
    """The same verdict for what is already in service (`kubectl mtls check` with the key, `inspect` without):
    why a server would refuse the live chain, or None."""
    problem = chain_problem(chain, anchors)
    if problem is not None:
        return problem
    places = {cert: f"number {n} in tls.crt" for n, cert in enumerate(chain, 1)}
    places |= {cert: f"number {n} in ca.crt" for n, cert in enumerate(anchors, 1) if cert not in places}
    verdict = path_problem(chain, anchors, key, now, lambda cert: places.get(cert, ""))
    return verdict.message if verdict is not None else None


def _where(found: list[Found]) -> Callable[[x509.Certificate], str]:
    places = {f.cert: f.where() for f in found}
    return lambda cert: places.get(cert, "")


def _read(tls_crt: bytes | None, ca_crt: bytes | None) -> tuple[CertificateFile, CertificateFile | None] | Rejection:
    try:
        tls = read_certificates(tls_crt, "tls.crt")
    except UnreadableFile as exc:
        return Rejection("InvalidCertificate", str(exc))
    if not ca_crt or not ca_crt.strip():
        return tls, None
    try:
        return tls, read_certificates(ca_crt, "ca.crt")
    except UnreadableFile as exc:
        return Rejection("InvalidCertificate", str(exc))


def _notes(tls: CertificateFile, ca: CertificateFile | None) -> tuple[str, ...]:
    notes = []
    for name, file in (("tls.crt", tls), ("ca.crt", ca)):
        if file is not None and file.private_keys:
            notes.append(
                f"{name} also held {file.private_keys} private key block(s): ignored and copied nowhere; remove "
                "the key from that file (a private key does not belong next to certificates)"
            )
    return tuple(notes)


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
