"""SoftHSM2, the standard PKCS#11 test double: tokens in a directory of our own, keys made inside the token by a
separate process (login state in PKCS#11 is per process: the operator's own must start logged out)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)

# Runs in a child process: a keypair made inside the token (never extractable) and a self-signed CA certificate
# whose signature the token makes.
_MAKE_CA = r"""
import datetime, sys, pkcs11
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.util.ec import encode_named_curve_parameters
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mtls_operator.hsm.keys import TokenECPrivateKey, TokenRSAPrivateKey
module, token_label, pin, key_label, kind, out = sys.argv[1:7]
lib = pkcs11.lib(module)
with lib.get_token(token_label=token_label).open(user_pin=pin, rw=True) as s:
    private = {Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.SIGN: True}
    if kind == "RSA":
        pub, priv = s.generate_keypair(KeyType.RSA, 2048, label=key_label, id=key_label.encode(), store=True,
                                       private_template=private)
        public = rsa.RSAPublicNumbers(int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big"),
                                      int.from_bytes(pub[Attribute.MODULUS], "big")).public_key()
        key = TokenRSAPrivateKey(public, lambda d, m: priv.sign(d, mechanism=getattr(Mechanism, m)), key_label)
    else:
        curve = {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}
        params = s.create_domain_parameters(KeyType.EC, curve, local=True)
        pub, priv = params.generate_keypair(store=True, label=key_label, id=key_label.encode(),
                                            private_template=private)
        point = bytes(pub[Attribute.EC_POINT])
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])  # DER OCTET STRING
        key = TokenECPrivateKey(public, lambda d, m: priv.sign(d, mechanism=getattr(Mechanism, m)), key_label)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HSM Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"HSM CA {key_label}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    open(out, "wb").write(cert.public_bytes(serialization.Encoding.PEM))
"""


def find_module() -> str | None:
    return next((m for m in MODULE_CANDIDATES if os.path.exists(m)), None)


@dataclass
class SoftHSM:
    """A token directory and the configuration file pointing at it (SOFTHSM2_CONF)."""

    root: Path
    module: str

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @classmethod
    def create(cls, root: Path, module: str) -> SoftHSM:
        hsm = cls(root, module)
        hsm.tokens.mkdir(parents=True, exist_ok=True)
        hsm.conf.write_text(f"directories.tokendir = {hsm.tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        return hsm

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str, pin: str, so_pin: str = "87654321") -> None:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def make_ca(self, token_label: str, pin: str, key_label: str, out: Path, kind: str = "RSA") -> bytes:
        """Generates the CA key inside the token and writes its self-signed certificate (PEM) to `out`."""
        subprocess.run(
            [sys.executable, "-c", _MAKE_CA, self.module, token_label, pin, key_label, kind, str(out)],
            env=self.env(),
            check=True,
            capture_output=True,
        )
        return out.read_bytes()

    def take_away(self) -> Path:
        """The token directory moves away (a token pulled, an HSM partition unreachable); `bring_back` undoes it."""
        away = self.root / "tokens.away"
        self.tokens.rename(away)
        return away

    def bring_back(self) -> None:
        (self.root / "tokens.away").rename(self.tokens)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


UNIT_PIN = "1234"  # the unit tests' tokens
PIN = "pin-31415"  # not a substring of anything else a test reads: a leak would be found
# On the operator's --pkcs11-module list, but not on disk: an allowed library that cannot be loaded.
ABSENT_MODULE = "/opt/hsm-vendor/lib/libabsent-pkcs11.so"
PROBE_SECONDS = 2  # the session operator probes token keys this often (production: 30)
# The namespaces whose MtlsIssuers the session operator lets use its tokens (--pkcs11-namespaced-token), one per
# test that needs one (tests/e2e/test_hsm_issuer.py's token_namespace); every other namespace is refused them.
TOKEN_NAMESPACES = tuple(f"hsm-team-{i}" for i in range(10))


@dataclass
class SessionHSM:
    """The e2e session's tokens: `e2e-rsa` holds RSA key `rsa-ca`, `e2e-ec` ECDSA P-256 key `ec-ca`; their CA
    certificates are `certificate(name)`."""

    hsm: SoftHSM

    @classmethod
    def create(cls, root: Path, module: str) -> SessionHSM:
        hsm = SoftHSM.create(root, module)
        hsm.init_token("e2e-rsa", PIN)
        hsm.init_token("e2e-ec", PIN)
        hsm.init_token("e2e-pin", PIN)  # only the refused-PIN test logs in here: its first login is a real one
        hsm.make_ca("e2e-rsa", PIN, "rsa-ca", root / "rsa-ca.crt")
        hsm.make_ca("e2e-ec", PIN, "ec-ca", root / "ec-ca.crt", kind="ECDSA")
        hsm.make_ca("e2e-pin", PIN, "pin-ca", root / "pin-ca.crt")
        return cls(hsm)

    @property
    def module(self) -> str:
        return self.hsm.module

    def certificate(self, name: str) -> Path:
        return self.hsm.root / f"{name}.crt"

    def operator_args(self) -> list[str]:
        return [
            "--pkcs11-module", self.module, "--pkcs11-module", ABSENT_MODULE,
            "--pkcs11-probe-seconds", str(PROBE_SECONDS),
            *(arg for ns in TOKEN_NAMESPACES for token in ("e2e-rsa", "e2e-ec", "e2e-pin")
              for arg in ("--pkcs11-namespaced-token", f"{token}={ns}")),
        ]  # fmt: skip
