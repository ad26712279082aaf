# ruff: noqa: E501 - the catalogue is a table: one case per line reads best
"""A catalogue of bad input through the real apiserver and the running operator.

Every case is its own MtlsCertificate in one namespace, all poisoned at once, next to a healthy certificate.
Each case asserts: the condition reason, a Warning Event naming it, mtls_certificate_failures_total{reason}
counted, the live Secret byte-for-byte unchanged (or still absent), the operator alive, and the healthy
certificates untouched, including one created after all the poison (one bad object never blocks the queue).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness.cluster import (
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    wait_certificate,
    wait_for,
    wait_ready,
)

CN = "client.example.com"


@dataclasses.dataclass
class Case:
    name: str
    kind: str  # "signed" (manual import), "partner-csr" (outbound), "ca" (CA Secret), "spec", "issuer"
    reason: str
    message: str  # a part of the condition message
    make: Callable[[Any], dict[str, bytes] | str | None]  # the bad input, built from the fixture's tools


class Tools:
    """openssl as the partner, plus a few inputs openssl will not make on purpose."""

    def __init__(self, workdir: Path) -> None:
        self.partner = Partner(workdir / "partner")
        self.other = Partner(workdir / "other", name="Unrelated CA")
        self.dir = self.partner.dir

    def sign(self, csr: str, *extra: str, out: str = "c.crt") -> bytes:
        return self.partner.sign(csr, out=out, extra=list(extra)).read_bytes()

    def ext(self, name: str, text: str) -> str:
        (self.dir / name).write_text(text)
        return name

    def der(self, pem: bytes) -> bytes:
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)

    def csr(self, subject: str, newkey: str = "rsa:2048") -> str:
        return self.partner.openssl("req", "-new", "-newkey", newkey, "-nodes", "-keyout", "p.key",
                                    "-subj", subject).decode()  # fmt: skip

    def ca_pair(self, name: str, *args: str, newkey: str = "rsa:2048") -> tuple[bytes, bytes]:
        self.partner.openssl("req", "-x509", "-newkey", newkey, "-nodes", "-keyout", f"{name}.key",
                             "-out", f"{name}.crt", "-subj", f"/C=IE/O=Us/CN={name}", *args)  # fmt: skip
        return (self.dir / f"{name}.crt").read_bytes(), (self.dir / f"{name}.key").read_bytes()


def _non_ca_issuer(t: Tools, csr: str) -> dict[str, bytes]:
    t.ext("noca.ext", "basicConstraints=critical,CA:FALSE\n")
    crt, key = t.ca_pair("notaca", "-addext", "basicConstraints=critical,CA:FALSE")
    (t.dir / "our.csr").write_text(csr)
    t.partner.openssl("x509", "-req", "-in", "our.csr", "-CA", "notaca.crt", "-CAkey", "notaca.key",
                      "-CAcreateserial", "-out", "by-notaca.crt", "-days", "30")  # fmt: skip
    return {"tls.crt": (t.dir / "by-notaca.crt").read_bytes(), "ca.crt": crt}


def _signed_by_pair(t: Tools, csr: str, name: str, *args: str, newkey: str = "rsa:2048") -> dict[str, bytes]:
    """Our CSR signed by a CA made on the spot with `openssl req -x509 ARGS`: the CA is the defect."""
    crt, _key = t.ca_pair(name, *args, newkey=newkey)
    (t.dir / "our.csr").write_text(csr)
    t.partner.openssl("x509", "-req", "-in", "our.csr", "-CA", f"{name}.crt", "-CAkey", f"{name}.key",
                      "-CAcreateserial", "-out", f"by-{name}.crt", "-days", "30", "-sha256")  # fmt: skip
    return {"tls.crt": (t.dir / f"by-{name}.crt").read_bytes(), "ca.crt": crt}


def _tampered_csr(t: Tools) -> str:
    der = bytearray(x509.load_pem_x509_csr(t.csr(f"/C=IE/O=Partner/CN={CN}").encode()).public_bytes(
        serialization.Encoding.DER))  # fmt: skip
    der[-5] ^= 0xFF
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


def _expired_ca(t: Tools) -> dict[str, bytes]:
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Expired CA")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(7).not_valid_before(datetime_utc(2019)).not_valid_after(datetime_utc(2020))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return {"tls.crt": cert.public_bytes(serialization.Encoding.PEM), "tls.key": _pem(key)}


def _by_intermediate(t: Tools, csr: str) -> tuple[bytes, bytes]:
    """(leaf, intermediate): the partner signs with an issuing CA below its root, as commercial CAs do."""
    p = t.partner
    (t.dir / "inter.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    p.openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "inter.key", "-out", "inter.csr",
              "-subj", "/O=Partner/CN=Issuing CA")  # fmt: skip
    p.openssl("x509", "-req", "-in", "inter.csr", "-CA", str(p.ca_crt), "-CAkey", str(p.ca_key), "-CAcreateserial",
              "-out", "inter.crt", "-days", "365", "-extfile", "inter.ext")  # fmt: skip
    (t.dir / "leaf.csr").write_text(csr)
    p.openssl("x509", "-req", "-in", "leaf.csr", "-CA", "inter.crt", "-CAkey", "inter.key", "-CAcreateserial",
              "-out", "leaf-by-inter.crt", "-days", "30")  # fmt: skip
    return (t.dir / "leaf-by-inter.crt").read_bytes(), (t.dir / "inter.crt").read_bytes()


def _pkcs12(t: Tools) -> bytes:
    """A .p12 export (`openssl pkcs12 -export`): a key inside, so it is refused, naming what it is."""
    return t.partner.openssl("pkcs12", "-export", "-in", str(t.partner.ca_crt), "-inkey", str(t.partner.ca_key),
                             "-passout", "pass:x")  # fmt: skip


def datetime_utc(year: int) -> Any:
    import datetime

    return datetime.datetime(year, 1, 1, tzinfo=datetime.UTC)


def _pem(key: Any, password: bytes | None = None) -> bytes:
    algorithm = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm)


SIGNED: list[Case] = [
    Case("empty", "signed", "InvalidCertificate", "tls.crt is missing or empty", lambda t: {"tls.crt": b""}),
    Case("junk-1mb", "signed", "InvalidCertificate", "tls.crt is neither PEM, DER nor PKCS#7", lambda t: {"tls.crt": b"\x07" * 1_000_000}),
    Case("two-leaves", "signed", "InvalidChain", "number 2 in tls.crt (CN=client.example.com) is not part of the chain", lambda t: {
        "tls.crt": t.sign(t.our_csr) + t.sign(t.csr(f"/C=IE/O=X/CN={CN}"), out="x.crt"),
        "ca.crt": t.partner.ca_crt.read_bytes()}),
    Case("another-key", "signed", "KeyMismatch", "it was signed for a different CSR", lambda t: {
        "tls.crt": t.sign(t.csr(f"/C=IE/O=My Company Inc./CN={CN}"))}),
    Case("another-cn", "signed", "CommonNameMismatch", "'other.example.com' does not equal", lambda t: {
        "tls.crt": t.sign(t.our_csr, "-subj", "/C=IE/O=X/CN=other.example.com")}),
    Case("expired", "signed", "Expired", "expired at 2020-02-01T00:00:00Z", lambda t: {
        "tls.crt": t.partner.sign_with_dates(t.our_csr, "20200101000000Z", "20200201000000Z").read_bytes()}),
    Case("not-yet-valid", "signed", "NotYetValid", "not valid before 2099-01-01", lambda t: {
        "tls.crt": t.partner.sign_with_dates(t.our_csr, "20990101000000Z", "20991231000000Z").read_bytes()}),
    Case("server-only", "signed", "WrongUsage", "does not allow clientAuth", lambda t: {
        "tls.crt": t.sign(t.our_csr, "-extfile", t.ext("srv.ext", "extendedKeyUsage=serverAuth\n"))}),
    Case("other-ca", "signed", "UntrustedChain", "is not signed by the given CA", lambda t: {
        "tls.crt": t.sign(t.our_csr), "ca.crt": t.other.ca_crt.read_bytes()}),
    Case("ca-not-a-ca", "signed", "UntrustedChain", "is not a CA certificate", lambda t: _non_ca_issuer(t, t.our_csr)),
    Case("ca-junk", "signed", "InvalidCertificate", "ca.crt holds a certificate that does not parse", lambda t: {
        "tls.crt": t.sign(t.our_csr), "ca.crt": b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}),
    Case("a-csr", "signed", "InvalidCertificate", "tls.crt is a certificate signing request (CSR)", lambda t: {"tls.crt": t.our_csr.encode()}),
    Case("der-csr", "signed", "InvalidCertificate", "tls.crt is a certificate signing request (CSR, DER)", lambda t: {
        "tls.crt": x509.load_pem_x509_csr(t.our_csr.encode()).public_bytes(serialization.Encoding.DER)}),
    Case("a-key", "signed", "InvalidCertificate", "tls.crt holds a private key and no certificate: it was not stored", lambda t: {
        "tls.crt": (t.dir / "p.key").read_bytes() if (t.dir / "p.key").exists() else _pem(ec.generate_private_key(ec.SECP256R1()))}),
    Case("bad-base64", "signed", "InvalidCertificate", "tls.crt: its CERTIFICATE block is not valid base64", lambda t: {
        "tls.crt": b"-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n"}),
    Case("ca-cert-as-leaf", "signed", "CACertificateOnly", "that is the partner's CA, not the certificate they signed", lambda t: {
        "tls.crt": t.partner.ca_crt.read_bytes()}),
    Case("p7-of-cas", "signed", "CACertificateOnly", "the files hold only CA certificates", lambda t: {
        "tls.crt": t.partner.openssl("crl2pkcs7", "-nocrl", "-certfile", str(t.partner.ca_crt), "-outform", "der")}),
    Case("pkcs12", "signed", "InvalidCertificate", "tls.crt is a PKCS#12 (.p12/.pfx) file", lambda t: {
        "tls.crt": _pkcs12(t)}),
    Case("missing-intermediate", "signed", "UntrustedChain", "its issuer 'CN=Issuing CA,O=Partner' is in neither tls.crt nor ca.crt", lambda t: {
        "tls.crt": _by_intermediate(t, t.our_csr)[0], "ca.crt": t.partner.ca_crt.read_bytes()}),
    Case("root-not-the-given-ca", "signed", "UntrustedChain", "ends at the root 'CN=Partner Test CA,O=Partner,C=IE', which is not in ca.crt", lambda t: {
        "tls.crt": b"".join(_by_intermediate(t, t.our_csr)) + t.partner.ca_crt.read_bytes(), "ca.crt": t.other.ca_crt.read_bytes()}),
    Case("ca-rsa-1024", "signed", "UntrustedChain", "has an RSA key of 1024 bits", lambda t: _signed_by_pair(t, t.our_csr, "weakroot", newkey="rsa:1024")),
    Case("ca-without-keycertsign", "signed", "UntrustedChain", "keyCertSign is missing", lambda t: _signed_by_pair(
        t, t.our_csr, "nosignroot", "-addext", "keyUsage=critical,cRLSign")),
    Case("only-any-eku", "signed", "WrongUsage", "only anyExtendedKeyUsage", lambda t: {
        "tls.crt": t.sign(t.our_csr, "-extfile", t.ext("any.ext", "extendedKeyUsage=anyExtendedKeyUsage\n")),
        "ca.crt": t.partner.ca_crt.read_bytes()}),
    Case("stray-intermediate", "signed", "InvalidChain", "is neither one of its issuers nor a root", lambda t: {
        "tls.crt": t.sign(t.our_csr) + _by_intermediate(t, t.our_csr)[1], "ca.crt": t.partner.ca_crt.read_bytes()}),
]  # fmt: skip

PARTNER_CSRS: list[Case] = [
    Case("rsa-1024", "partner-csr", "CSRRejected", "has 1024 bits; at least 2048", lambda t: t.csr(f"/C=IE/O=P/CN={CN}", "rsa:1024")),
    Case("ecdsa", "partner-csr", "CSRRejected", "the CSR's key is ECDSA (256 bits); spec.csrPolicy allows RSA only",
         lambda t: t.csr(f"/C=IE/O=P/CN={CN}", "ec:" + t.ext("p256.pem", t.partner.openssl(
             "ecparam", "-name", "prime256v1").decode()))),
    Case("ed25519", "partner-csr", "CSRRejected", "is not RSA or ECDSA", lambda t: t.csr(f"/C=IE/O=P/CN={CN}", "ed25519")),
    Case("no-country", "partner-csr", "CSRRejected", "missing required field(s): Country (C)", lambda t: t.csr(f"/O=P/CN={CN}")),
    Case("no-org", "partner-csr", "CSRRejected", "missing required field(s): Organisation (O)", lambda t: t.csr(f"/C=IE/CN={CN}")),
    Case("no-cn", "partner-csr", "CSRRejected", "missing required field(s): Common Name (CN)", lambda t: t.csr("/C=IE/O=P")),
    Case("other-cn", "partner-csr", "CSRRejected", "does not match spec.commonName", lambda t: t.csr("/C=IE/O=P/CN=x.example.com")),
    Case("tampered", "partner-csr", "CSRRejected", "signature is invalid", _tampered_csr),
    Case("not-pem", "partner-csr", "CSRRejected", "not a PEM certificate signing request", lambda t:
         "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
    Case("two-csrs", "partner-csr", "CSRRejected", "spec.csr holds 2 CSRs", lambda t:
         t.csr(f"/C=IE/O=P/CN={CN}") + t.csr(f"/C=IE/O=P/CN={CN}")),
    Case("second-identity", "partner-csr", "CSRRejected", "which is not signed: only C, ST, L, O, OU and CN", lambda t:
         t.csr(f"/C=IE/O=P/CN={CN}/O=system:masters/UID=root/CN=api.billing.example.com")),
    Case("two-cns", "partner-csr", "CSRRejected", "2 values of CN", lambda t: t.csr(f"/C=IE/O=P/CN={CN}/CN=api.billing.example.com")),
    Case("secp256k1", "partner-csr", "CSRRejected", "which TLS stacks do not accept", lambda t:
         t.csr(f"/C=IE/O=P/CN={CN}", "ec:" + t.ext("k1.pem", t.partner.openssl("ecparam", "-name", "secp256k1").decode()))),
    Case("ecdsa-too-small", "partner-csr", "CSRRejected", "ECDSA key has 256 bits; at least 384", lambda t:
         t.csr(f"/C=IE/O=P/CN={CN}", "ec:p256.pem")),
]  # fmt: skip

CA_SECRETS: list[Case] = [
    Case("ca-key-mismatch", "ca", "CAInvalid", "tls.key does not belong to its tls.crt", lambda t: {
        "tls.crt": t.partner.ca_crt.read_bytes(), "tls.key": t.other.ca_key.read_bytes()}),
    Case("ca-leaf", "ca", "CAInvalid", "not a CA", lambda t: dict(zip(("tls.crt", "tls.key"),
        t.ca_pair("leafca", "-addext", "basicConstraints=critical,CA:FALSE"), strict=True))),
    Case("ca-expired", "ca", "CAInvalid", "expired", _expired_ca),
    Case("ca-rsa-1024-key", "ca", "CAInvalid", "servers would refuse every certificate this CA issues", lambda t: dict(zip(
        ("tls.crt", "tls.key"), t.ca_pair("weakca", newkey="rsa:1024"), strict=True))),
    Case("ca-no-keycertsign", "ca", "CAInvalid", "keyCertSign is missing", lambda t: dict(zip(
        ("tls.crt", "tls.key"), t.ca_pair("nosignca", "-addext", "keyUsage=critical,cRLSign"), strict=True))),
    Case("ca-encrypted-key", "ca", "CAInvalid", "tls.key", lambda t: {
        "tls.crt": t.partner.ca_crt.read_bytes(),
        "tls.key": t.partner.openssl("pkey", "-in", str(t.partner.ca_key), "-aes256", "-passout", "pass:secret")}),
    Case("ca-no-cert", "ca", "CAInvalid", "tls.crt", lambda t: {"tls.key": t.partner.ca_key.read_bytes()}),
    Case("ca-junk-key", "ca", "CAInvalid", "tls.key", lambda t: {
        "tls.crt": t.partner.ca_crt.read_bytes(), "tls.key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
    Case("ca-der-cert", "ca", "CAInvalid", "tls.crt", lambda t: {
        "tls.crt": t.der(t.partner.ca_crt.read_bytes()), "tls.key": t.partner.ca_key.read_bytes()}),
    Case("ca-missing", "ca", "CANotFound", "does not exist", lambda t: None),
]  # fmt: skip

SPECS: list[Case] = [
    Case("foreign-secret", "spec", "SecretConflict", "is not managed by this MtlsCertificate", lambda t: None),
    Case("secret-is-the-ca", "spec", "SecretConflict", "is not managed by this MtlsCertificate", lambda t: None),
]


def _good_ca(t: Tools) -> dict[str, bytes]:
    return {"tls.crt": t.partner.ca_crt.read_bytes(), "tls.key": t.partner.ca_key.read_bytes()}


# kind "issuer": make(t) gives the certificate's own MtlsIssuer: its CA Secret data (None: missing), its policy,
# and optionally more of the certificate's spec.
ISSUERS: list[Case] = [
    Case("issuer-missing", "issuer", "IssuerNotFound", "does not exist (spec.signer.issuerRef)", lambda t: None),
    Case("issuer-ca-missing", "issuer", "IssuerNotReady", "does not exist", lambda t: {"ca": None}),
    Case("issuer-ca-not-a-ca", "issuer", "IssuerNotReady", "not a CA certificate", lambda t: {"ca": dict(zip(
        ("tls.crt", "tls.key"), t.ca_pair("issuerleaf", "-addext", "basicConstraints=critical,CA:FALSE"), strict=True))}),
    Case("issuer-ca-rsa-1024", "issuer", "IssuerNotReady", "has an RSA key of 1024 bits", lambda t: {"ca": dict(zip(
        ("tls.crt", "tls.key"), t.ca_pair("issuerweak", newkey="rsa:1024"), strict=True))}),
    Case("issuer-bad-cn", "issuer", "PolicyViolation", "policy.allowedCommonNames: commonName 'client.example.com'", lambda t: {
        "ca": _good_ca(t), "policy": {"allowedCommonNames": ["*.{namespace}.partners.example.com"]}}),
    Case("issuer-bad-org", "issuer", "PolicyViolation", "policy.allowedSubject.organization: organization is 'My Company Inc.'", lambda t: {
        "ca": _good_ca(t), "policy": {"allowedSubject": {"organization": ["Another Ltd."]}}}),
    Case("issuer-too-long", "issuer", "PolicyViolation", "policy.maxDuration: duration 8760h", lambda t: {
        "ca": _good_ca(t), "policy": {"maxDuration": "720h"}}),
    Case("issuer-key-too-small", "issuer", "PolicyViolation", "policy.keys: RSA key of 2048 bits is below the minimum of 4096", lambda t: {
        "ca": _good_ca(t), "policy": {"keys": {"minRSAKeySize": 4096}}}),
    Case("issuer-no-partner-csrs", "issuer", "PolicyViolation", "policy.partnerCSRs", lambda t: {
        "ca": _good_ca(t), "spec": {"csr": t.csr(f"/C=IE/O=P/CN={CN}")}}),
    Case("issuer-csr-policy-widens", "issuer", "PolicyViolation", "policy.keys: RSA key of 2048 bits is below the minimum of 3072", lambda t: {
        "ca": _good_ca(t), "policy": {"partnerCSRs": "Allow", "keys": {"minRSAKeySize": 3072}},
        "spec": {"csr": t.csr(f"/C=IE/O=P/CN={CN}"), "csrPolicy": {"minRSAKeySize": 2048}}}),
]  # fmt: skip

CASES = SIGNED + PARTNER_CSRS + CA_SECRETS + SPECS + ISSUERS


def secret_state(kubectl: Kubectl, namespace: str, name: str) -> tuple[Any, Any] | None:
    found = kubectl.get("secret", name, namespace)
    return None if found is None else (found.get("data"), found["metadata"]["resourceVersion"])


def put(kubectl: Kubectl, namespace: str, name: str, data: dict[str, bytes]) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}  # fmt: skip
    kubectl.run("create", "-n", namespace, "-f", "-", input=json.dumps(body))


SPEC_TARGETS = {"foreign-secret": "foreign-tls", "secret-is-the-ca": "good-ca"}  # secretName of the spec cases


def issuer_case(kubectl: Kubectl, namespace: str, case: Case, t: Tools) -> None:
    """The case's own MtlsIssuer (and CA Secret), then the certificate that uses it."""
    made = case.make(t)
    spec: dict[str, Any] = {"signer": {"issuerRef": {"kind": "MtlsIssuer", "name": case.name}}}
    if made is not None:
        if made.get("ca") is not None:
            put(kubectl, namespace, f"{case.name}-ca", made["ca"])
        issuer = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsIssuer", "metadata": {"name": case.name},
                  "spec": {"ca": {"secretName": f"{case.name}-ca"}, "policy": made.get("policy") or {}}}  # fmt: skip
        kubectl.apply(json.dumps(issuer), namespace)
        spec.update(made.get("spec") or {})
    kubectl.apply(certificate_manifest(case.name, spec=spec), namespace)


def manifest(case: Case, csr: str | None = None) -> str:
    if case.kind == "signed":
        return certificate_manifest(case.name)
    if case.kind in ("ca", "spec"):
        ca_secret = "good-ca" if case.kind == "spec" else f"{case.name}-ca"
        extra = f"  signer:\n    ca:\n      secretName: {ca_secret}\n"
        return certificate_manifest(case.name, secret_name=SPEC_TARGETS.get(case.name), extra_spec=extra)
    spec: dict[str, Any] = {
        "secretName": f"{case.name}-tls", "commonName": CN, "subject": {"country": "IE", "organization": "P"},
        "signer": {"ca": {"secretName": "good-ca"}}, "csr": csr,
    }  # fmt: skip
    if case.name == "ecdsa-too-small":
        spec["csrPolicy"] = {"allowedKeyAlgorithms": ["ECDSA"], "minECDSAKeySize": 384}
    if case.name == "secp256k1":  # ECDSA allowed, 256 bits allowed: the curve alone is refused
        spec["csrPolicy"] = {"allowedKeyAlgorithms": ["ECDSA"]}
    return json.dumps({"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsCertificate", "metadata": {"name": case.name},
                       "spec": spec})  # fmt: skip


@pytest.fixture(scope="module")
def poisoned(kubectl: Kubectl, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory):
    namespace = f"bad-{int(time.time() * 1000) % 10**8}"
    kubectl.run("create", "namespace", namespace)
    t = Tools(tmp_path_factory.mktemp("catalogue"))
    kubectl.run("create", "secret", "tls", "good-ca", "-n", namespace,
                f"--cert={t.partner.ca_crt}", f"--key={t.partner.ca_key}")  # fmt: skip
    kubectl.run("create", "secret", "generic", "foreign-tls", "-n", namespace, "--from-literal=tls.key=not-ours")
    kubectl.apply(
        certificate_manifest("healthy", extra_spec="  signer:\n    ca:\n      secretName: good-ca\n"), namespace
    )
    healthy = wait_ready(kubectl, namespace, "healthy")
    healthy_secret = secret_state(kubectl, namespace, "healthy-tls")

    for case in SIGNED:
        kubectl.apply(manifest(case), namespace)
    csrs = {
        case.name: wait_certificate(kubectl, namespace, case.name, lambda o: (o.get("status") or {}).get("csr"),
                                    "CSR", 60)["status"]["csr"]
        for case in SIGNED
    }  # fmt: skip
    before: dict[str, Any] = {}
    for case in CASES:
        if case.kind == "signed":
            t.our_csr = csrs[case.name]  # type: ignore[attr-defined]
            before[case.name] = secret_state(kubectl, namespace, f"{case.name}-tls")
            put(kubectl, namespace, f"{case.name}-signed", case.make(t))  # type: ignore[arg-type]
        elif case.kind == "partner-csr":
            before[case.name] = None
            kubectl.apply(manifest(case, case.make(t)), namespace)  # type: ignore[arg-type]
        elif case.kind == "issuer":
            before[case.name] = None
            issuer_case(kubectl, namespace, case, t)
        elif case.kind == "ca":
            before[case.name] = None
            data = case.make(t)
            if data is not None:
                put(kubectl, namespace, f"{case.name}-ca", data)  # type: ignore[arg-type]
            kubectl.apply(manifest(case), namespace)
        else:
            before[case.name] = secret_state(kubectl, namespace, SPEC_TARGETS[case.name])
            kubectl.apply(manifest(case), namespace)
    kubectl.apply(
        certificate_manifest("newcomer", extra_spec="  signer:\n    ca:\n      secretName: good-ca\n"), namespace
    )
    return namespace, before, healthy, healthy_secret


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, poisoned: Any, kubectl: Kubectl, operator: OperatorProcess) -> None:
    namespace, before, _, _ = poisoned
    obj = wait_certificate(
        kubectl, namespace, case.name, lambda o: condition(o).get("reason") == case.reason, case.reason, 60
    )
    assert condition(obj)["status"] == "False" and case.message in condition(obj)["message"], condition(obj)
    assert "PRIVATE KEY" not in json.dumps(obj.get("status"))
    warnings = wait_for(
        lambda: [
            e for e in kubectl.events(namespace, case.name) if e["type"] == "Warning" and e["reason"] == case.reason
        ],
        what=f"Warning {case.reason}",
    )
    assert case.message in warnings[0]["message"] and "PRIVATE KEY" not in warnings[0]["message"]
    wait_for(lambda: failures(operator, namespace, case.name, case.reason) >= 1, what="failures_total counted")
    target = SPEC_TARGETS.get(case.name, f"{case.name}-tls")
    assert secret_state(kubectl, namespace, target) == before[case.name]
    assert operator.healthy()


def test_healthy_certificates_are_unaffected(poisoned: Any, kubectl: Kubectl, operator: OperatorProcess) -> None:
    namespace, _, healthy, healthy_secret = poisoned
    wait_ready(kubectl, namespace, "newcomer", timeout=60)  # created after all the poison: the queue still flows
    now = kubectl.get("mtlscertificate", "healthy", namespace)
    assert now["status"]["revision"] == healthy["status"]["revision"]
    assert secret_state(kubectl, namespace, "healthy-tls") == healthy_secret
    assert operator.healthy()


def failures(operator: OperatorProcess, namespace: str, name: str, reason: str) -> float:
    for line in operator.metrics().splitlines():
        if (line.startswith("mtls_certificate_failures_total{") and f'namespace="{namespace}"' in line
                and f'name="{name}"' in line and f'reason="{reason}"' in line):  # fmt: skip
            return float(line.rsplit(" ", 1)[1])
    return 0.0
