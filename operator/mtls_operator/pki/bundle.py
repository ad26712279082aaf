"""Reading whatever certificate file a partner sends: PEM, DER, PKCS#7, and mixes of them.

Partners' CAs export in many shapes: PEM with CRLF and a BOM, `openssl x509 -text` dumps, "Bag Attributes"
preambles, Windows `.cer` files in DER, `.p7b`/`.p7c` bundles (PEM or DER), and sometimes a private key pasted into
the same file by mistake. `read_certificates` takes every one of them and returns the certificates; key material is
counted and dropped, never returned, so nothing downstream can store it. What it cannot use it names precisely
(a CSR, a PKCS#12 file, a private key alone), with what to do instead.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from mtls_operator.pki.certificates import parse_fully

# A BEGIN or END line's marker. The label is bounded, so a failed match backtracks at most 64 bytes: with the
# pairing in `pem_blocks`, reading a file is linear in its size whatever it holds (a back-referencing pattern
# re-scanned the rest of the file for every unmatched BEGIN: quadratic, minutes for a hostile megabyte).
_PEM_MARKER = re.compile(rb"-----(BEGIN|END) ([A-Z0-9 #]{1,64})-----")
_CERTIFICATE_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
_PKCS7_LABELS = {b"PKCS7", b"PKCS #7 SIGNED DATA", b"CMS"}
_CSR_LABELS = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\s]+$")
# PFX: SEQUENCE { INTEGER 3, SEQUENCE { OID pkcs7-data ... } } (RFC 7292); the OID's DER bytes:
_PKCS7_DATA_OID = bytes.fromhex("06092a864886f70d010701")

# The PEM of what a key file is called: enough to count it, never enough to keep its bytes.
KEY_LABEL = re.compile(rb"PRIVATE KEY")


# Limits on what a tenant controls, each refused by name. Real partner files hold one to four certificates; a full
# public trust bundle about 150. A Secret or ConfigMap holds at most 1 MiB, so that is a file's ceiling anyway.
MAX_FILE_BYTES = 1024 * 1024
MAX_CERTIFICATES = 200


class UnreadableFile(ValueError):
    """The file holds no certificate we can use; the message says what it is and what to do."""


@dataclass(frozen=True)
class CertificateFile:
    """The certificates of one file, in file order, and what else it held (never the key bytes themselves)."""

    certificates: list[x509.Certificate]
    formats: tuple[str, ...]  # what was found: "PEM", "DER", "PKCS#7 (PEM)", "PKCS#7 (DER)", "base64 DER"
    private_keys: int = 0  # private-key blocks found and dropped
    ignored: tuple[str, ...] = field(default_factory=tuple)  # other PEM blocks left out (a CRL, a CSR beside certs)


def read_certificates(data: bytes | None, name: str) -> CertificateFile:
    """Every certificate in `data` (`name` is the file's name in messages). Raises UnreadableFile."""
    if not data or not data.strip(b" \t\r\n\x00\xef\xbb\xbf"):
        raise UnreadableFile(f"{name} is missing or empty")
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFile(f"{name} is {len(data)} bytes, over the limit of {MAX_FILE_BYTES} for one file")
    if b"-----BEGIN " in data:
        return _read_pem(data, name)
    binary = _der_from_base64_text(data) or data
    found = _read_der(binary, name, "base64 DER" if binary is not data else "DER")
    return found


def certificates_in(data: bytes | None) -> list[x509.Certificate]:
    """The certificates of `data` in any format we read, or [] when there is none (for comparisons, not checks)."""
    try:
        return read_certificates(data, "data").certificates
    except UnreadableFile:
        return []


def pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(label, body) of every complete PEM block, as `BEGIN X ... END X` with the nearest END X, in one pass.

    A BEGIN inside an open block whose END comes later is part of that block's body; an open block whose END never
    comes is dropped at the next BEGIN (a truncated paste), as a lazy `BEGIN (X)(.*?)END \\1` match would do, but
    without scanning the rest of the file again for each of them.
    """
    markers = [(m.group(1), m.group(2), m.start(), m.end()) for m in _PEM_MARKER.finditer(data)]
    last_end: dict[bytes, int] = {}
    for kind, label, start, _end in markers:
        if kind == b"END":
            last_end[label] = start
    blocks: list[tuple[bytes, bytes]] = []
    open_label, body_start = b"", -1
    for kind, label, start, end in markers:
        if kind == b"BEGIN":
            if body_start >= 0 and last_end.get(open_label, -1) > start:
                continue  # inside a block that does end later: its body, not a block of its own
            open_label, body_start = label, end
        elif body_start >= 0 and label == open_label:
            blocks.append((label, data[body_start:start]))
            body_start = -1
    return blocks


def _read_pem(data: bytes, name: str) -> CertificateFile:
    certificates: list[x509.Certificate] = []
    formats: list[str] = []
    ignored: list[str] = []
    keys = 0
    blocks = pem_blocks(data)
    if len(blocks) > MAX_CERTIFICATES:
        raise UnreadableFile(
            f"{name} holds {len(blocks)} PEM blocks, over the limit of {MAX_CERTIFICATES} for one file: a partner "
            "sends its certificate and chain, not a trust store"
        )
    for label, body in blocks:
        if KEY_LABEL.search(label):
            keys += 1
            continue
        if label not in _CERTIFICATE_LABELS | _PKCS7_LABELS:
            ignored.append(label.decode())
            continue
        der = _decode_base64(body, f"{name}: its {label.decode()} block")
        if label in _PKCS7_LABELS:
            certificates += _pkcs7_certificates(der, name)
            if len(certificates) > MAX_CERTIFICATES:
                raise UnreadableFile(f"{name} holds over {MAX_CERTIFICATES} certificates, the limit for one file")
            formats.append("PKCS#7 (PEM)")
        else:
            certificates.append(_der_certificate(_first_element(der), name))
            formats.append("PEM")
    if certificates:
        return CertificateFile(certificates, tuple(dict.fromkeys(formats)), keys, tuple(ignored))
    raise UnreadableFile(_no_certificate(name, blocks, keys, ignored))


def _no_certificate(name: str, blocks: list[tuple[bytes, bytes]], keys: int, ignored: list[str]) -> str:
    if keys:
        return (
            f"{name} holds a private key and no certificate: it was not stored anywhere. Never send or upload a "
            "private key; put the certificate the partner signed into this file"
        )
    if any(label.encode() in _CSR_LABELS for label in ignored):
        return (
            f"{name} is a certificate signing request (CSR), not a certificate: send it to the partner to sign, "
            "and put the certificate they send back here"
        )
    if not blocks:
        return f"{name} has a '-----BEGIN' line but no complete PEM block (a truncated or mangled copy?)"
    return f"{name} holds no certificate (PEM blocks found: {', '.join(ignored)})"


def _read_der(der: bytes, name: str, form: str) -> CertificateFile:
    if not der.startswith(b"\x30"):
        raise UnreadableFile(
            f"{name} is neither PEM, DER nor PKCS#7 (it does not start like any of them): "
            "ask the partner for the certificate as a .pem, .crt, .cer or .p7b file"
        )
    try:
        return CertificateFile([_der_certificate(der, name)], (form,))
    except UnreadableFile:
        pass
    try:
        certificates = pkcs7.load_der_pkcs7_certificates(der)
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        certificates = []
    if len(certificates) > MAX_CERTIFICATES:
        raise UnreadableFile(f"{name} holds {len(certificates)} certificates, over the limit of {MAX_CERTIFICATES}")
    if certificates:
        return CertificateFile([_parsed(c, name) for c in certificates], (f"PKCS#7 ({form})",))
    raise UnreadableFile(_what_der_is(der, name))


def _what_der_is(der: bytes, name: str) -> str:
    if _PKCS7_DATA_OID in der[:40] and b"\x02\x01\x03" in der[:12]:
        return (
            f"{name} is a PKCS#12 (.p12/.pfx) file: it bundles a private key, so it is not read. Export the "
            "certificates alone (`openssl pkcs12 -in FILE -nokeys -out client.crt`) and keep the key out of it"
        )
    try:
        x509.load_der_x509_csr(der)
    except ValueError:
        pass
    else:
        return f"{name} is a certificate signing request (CSR, DER), not a certificate: send it to the partner to sign"
    try:
        serialization.load_der_private_key(der, password=None)
        is_key = True
    except TypeError:  # an encrypted key: still a key
        is_key = True
    except (ValueError, UnsupportedAlgorithm):
        is_key = False
    if is_key:
        return f"{name} is a private key (DER), not a certificate: it was not stored anywhere"
    return (
        f"{name} is binary (DER) data that is neither a certificate nor a PKCS#7 bundle: "
        "ask the partner for the certificate as a .pem, .crt, .cer or .p7b file"
    )


def _pkcs7_certificates(der: bytes, name: str) -> list[x509.Certificate]:
    try:
        certificates = pkcs7.load_der_pkcs7_certificates(der)
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise UnreadableFile(f"{name} holds a PKCS#7 block that does not parse ({_first_words(exc)})") from exc
    if not certificates:
        raise UnreadableFile(f"{name} holds a PKCS#7 bundle without any certificate")
    return [_parsed(c, name) for c in certificates]


def _der_certificate(der: bytes, name: str) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is no ValueError (found by fuzzing)
        raise UnreadableFile(f"{name} holds a certificate that does not parse ({_first_words(exc)})") from exc
    return _parsed(cert, name)


def _parsed(cert: x509.Certificate, name: str) -> x509.Certificate:
    try:
        parse_fully(cert)
    except ValueError as exc:
        raise UnreadableFile(f"{name}: {exc}") from exc
    return cert


def _decode_base64(body: bytes, where: str) -> bytes:
    # RFC 1421 headers ("Proc-Type: ...") only precede encrypted keys, never certificates: drop them anyway.
    lines = [line for line in body.split(b"\n") if b":" not in line]
    text = re.sub(rb"\s+", b"", b"".join(lines))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnreadableFile(f"{where} is not valid base64 (a damaged copy?)") from exc


def _der_from_base64_text(data: bytes) -> bytes | None:
    """Some portals hand out the base64 of a DER certificate without the PEM armour."""
    text = data.strip(b" \t\r\n\x00").removeprefix(b"\xef\xbb\xbf")
    if len(text) < 64 or not text.startswith(b"MI") or not _BASE64_TEXT.match(text):
        return None
    try:
        return base64.b64decode(re.sub(rb"\s+", b"", text), validate=True)
    except (binascii.Error, ValueError):
        return None


def _first_element(der: bytes) -> bytes:
    """The first DER element: a TRUSTED CERTIFICATE block carries OpenSSL's trust settings after the certificate."""
    if len(der) < 2 or der[0] != 0x30:
        return der
    length = der[1]
    if length < 0x80:
        return der[: 2 + length]
    count = length & 0x7F
    if count == 0 or count > 4 or len(der) < 2 + count:
        return der
    return der[: 2 + count + int.from_bytes(der[2 : 2 + count], "big")]


def _first_words(exc: Exception) -> str:
    return str(exc).split(":")[0] or type(exc).__name__
