"""Certificate signing requests: building ours from a stored key, and checking a partner's before we sign it."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtls_operator.pki.keys import PrivateKey, same_public_key

MIN_RSA_BITS = 2048  # the partner's rule: RSA, at least 2048 bits


@dataclass(frozen=True)
class Subject:
    common_name: str
    country: str
    organization: str
    state: str | None = None
    locality: str | None = None
    organizational_unit: str | None = None

    def to_x509_name(self) -> x509.Name:
        # Order as `openssl req` prompts for it: C, ST, L, O, OU, CN.
        parts = [
            (NameOID.COUNTRY_NAME, self.country),
            (NameOID.STATE_OR_PROVINCE_NAME, self.state),
            (NameOID.LOCALITY_NAME, self.locality),
            (NameOID.ORGANIZATION_NAME, self.organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, self.organizational_unit),
            (NameOID.COMMON_NAME, self.common_name),
        ]
        return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts if value])


def key_usage_for(key: PrivateKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> x509.KeyUsage:
    is_rsa = isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey)
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=is_rsa,  # RSA key exchange; meaningless for ECDSA
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def build_csr(key: PrivateKey, subject: Subject, dns_names: list[str]) -> bytes:
    """A PEM CSR for a TLS client certificate (clientAuth), signed with SHA-256 by `key`."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject.to_x509_name())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(key_usage_for(key), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(pem: bytes | str) -> x509.CertificateSigningRequest:
    """Raises ValueError unless every field we read parses (cryptography parses lazily; found by fuzzing)."""
    try:
        data = pem.encode() if isinstance(pem, str) else pem
        csr = x509.load_pem_x509_csr(data)
        csr.subject.rfc4514_string()
        list(csr.extensions)
        csr.public_key()
        csr.is_signature_valid  # noqa: B018
    except (ValueError, UnicodeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a PEM certificate signing request") from exc
    return csr


def csr_dns_names(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName)


def csr_matches(pem: str | None, key: PrivateKey, subject: Subject, dns_names: list[str]) -> bool:
    """True when a published CSR already asks for exactly this key, subject and names (so it can stay)."""
    if not pem:
        return False
    try:
        csr = load_csr(pem)
    except ValueError:
        return False
    return (
        same_public_key(csr.public_key(), key)  # type: ignore[arg-type]
        and csr.subject == subject.to_x509_name()
        and csr_dns_names(csr) == dns_names
    )


def certifies_csr(cert: x509.Certificate, csr_pem: str) -> bool:
    """True when `cert` was issued for the key of this CSR (an unreadable CSR counts as no)."""
    try:
        return same_public_key(cert.public_key(), load_csr(csr_pem).public_key())  # type: ignore[arg-type]
    except ValueError:
        return False


@dataclass(frozen=True)
class PartnerCsrProblem:
    message: str


TLS_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)  # the ECDSA curves every TLS stack accepts in certificates


@dataclass(frozen=True)
class CsrPolicy:
    """Which partner keys we sign (spec.csrPolicy). The default is the partner guide's rule: RSA, >= 2048 bits."""

    algorithms: tuple[str, ...] = ("RSA",)
    min_rsa_bits: int = MIN_RSA_BITS
    min_ecdsa_bits: int = 256

    def problem(self, public: object) -> str | None:
        if isinstance(public, rsa.RSAPublicKey):
            algorithm, bits, minimum = "RSA", public.key_size, self.min_rsa_bits
        elif isinstance(public, ec.EllipticCurvePublicKey):
            algorithm, bits, minimum = "ECDSA", public.curve.key_size, self.min_ecdsa_bits
        else:
            return f"the CSR's key type {type(public).__name__} is not RSA or ECDSA"
        if algorithm not in self.algorithms:
            allowed = " or ".join(self.algorithms)
            return (
                f"the CSR's key is {algorithm} ({bits} bits); spec.csrPolicy allows {allowed} only "
                "(default: the partner guide's rule, RSA of at least 2048 bits)"
            )
        if bits < minimum:
            return f"the CSR's {algorithm} key has {bits} bits; at least {minimum} are required"
        if isinstance(public, ec.EllipticCurvePublicKey) and not isinstance(public.curve, TLS_CURVES):
            return (
                f"the CSR's ECDSA key is on the curve {public.curve.name}, which TLS stacks do not accept in "
                "certificates (Go refuses it): only P-256, P-384 and P-521 are signed"
            )
        return None


def check_partner_csr(
    csr_pem: str, expected_common_name: str, policy: CsrPolicy | None = None
) -> tuple[x509.CertificateSigningRequest | None, PartnerCsrProblem | None]:
    """Checks a partner's CSR against the requirements we publish before signing it.

    Returns (csr, None) when it may be signed, else (None, problem) with a message naming what is wrong.
    """
    count = csr_pem.count("-----BEGIN CERTIFICATE REQUEST-----") if isinstance(csr_pem, str) else 0
    if count > 1:
        return None, PartnerCsrProblem(f"spec.csr holds {count} CSRs; put exactly one (the one to sign)")
    try:
        csr = load_csr(csr_pem)
    except ValueError:
        return None, PartnerCsrProblem("spec.csr is not a PEM certificate signing request")
    if not csr.is_signature_valid:
        return None, PartnerCsrProblem("the CSR's signature is invalid (it was altered or not signed by its key)")
    key_problem = (policy or CsrPolicy()).problem(csr.public_key())
    if key_problem is not None:
        return None, PartnerCsrProblem(key_problem)
    shape = subject_shape_problem(csr.subject)
    if shape is not None:
        return None, PartnerCsrProblem(shape)
    missing = [
        label
        for label, oid in (
            ("Country (C)", NameOID.COUNTRY_NAME),
            ("Organisation (O)", NameOID.ORGANIZATION_NAME),
            ("Common Name (CN)", NameOID.COMMON_NAME),
        )
        if not any(str(a.value).strip() for a in csr.subject.get_attributes_for_oid(oid))
    ]
    if missing:
        return None, PartnerCsrProblem("the CSR's subject is missing required field(s): " + ", ".join(missing))
    common_name = str(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    if common_name != expected_common_name:
        return None, PartnerCsrProblem(
            f"the CSR's Common Name {common_name!r} does not match spec.commonName {expected_common_name!r}"
        )
    return csr, None


SIGNED_SUBJECT_TYPES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
}


def subject_shape_problem(name: x509.Name) -> str | None:
    """Why a partner's subject cannot be signed as it is: we copy the subject into the certificate, so every value
    in it must be one we checked. Servers disagree on which of two CNs is *the* CN (Go's `Subject.CommonName` and
    Java read the last, OpenSSL tools the first), so a repeated or multi-valued attribute, or a type the policy
    does not check (UID, emailAddress, ...), would let a CSR carry a second identity past the checks."""
    seen: dict[str, list[str]] = {}
    for rdn in name.rdns:
        attributes = list(rdn)
        if len(attributes) > 1:
            joined = "+".join(f"{SIGNED_SUBJECT_TYPES.get(a.oid, a.oid.dotted_string)}={a.value!r}"
                              for a in attributes)  # fmt: skip
            return (f"the CSR's subject has a multi-valued part ({joined}): put each field in its own part, "
                    "once")  # fmt: skip
        attribute = attributes[0]
        short = SIGNED_SUBJECT_TYPES.get(attribute.oid)
        if short is None:
            kind = getattr(attribute.oid, "_name", None) or attribute.oid.dotted_string
            return (f"the CSR's subject has {kind} ({attribute.oid.dotted_string}), which is not signed: only C, ST, "
                    "L, O, OU and CN; ask the partner for a CSR without it")  # fmt: skip
        seen.setdefault(short, []).append(str(attribute.value))
    repeated = {k: v for k, v in seen.items() if len(v) > 1}
    if repeated:
        field, values = next(iter(repeated.items()))
        return (
            f"the CSR's subject has {len(values)} values of {field} ({', '.join(map(repr, values))}): servers read "
            "different ones (Go and Java the last, OpenSSL the first), so each field may appear once; ask the partner "
            "for a CSR with one"
        )
    return None


SUBJECT_FIELD_OIDS = {
    "country": NameOID.COUNTRY_NAME,
    "state": NameOID.STATE_OR_PROVINCE_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
}


def subject_fields(name: x509.Name) -> dict[str, str | None]:
    """C, ST, L, O, OU of a subject by their spec names (the first value of each; None when absent)."""
    fields: dict[str, str | None] = {}
    for label, oid in SUBJECT_FIELD_OIDS.items():
        values = name.get_attributes_for_oid(oid)
        fields[label] = str(values[0].value) if values else None
    return fields
