"""Reading certificates: PEM bundles, the facts we publish in status, and chain checks."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertificateInfo:
    """What status and metrics show about a certificate. Contains no key material."""

    common_name: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial_number: str  # upper-case hex, as `openssl x509 -serial` prints it
    issuer: str  # RFC 4514
    fingerprint_sha256: str  # colon-separated upper-case hex, as `openssl x509 -fingerprint -sha256` prints it


def load_pem_bundle(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order. Raises ValueError when there is none or one is broken."""
    if not data or not data.strip():
        raise ValueError("no certificate: the data is empty")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError("not a PEM certificate (the data does not parse as one)") from exc
    for cert in certificates:
        parse_fully(cert)
    return certificates


def parse_fully(cert: x509.Certificate) -> None:
    """cryptography parses a certificate's fields lazily, on first use: read every one we use now, so a corrupt
    field is one clear ValueError here instead of a surprise deep inside a check (found by fuzzing)."""
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        list(cert.extensions)
        cert.not_valid_before_utc, cert.not_valid_after_utc  # noqa: B018
        cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"a certificate does not parse completely ({str(exc).split(':')[0]})") from exc


def to_pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def common_name_of(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def openssl_serial(serial: int) -> str:
    """As `openssl x509 -serial` prints it: upper-case hex of whole bytes, so a leading zero nibble stays (0FB9…)."""
    text = f"{serial:X}"
    return "0" + text if len(text) % 2 else text


def describe_certificate(cert: x509.Certificate) -> CertificateInfo:
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertificateInfo(
        common_name=common_name_of(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial_number=openssl_serial(cert.serial_number),
        issuer=cert.issuer.rfc4514_string(),
        fingerprint_sha256=":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)),
    )


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        # Old v1 CA certificates (still seen from hand-run CAs) carry no extensions at all.
        return cert.version == x509.Version.v1


def is_self_signed(cert: x509.Certificate) -> bool:
    """A root: a CA certificate that names and signs itself."""
    return is_ca(cert) and issued_by(cert, cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer` names and signed `cert` (its CA flag is not checked here)."""
    if issuer.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def sorts_under(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """For putting files in order only, never for trust: `issuer` names `cert`'s issuer and its signature verifies,
    or is made with an algorithm cryptography no longer checks (SHA-1, MD5), so the validator, not the sorting,
    says what is wrong with it."""
    if issuer.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except UnsupportedAlgorithm:
        return True
    except ValueError as exc:
        return "signature algorithm" in str(exc)
    except (TypeError, InvalidSignature):
        return False
    return True


def is_issuer_of(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    """`issuer` is a CA certificate whose key signed `cert`."""
    return is_ca(issuer) and issued_by(cert, issuer)


def chain_problem(chain: list[x509.Certificate], trust_anchors: list[x509.Certificate]) -> str | None:
    """Walks leaf -> intermediates -> one of the trust anchors; returns why that fails, or None.

    A deliberately small check (issuer name, signature, CA flag), like `openssl verify -CAfile`, rather than
    a full web-PKI policy: partner CAs made by hand often lack extensions such a policy insists on.
    """
    current, intermediates = chain[0], list(chain[1:])
    while True:
        anchor = next((a for a in trust_anchors if issued_by(current, a)), None)
        issuer = anchor or next((c for c in intermediates if issued_by(current, c)), None)
        if issuer is None:
            return (
                f"certificate {current.subject.rfc4514_string()!r} is not signed by the given CA "
                f"(its issuer is {current.issuer.rfc4514_string()!r})"
            )
        if not is_ca(issuer):
            return f"issuer {issuer.subject.rfc4514_string()!r} is not a CA certificate"
        if anchor is not None:
            return None
        intermediates.remove(issuer)
        current = issuer


def allows_client_auth(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no EKU means any usage
    return (
        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usages
        or x509.oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
    )


def first_certificate(data: bytes | None) -> x509.Certificate | None:
    """The leaf of a PEM bundle, or None when there is none or it does not parse."""
    certificates = pem_certificates(data)
    return certificates[0] if certificates else None


def pem_certificates(data: bytes | None) -> list[x509.Certificate]:
    """The certificates of a PEM bundle, or [] when there is none or one does not parse."""
    if not data or not data.strip():
        return []
    try:
        return load_pem_bundle(data)
    except ValueError:
        return []


def dns_names_of(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in names.get_values_for_type(x509.DNSName)]


def extended_key_usages(cert: x509.Certificate) -> list[str]:
    """Readable names (clientAuth, serverAuth, ...); empty when the extension is absent (any usage)."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [getattr(u, "_name", None) or u.dotted_string for u in usages]


def uncovered_names(cert: x509.Certificate, wanted: list[str]) -> list[str]:
    """The wanted names missing from the certificate's subjectAltName DNS names, when it has that extension.

    Without the extension the Common Name is the identity (the partner's rule: CN = the hostname; `openssl x509
    -req` drops a CSR's extensions unless told otherwise), so nothing is missing. With it, servers that check
    names read the SANs only (RFC 6125), and a name left out may be refused.
    """
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    present = {n.lower() for n in dns_names_of(cert)}
    return [n for n in dict.fromkeys(wanted) if n.lower() not in present]
