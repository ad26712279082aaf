"""Partner chains as real partner CAs make them, one defect or variation each, for our key.

Each case is a recipe: given the public key of our pending CSR (and the CSR itself, for the cases that openssl
signs), it returns what the partner sends (`tls.crt`, `ca.crt`) and the root a server would trust. No case says
whether it should be accepted: that is measured by real handshakes (`harness.handshakes`), never written here.

Most certificates are built with `cryptography` (every field under control); those only openssl makes as partners
do (`openssl x509 -req`: v1 without extensions, MD5, negative serial numbers) are made by the openssl command.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

CN = "client.example.com"
DAY = datetime.timedelta(days=1)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class PartnerFiles:
    """What the partner sends, and the one root a server of theirs trusts."""

    tls_crt: bytes
    ca_crt: bytes | None
    trusted_root: bytes

    def as_files(self) -> dict[str, bytes]:
        return {"tls.crt": self.tls_crt, **({"ca.crt": self.ca_crt} if self.ca_crt else {})}

    def presented(self, public_key: Any) -> bytes:
        """What a client holding everything the partner sent presents: our certificate first, then every other
        certificate of both files (servers build the path from what they receive, in any order)."""
        certs = x509.load_pem_x509_certificates(self.tls_crt + (self.ca_crt or b""))
        ours = [c for c in certs if c.public_key() == public_key]
        others = [c for c in dict.fromkeys(certs) if c not in ours]
        return pem(*ours[:1], *others)


@dataclass
class Authority:
    """A CA of the partner's: its certificate and key."""

    cert: x509.Certificate
    key: Any

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Partner"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


_KEYS: dict[str, Any] = {}


def key(kind: str = "rsa2048", slot: str = "") -> Any:
    """One key per (kind, slot) per process: generating RSA keys is the slow part of building forty chains."""
    if (kind, slot) not in _KEYS:
        _KEYS[kind, slot] = {
            "rsa1024": lambda: rsa.generate_private_key(65537, 1024),
            "rsa2048": lambda: rsa.generate_private_key(65537, 2048),
            "rsa3072": lambda: rsa.generate_private_key(65537, 3072),
            "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
            "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
            "ed25519": ed25519.Ed25519PrivateKey.generate,
        }[kind]()
    return _KEYS[kind, slot]


CA_USAGE = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # keyCertSign, cRLSign
CRL_ONLY = x509.KeyUsage(False, False, False, False, False, False, True, False, False)
LEAF_USAGE = x509.KeyUsage(True, False, True, False, False, False, False, False, False)  # digitalSignature, keyEnc.
ENCIPHER_ONLY_USAGE = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
UNKNOWN_OID = ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


@dataclass
class Spec:
    """One certificate: every field a partner CA gets wrong somewhere, with sensible defaults."""

    cn: str
    ca: bool = True
    basic_constraints: bool = True
    path_length: int | None = None
    key_usage: x509.KeyUsage | None = None
    eku: list[ObjectIdentifier] | None = None
    not_before: datetime.timedelta = -365 * DAY  # relative to now
    not_after: datetime.timedelta = 3650 * DAY
    digest: hashes.HashAlgorithm | None = field(default_factory=hashes.SHA256)
    pss: bool = False
    key_ids: bool = True
    wrong_aki: bool = False
    san: list[str] | None = None
    name_constraints: x509.NameConstraints | None = None
    unknown_critical: bool = False
    serial: int | None = None


def _leaf_subject() -> x509.Name:
    return LEAF_SUBJECT[-1] if LEAF_SUBJECT else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)])


def build(spec: Spec, public_key: Any, issuer: Authority | None, signing_key: Any) -> x509.Certificate:
    now = utcnow()
    issuer_name = issuer.cert.subject if issuer else _name(spec.cn)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec.cn) if issuer is None or spec.cn != CN else _leaf_subject())
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(spec.serial or x509.random_serial_number())
        .not_valid_before(now + spec.not_before)
        .not_valid_after(now + spec.not_after)
    )
    if spec.basic_constraints:
        bc = x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length if spec.ca else None)
        builder = builder.add_extension(bc, critical=True)
    usage = spec.key_usage if spec.key_usage is not None else (CA_USAGE if spec.ca else LEAF_USAGE)
    builder = builder.add_extension(usage, critical=True)
    if spec.eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(spec.eku), critical=False)
    if spec.key_ids:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        if spec.wrong_aki:
            aki = x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None)
        else:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key())
        builder = builder.add_extension(aki, critical=False)
    if spec.san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in spec.san]), False)
    if spec.name_constraints is not None:
        builder = builder.add_extension(spec.name_constraints, critical=True)
    if spec.unknown_critical:
        builder = builder.add_extension(x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), critical=True)
    if isinstance(signing_key, ed25519.Ed25519PrivateKey):
        return builder.sign(signing_key, None)
    if spec.pss:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return builder.sign(signing_key, hashes.SHA256(), rsa_padding=pss)
    return builder.sign(signing_key, spec.digest)


def root(spec: Spec | None = None, kind: str = "rsa2048", slot: str = "root") -> Authority:
    spec = spec or Spec("Partner Root CA")
    private = key(kind, slot)
    return Authority(build(spec, private.public_key(), None, private), private)


def intermediate(parent: Authority, spec: Spec | None = None, kind: str = "rsa2048", slot: str = "inter") -> Authority:
    spec = spec or Spec("Partner Issuing CA")
    private = key(kind, slot)
    return Authority(build(spec, private.public_key(), parent, parent.key), private)


def leaf(public_key: Any, issuer: Authority, spec: Spec | None = None) -> x509.Certificate:
    spec = spec or Spec(CN, ca=False, eku=[ExtendedKeyUsageOID.CLIENT_AUTH], not_after=365 * DAY)
    return build(spec, public_key, issuer, issuer.key)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def leaf_spec(**changes: Any) -> Spec:
    values: dict[str, Any] = {"cn": CN, "ca": False, "eku": [ExtendedKeyUsageOID.CLIENT_AUTH], "not_after": 365 * DAY}
    values.update(changes)
    return Spec(**values)


def ca_spec(cn: str = "Partner Issuing CA", **changes: Any) -> Spec:
    return Spec(cn, **changes)


def chained(
    public_key: Any,
    *,
    root_spec: Spec | None = None,
    root_kind: str = "rsa2048",
    inter_spec: Spec | None = None,
    inter_kind: str = "rsa2048",
    leaf_spec_: Spec | None = None,
    levels: int = 1,
) -> PartnerFiles:
    """root → `levels` intermediates → our leaf; tls.crt holds the leaf and intermediates, ca.crt the root."""
    top = root(root_spec, root_kind, slot=f"root-{root_kind}")
    issuers = [top]
    for level in range(levels):
        spec = inter_spec if level == levels - 1 else ca_spec(f"Partner Policy CA {level}")
        issuers.append(intermediate(issuers[-1], spec, inter_kind, slot=f"inter-{inter_kind}-{level}"))
    mine = leaf(public_key, issuers[-1], leaf_spec_)
    return PartnerFiles(pem(mine, *(a.cert for a in reversed(issuers[1:]))), top.pem, top.pem)


# --- openssl: what only the command makes -------------------------------------------------------------------


def openssl(workdir: Path, *args: str) -> bytes:
    proc = subprocess.run(["openssl", *args], capture_output=True, cwd=workdir)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {proc.stderr.decode()}")
    return proc.stdout


def openssl_sign(
    workdir: Path, csr_pem: bytes, issuer: Authority, *extra: str, extfile: str | None = None
) -> x509.Certificate:
    """The partner page's own command: `openssl x509 -req -in our.csr -CA ca.crt -CAkey ca.key -days 365`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "our.csr").write_bytes(csr_pem)
    (workdir / "issuer.crt").write_bytes(issuer.pem)
    (workdir / "issuer.key").write_bytes(issuer.key_pem())
    args = ["x509", "-req", "-in", "our.csr", "-CA", "issuer.crt", "-CAkey", "issuer.key", "-days", "365"]
    if extfile is not None:
        (workdir / "ext.cnf").write_text(extfile)
        args += ["-extfile", "ext.cnf"]
    if "-set_serial" not in extra:
        args += ["-CAcreateserial"]
    openssl(workdir, *args, *extra, "-out", "our.crt")
    return x509.load_pem_x509_certificate((workdir / "our.crt").read_bytes())


def openssl_v1_root(workdir: Path, cn: str = "Partner V1 Root") -> Authority:
    """`openssl x509 -req -signkey`: a self-signed v1 root without extensions, as old hand-run CAs have."""
    workdir.mkdir(parents=True, exist_ok=True)
    private = key("rsa2048", "v1root")
    (workdir / "v1root.key").write_bytes(Authority(None, private).key_pem())  # type: ignore[arg-type]
    openssl(workdir, "req", "-new", "-key", "v1root.key", "-subj", f"/O=Partner/CN={cn}", "-out", "v1root.csr")
    openssl(workdir, "x509", "-req", "-in", "v1root.csr", "-signkey", "v1root.key", "-days", "3650",
            "-out", "v1root.crt")  # fmt: skip
    return Authority(x509.load_pem_x509_certificate((workdir / "v1root.crt").read_bytes()), private)


def openssl_intermediate(workdir: Path, parent: Authority, *extra: str) -> Authority:
    """An intermediate signed by the openssl command with CA extensions (for digests cryptography no longer signs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    private = key("rsa2048", "opensslinter")
    (workdir / "inter.key").write_bytes(Authority(None, private).key_pem())  # type: ignore[arg-type]
    csr = openssl(workdir, "req", "-new", "-key", "inter.key", "-subj", "/O=Partner/CN=Partner Issuing CA")
    ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    cert = openssl_sign(workdir / "signed", csr, parent, *extra, extfile=ext)
    return Authority(cert, private)


def openssl_v1_intermediate(workdir: Path, parent: Authority) -> Authority:
    """An intermediate signed by `openssl x509 -req` without an extfile: v1, no basicConstraints, not self-signed."""
    workdir.mkdir(parents=True, exist_ok=True)
    private = key("rsa2048", "v1inter")
    (workdir / "v1inter.key").write_bytes(Authority(None, private).key_pem())  # type: ignore[arg-type]
    csr = openssl(workdir, "req", "-new", "-key", "v1inter.key", "-subj", "/O=Partner/CN=Partner V1 Issuing CA")
    cert = openssl_sign(workdir / "v1inter", csr, parent)
    return Authority(cert, private)


# --- the catalogue ------------------------------------------------------------------------------------------

Recipe = Callable[[Any, bytes, Path], PartnerFiles]  # (our public key, our CSR PEM, a work directory)
LEAF_SUBJECT: list[x509.Name] = []  # set by `files_for`: the subject of our CSR, which partners copy
CASES: dict[str, Recipe] = {}


def files_for(name: str, csr: x509.CertificateSigningRequest, workdir: Path) -> PartnerFiles:
    """The partner's answer to our CSR in case `name`; leaves carry the CSR's subject, as partners copy it."""
    LEAF_SUBJECT[:] = [csr.subject]
    workdir.mkdir(parents=True, exist_ok=True)
    return CASES[name](csr.public_key(), csr.public_bytes(serialization.Encoding.PEM), workdir)


def case(name: str) -> Callable[[Recipe], Recipe]:
    def register(recipe: Recipe) -> Recipe:
        CASES[name] = recipe
        return recipe

    return register


def _nc(permitted: list[str] | None = None, excluded: list[str] | None = None) -> x509.NameConstraints:
    return x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(n) for n in permitted] if permitted else None,
        excluded_subtrees=[x509.DNSName(n) for n in excluded] if excluded else None,
    )


SAN = [CN]

# Baselines and variations real partners send -------------------------------------------------------------

case("root-intermediate-leaf")(lambda pub, csr, d: chained(pub))
case("two-intermediates")(lambda pub, csr, d: chained(pub, levels=2))


@case("leaf-directly-under-root")
def _direct(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    return PartnerFiles(pem(leaf(pub, top)), top.pem, top.pem)


@case("partner-page-openssl-x509-req")
def _page(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    mine = openssl_sign(d / "page", csr, top, "-sha256")
    return PartnerFiles(pem(mine), top.pem, top.pem)


def openssl_under_intermediate(csr: bytes, workdir: Path, *flags: str) -> PartnerFiles:
    """root → intermediate → our leaf signed by the openssl command with `flags` (-sha1, -md5, -set_serial ...)."""
    top = root()
    inter = intermediate(top)
    mine = openssl_sign(workdir, csr, inter, *flags)
    return PartnerFiles(pem(mine, inter.cert), top.pem, top.pem)


case("openssl-x509-req-under-intermediate")(lambda pub, csr, d: openssl_under_intermediate(csr, d / "inter", "-sha256"))


@case("v1-self-signed-root")
def _v1_root(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = openssl_v1_root(d / "v1root")
    mine = openssl_sign(d / "v1root-leaf", csr, top, "-sha256")
    return PartnerFiles(pem(mine), top.pem, top.pem)


case("ecdsa-p256-cas")(lambda pub, csr, d: chained(pub, root_kind="p256", inter_kind="p256"))
case("ecdsa-p384-root-rsa-intermediate")(lambda pub, csr, d: chained(pub, root_kind="p384"))
case("ed25519-cas")(lambda pub, csr, d: chained(pub, root_kind="ed25519", inter_kind="ed25519"))
case("rsa-3072-root")(lambda pub, csr, d: chained(pub, root_kind="rsa3072"))
case("rsa-pss-signatures")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(pss=True), leaf_spec_=leaf_spec(pss=True))
)
case("sha384-signatures")(
    lambda pub, csr, d: chained(
        pub, inter_spec=ca_spec(digest=hashes.SHA384()), leaf_spec_=leaf_spec(digest=hashes.SHA512())
    )
)
case("leaf-without-eku")(lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(eku=None)))
case("leaf-eku-client-and-server")(
    lambda pub, csr, d: chained(
        pub, leaf_spec_=leaf_spec(eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    )
)
case("intermediate-eku-clientauth")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(eku=[ExtendedKeyUsageOID.CLIENT_AUTH]))
)
case("intermediate-without-key-usage")(lambda pub, csr, d: chained(pub, inter_spec=ca_spec(key_usage=None)))
case("no-key-identifiers")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(key_ids=False), leaf_spec_=leaf_spec(key_ids=False))
)
case("pathlen-0-respected")(lambda pub, csr, d: chained(pub, inter_spec=ca_spec(path_length=0)))
case("name-constraints-permit-us")(
    lambda pub, csr, d: chained(
        pub, inter_spec=ca_spec(name_constraints=_nc(permitted=["example.com"])), leaf_spec_=leaf_spec(san=SAN)
    )
)
case("leaf-with-san")(lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(san=SAN)))


@case("intermediate-also-in-ca-crt")
def _inter_in_ca(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    inter = intermediate(top)
    return PartnerFiles(pem(leaf(pub, inter)), pem(inter.cert, top.cert), top.pem)


@case("root-sent-in-tls-crt")
def _root_in_tls(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    inter = intermediate(top)
    return PartnerFiles(pem(leaf(pub, inter), inter.cert, top.cert), None, top.pem)


# Defects of the CAs -------------------------------------------------------------------------------------------

case("intermediate-expired")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(not_before=-400 * DAY, not_after=-2 * DAY))
)
case("intermediate-not-yet-valid")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(not_before=2 * DAY, not_after=900 * DAY))
)
case("root-expired")(
    lambda pub, csr, d: chained(pub, root_spec=ca_spec("Partner Root CA", not_before=-900 * DAY, not_after=-DAY))
)
case("root-not-yet-valid")(lambda pub, csr, d: chained(pub, root_spec=ca_spec("Partner Root CA", not_before=3 * DAY)))
case("intermediate-key-usage-without-keycertsign")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(key_usage=CRL_ONLY))
)
case("intermediate-ca-false")(lambda pub, csr, d: chained(pub, inter_spec=ca_spec(ca=False, key_usage=CA_USAGE)))
case("intermediate-without-basic-constraints")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(basic_constraints=False))
)


@case("v1-intermediate")
def _v1_inter(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    inter = openssl_v1_intermediate(d / "v1inter", top)
    mine = leaf(pub, inter, leaf_spec(key_ids=False))
    return PartnerFiles(pem(mine, inter.cert), top.pem, top.pem)


case("pathlen-exceeded")(
    lambda pub, csr, d: chained(pub, root_spec=ca_spec("Partner Root CA", path_length=0), levels=2)
)
case("name-constraints-exclude-us")(
    lambda pub, csr, d: chained(
        pub, inter_spec=ca_spec(name_constraints=_nc(excluded=["example.com"])), leaf_spec_=leaf_spec(san=SAN)
    )
)
case("name-constraints-permit-others")(
    lambda pub, csr, d: chained(
        pub, inter_spec=ca_spec(name_constraints=_nc(permitted=["partner.test"])), leaf_spec_=leaf_spec(san=SAN)
    )
)
case("name-constraints-directory-name")(
    lambda pub, csr, d: chained(
        pub,
        inter_spec=ca_spec(
            name_constraints=x509.NameConstraints(
                permitted_subtrees=[x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "IE")]))],
                excluded_subtrees=None,
            )
        ),
    )
)
case("intermediate-eku-serverauth-only")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
)
case("intermediate-unknown-critical-extension")(
    lambda pub, csr, d: chained(pub, inter_spec=ca_spec(unknown_critical=True))
)
case("root-rsa-1024")(lambda pub, csr, d: chained(pub, root_kind="rsa1024"))
case("intermediate-rsa-1024")(lambda pub, csr, d: chained(pub, inter_kind="rsa1024"))
case("intermediate-secp256k1")(lambda pub, csr, d: chained(pub, inter_kind="secp256k1"))


@case("intermediate-sha1")
def _inter_sha1(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    inter = openssl_intermediate(d / "sha1inter", top, "-sha1")
    return PartnerFiles(pem(leaf(pub, inter), inter.cert), top.pem, top.pem)


case("intermediate-wrong-authority-key-id")(lambda pub, csr, d: chained(pub, inter_spec=ca_spec(wrong_aki=True)))


@case("intermediate-missing")
def _missing(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    inter = intermediate(top)
    return PartnerFiles(pem(leaf(pub, inter)), top.pem, top.pem)


@case("signed-by-another-root")
def _other_root(pub: Any, csr: bytes, d: Path) -> PartnerFiles:
    top = root()
    other = root(ca_spec("Partner Root CA"), slot="impostor")  # same name, another key
    return PartnerFiles(pem(leaf(pub, other)), top.pem, top.pem)


# Defects of the leaf ------------------------------------------------------------------------------------------

case("leaf-eku-serverauth-only")(
    lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
)
case("leaf-eku-any-only")(
    lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]))
)
case("leaf-key-usage-without-digital-signature")(
    lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(key_usage=ENCIPHER_ONLY_USAGE))
)
case("leaf-unknown-critical-extension")(lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(unknown_critical=True)))
case("leaf-wrong-authority-key-id")(lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(wrong_aki=True)))


case("leaf-sha1")(lambda pub, csr, d: openssl_under_intermediate(csr, d / "sha1", "-sha1"))


case("leaf-basic-constraints-ca-true")(lambda pub, csr, d: chained(pub, leaf_spec_=leaf_spec(ca=True)))


case("leaf-md5")(lambda pub, csr, d: openssl_under_intermediate(csr, d / "md5", "-md5"))


case("leaf-negative-serial")(
    lambda pub, csr, d: openssl_under_intermediate(csr, d / "negative", "-sha256", "-set_serial", "-4242")
)
