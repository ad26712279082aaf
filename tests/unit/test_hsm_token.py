"""hsm.token against a real PKCS#11 token (SoftHSM2, installed by `make deps`): the CA key stays in the token,
what it signs verifies with openssl, and every way a token fails is named and recovered from."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from harness.softhsm import UNIT_PIN as PIN
from harness.softhsm import SoftHSM, find_module
from mtls_operator.hsm.token import (
    HsmUnavailable,
    PinDiffers,
    PinRefused,
    TokenKeyRef,
    TokenKeys,
    TokenNotAllowed,
    TokenUser,
)
from mtls_operator.pki.csr import build_csr
from mtls_operator.pki.signing import CertificateAuthority, sign_csr

MODULE = find_module()
CLUSTER = TokenUser("ClusterMtlsIssuer platform-ca", None)  # may use any token of an allowed library
OTHER_CLUSTER = TokenUser("ClusterMtlsIssuer other-ca", None)
TEAM_A = TokenUser("MtlsIssuer team-a/ca", "team-a")
pytestmark = pytest.mark.skipif(MODULE is None, reason="SoftHSM2 is not installed (make deps installs it)")

_EXPORT = r"""
import sys, pkcs11
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive
module, token, pin, label = sys.argv[1:5]
with pkcs11.lib(module).get_token(token_label=token).open(user_pin=pin) as s:
    key = s.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
    print("extractable", key[Attribute.EXTRACTABLE], "sensitive", key[Attribute.SENSITIVE])
    try:
        key[Attribute.PRIVATE_EXPONENT if key.key_type == pkcs11.KeyType.RSA else Attribute.VALUE]
        print("EXPORTED")
    except AttributeSensitive:
        print("export refused: AttributeSensitive")
"""


def _cert(hsm: SoftHSM, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((hsm.root / f"{name}.crt").read_bytes())


def _ref(token: str = "ca-token", key: str = "rsa-ca", module: str | None = None) -> TokenKeyRef:
    return TokenKeyRef(module=module or MODULE or "", token_label=token, key_label=key)


def _openssl_verify(hsm: SoftHSM, ca: str, leaf: x509.Certificate, tmp_path: Path) -> str:
    path = tmp_path / "leaf.crt"
    path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(hsm.root / f"{ca}.crt"), "-purpose", "sslclient", str(path)],
        capture_output=True,
        text=True,
    )
    return done.stdout + done.stderr


def _leaf(ca: CertificateAuthority, cn: str = "client.partner.example") -> x509.Certificate:
    from mtls_operator.api.spec import Subject

    key = rsa.generate_private_key(65537, 2048)
    csr = x509.load_pem_x509_csr(build_csr(key, Subject(common_name=cn, country="US", organization="Acme"), [cn]))
    return sign_csr(csr, ca, datetime.timedelta(days=30), datetime.datetime.now(datetime.UTC))


@pytest.mark.parametrize(("token", "key"), [("ca-token", "rsa-ca"), ("ec-token", "ec-ca")])
def test_leaves_signed_by_the_token_verify_with_openssl(hsm: SoftHSM, tmp_path: Path, token: str, key: str) -> None:
    keys = TokenKeys((hsm.module,))
    cert = _cert(hsm, key)
    ca = CertificateAuthority(cert, keys.signing_key(_ref(token, key), PIN.encode(), cert.public_key(), CLUSTER))
    leaf = _leaf(ca)
    assert "OK" in _openssl_verify(hsm, key, leaf, tmp_path)
    keys.close()


def test_a_partner_csr_made_by_openssl_is_signed_by_the_token(hsm: SoftHSM, tmp_path: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp_path / "p.key"),
            "-out",
            str(tmp_path / "p.csr"),
            "-subj",
            "/C=DE/O=Partner/CN=partner.example",
        ],
        check=True,
        capture_output=True,
    )
    keys = TokenKeys((hsm.module,))
    cert = _cert(hsm, "rsa-ca")
    ca = CertificateAuthority(cert, keys.signing_key(_ref(), PIN.encode(), cert.public_key(), CLUSTER))
    csr = x509.load_pem_x509_csr((tmp_path / "p.csr").read_bytes())
    leaf = sign_csr(csr, ca, datetime.timedelta(days=365), datetime.datetime.now(datetime.UTC))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "partner.example"
    assert "OK" in _openssl_verify(hsm, "rsa-ca", leaf, tmp_path)
    keys.close()


def test_the_key_is_non_extractable_and_export_fails(hsm: SoftHSM) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT, hsm.module, "ca-token", PIN, "rsa-ca"],
        env=hsm.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "extractable False sensitive True" in done.stdout
    assert "export refused: AttributeSensitive" in done.stdout and "EXPORTED" not in done.stdout
    keys = TokenKeys((hsm.module,))
    cert = _cert(hsm, "rsa-ca")
    key = keys.signing_key(_ref(), PIN.encode(), cert.public_key(), CLUSTER)
    with pytest.raises(TypeError, match="in the PKCS#11 token"):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    keys.close()


def test_a_wrong_pin_is_named_and_never_retried_until_it_changes(hsm: SoftHSM) -> None:
    keys = TokenKeys((hsm.module,))
    cert = _cert(hsm, "other-ca")
    ref = _ref("other-token", "other-ca")
    with pytest.raises(HsmUnavailable, match="refused the PIN") as refused:
        keys.signing_key(ref, b"0000", cert.public_key(), CLUSTER)
    assert "0000" not in str(refused.value)
    hsm.take_away()  # the second try must not reach the token: with it gone, the answer would say so
    try:
        with pytest.raises(HsmUnavailable, match="refused the PIN; it is not tried again until the PIN Secret changes"):
            keys.signing_key(ref, b"0000", cert.public_key(), CLUSTER)
    finally:
        hsm.bring_back()
    keys.signing_key(ref, PIN.encode(), cert.public_key(), CLUSTER)  # the right PIN, presented later, works
    keys.close()


def test_a_logged_in_token_is_not_lent_to_a_caller_without_its_pin(hsm: SoftHSM) -> None:
    keys = TokenKeys((hsm.module,))
    cert = _cert(hsm, "rsa-ca")
    working = CertificateAuthority(cert, keys.signing_key(_ref(), PIN.encode(), cert.public_key(), CLUSTER))
    session = keys._sessions[(MODULE or "", _ref().token)]
    # Another issuer's different PIN is not presented: it would log the working issuer out and count a failure.
    with pytest.raises(PinDiffers, match="differs from the one the token is logged in with .for ClusterMtlsIssuer"):
        keys.signing_key(_ref(), b"9999", cert.public_key(), OTHER_CLUSTER)
    assert keys._sessions[(MODULE or "", _ref().token)] is session, "the working session was logged out"
    _leaf(working)  # still signs
    # The same issuer with a new PIN (its PIN Secret changed): presented once.
    with pytest.raises(PinRefused):
        keys.signing_key(_ref(), b"9999", cert.public_key(), CLUSTER)
    keys.close()


def test_a_namespaced_issuer_uses_only_a_token_given_to_its_namespace(hsm: SoftHSM) -> None:
    import pkcs11

    keys = TokenKeys((hsm.module,), {"other-token": ["team-a"]})
    cert = _cert(hsm, "rsa-ca")
    serial = pkcs11.lib(hsm.module).get_token(token_label="ca-token").serial
    by_serial = TokenKeyRef(module=hsm.module, token_serial=serial if isinstance(serial, str) else serial.decode(),
                            key_label="rsa-ca")  # fmt: skip
    # The cluster CA's token, by label or by serial, right PIN or wrong: refused before any PIN reaches it (a
    # wrong PIN presented would come back as PinRefused).
    for ref, pin in ((_ref(), PIN.encode()), (_ref(), b"0000"), (by_serial, b"0000")):
        with pytest.raises(TokenNotAllowed, match="token 'ca-token' is not given to namespace team-a"):
            keys.signing_key(ref, pin, cert.public_key(), TEAM_A)
    # Nor through a session the cluster issuer opened, with the PIN it knows.
    keys.signing_key(_ref(), PIN.encode(), cert.public_key(), CLUSTER)
    with pytest.raises(TokenNotAllowed):
        keys.signing_key(_ref(), PIN.encode(), cert.public_key(), TEAM_A)
    # The token given to team-a works for team-a, and not for team-b.
    other = _cert(hsm, "other-ca")
    keys.signing_key(_ref("other-token", "other-ca"), PIN.encode(), other.public_key(), TEAM_A)
    with pytest.raises(TokenNotAllowed, match="not given to namespace team-b"):
        keys.signing_key(_ref("other-token", "other-ca"), PIN.encode(), other.public_key(),
                         TokenUser("MtlsIssuer team-b/ca", "team-b"))  # fmt: skip
    keys.close()


def test_missing_token_key_and_modules_are_named(hsm: SoftHSM) -> None:
    keys = TokenKeys((hsm.module, "/nonexistent/libvendor.so"))
    cert = _cert(hsm, "rsa-ca")
    with pytest.raises(HsmUnavailable, match="no token with label 'no-such-token'"):
        keys.signing_key(_ref("no-such-token"), PIN.encode(), cert.public_key(), CLUSTER)
    with pytest.raises(HsmUnavailable, match="no private key with label 'no-such-key'"):
        keys.signing_key(_ref(key="no-such-key"), PIN.encode(), cert.public_key(), CLUSTER)
    with pytest.raises(HsmUnavailable, match="module cannot be loaded"):
        keys.signing_key(_ref(module="/nonexistent/libvendor.so"), PIN.encode(), cert.public_key(), CLUSTER)
    with pytest.raises(HsmUnavailable, match="does not load /tmp/evil.so; allowed modules"):
        keys.signing_key(_ref(module="/tmp/evil.so"), PIN.encode(), cert.public_key(), CLUSTER)
    keys.close()


def test_a_key_that_does_not_belong_to_the_certificate_is_refused(hsm: SoftHSM) -> None:
    keys = TokenKeys((hsm.module,))
    with pytest.raises(HsmUnavailable, match="does not belong to the CA certificate"):
        keys.signing_key(_ref(), PIN.encode(), _cert(hsm, "other-ca").public_key(), CLUSTER)
    keys.close()


def test_a_token_that_goes_away_mid_run_is_named_and_used_again_when_it_returns(hsm: SoftHSM, tmp_path: Path) -> None:
    keys = TokenKeys((hsm.module,))
    cert = _cert(hsm, "rsa-ca")
    ca = CertificateAuthority(cert, keys.signing_key(_ref(), PIN.encode(), cert.public_key(), CLUSTER))
    hsm.take_away()
    try:
        with pytest.raises(HsmUnavailable, match="stopped answering"):
            _leaf(ca)
        with pytest.raises(HsmUnavailable):  # still away: named again, nothing signed
            keys.signing_key(_ref(), PIN.encode(), cert.public_key(), CLUSTER)
    finally:
        hsm.bring_back()
    leaf = _leaf(ca)  # the same key object: the operator needs no restart
    assert "OK" in _openssl_verify(hsm, "rsa-ca", leaf, tmp_path)
    keys.close()
