"""lifecycle.signers.issuerca: an issuer's CA from a Secret or from a PKCS#11 token (real SoftHSM2) with its
certificate in a ConfigMap or Secret, read through FakeKube; every problem a named refusal, the token key proven
once and probed on demand."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from harness.fakekube import FakeKube
from harness.lifecycle import NAMESPACE, Clock, Lifecycle, certificate_body
from harness.pki import make_ca
from harness.softhsm import UNIT_PIN, SoftHSM
from mtls_operator.api.issuer import IssuerSpec, parse_issuer
from mtls_operator.hsm.token import TokenKeys
from mtls_operator.lifecycle.attempt import Rejected
from mtls_operator.lifecycle.reconciler import Reconciler
from mtls_operator.lifecycle.signers.issuerca import CONFIGMAP_REUSE, IssuerCA, IssuerCALoader
from mtls_operator.pki.certificates import to_pem
from mtls_operator.runtime.issuerbook import IssuerBook

NS = "team"
# The unit tests' namespaced issuers may use these tokens (settings.hsm.namespaced_tokens).
GIVEN = {"ca-token": [NS, NAMESPACE], "ec-token": [NS, NAMESPACE]}
ECDSA_TOO = {"keys": {"allowedAlgorithms": ["RSA", "ECDSA"]}}  # the harness's certificates have ECDSA keys


class CountingTokens(TokenKeys):
    """TokenKeys that counts the token keys it builds (each one a login check and a signature)."""

    built = 0

    def signing_key(self, *args: Any) -> Any:
        self.built += 1
        return super().signing_key(*args)


class Tick(Clock):
    """Real time, moved past the loader's ConfigMap reuse at each reading (each step of a test sees its change)."""

    def __init__(self) -> None:
        super().__init__(datetime.datetime.now(datetime.UTC))

    def __call__(self) -> datetime.datetime:
        self.advance(seconds=CONFIGMAP_REUSE.total_seconds())
        return self.now


def loader(hsm: SoftHSM, kube: FakeKube | None = None) -> tuple[IssuerCALoader, FakeKube, CountingTokens]:
    kube = kube or FakeKube()
    tokens = CountingTokens((hsm.module,), GIVEN)
    reconciler = Reconciler(kube, cpu_threads=1, clock=Tick(), tokens=tokens)  # type: ignore[arg-type]
    return reconciler.issuer_cas, kube, tokens


def spec(hsm: SoftHSM, certificate: dict[str, str] | None = None, **token: str) -> IssuerSpec:
    pkcs11 = {"module": hsm.module, "tokenLabel": "ca-token", "keyLabel": "rsa-ca", "pinSecretRef": {"name": "pin"}}
    ca = {"pkcs11": {**pkcs11, **token}, "certificate": certificate or {"configMapName": "ca"}}
    return parse_issuer("MtlsIssuer", {"metadata": {"name": "hsm", "namespace": NS}, "spec": {"ca": ca}})


def put(
    kube: FakeKube, hsm: SoftHSM, cert: str = "rsa-ca", pin: bytes = UNIT_PIN.encode() + b"\n", namespace: str = NS
) -> bytes:
    pem = (hsm.root / f"{cert}.crt").read_bytes()
    kube.configmaps[(namespace, "ca")] = {"metadata": {"name": "ca"}, "data": {"ca.crt": pem.decode()}}
    kube.put_secret(namespace, "pin", {"pin": pin})
    return pem


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def test_a_token_key_signs_for_the_certificate_in_a_configmap(hsm: SoftHSM) -> None:
    cas, kube, tokens = loader(hsm)
    pem = put(kube, hsm)  # the PIN with the newline `echo` leaves
    loaded = await cas.load(spec(hsm), NS, now())
    assert isinstance(loaded, IssuerCA), loaded
    assert loaded.in_token and loaded.pool is cas.token_pool and loaded.ca_pem == pem
    assert "PKCS#11 key label 'rsa-ca' on token label 'ca-token'" in loaded.key_location
    with pytest.raises(TypeError, match="in the PKCS#11 token"):
        loaded.ca.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    again = await cas.load(spec(hsm), NS, now(), probe=True)  # cached, and probed with one more signature
    assert isinstance(again, IssuerCA) and again.ca.key is loaded.ca.key and tokens.built == 1
    cas.close()


async def test_a_der_certificate_in_a_secret_or_in_binary_data(hsm: SoftHSM) -> None:
    cas, kube, _ = loader(hsm)
    put(kube, hsm, cert="ec-ca")
    der = x509.load_pem_x509_certificate((hsm.root / "ec-ca.crt").read_bytes()).public_bytes(serialization.Encoding.DER)
    kube.put_secret(NS, "ec-public", {"ca.crt": der})
    ec = await cas.load(spec(hsm, {"secretName": "ec-public"}, tokenLabel="ec-token", keyLabel="ec-ca"), NS, now())
    assert isinstance(ec, IssuerCA), ec
    kube.configmaps[(NS, "bin")] = {"binaryData": {"ca.crt": base64.b64encode(der).decode()}}
    binary = await cas.load(spec(hsm, {"configMapName": "bin"}, tokenLabel="ec-token", keyLabel="ec-ca"), NS, now())
    assert isinstance(binary, IssuerCA) and binary.ca.certificate == ec.ca.certificate
    cas.close()


async def test_every_problem_is_a_named_refusal(hsm: SoftHSM) -> None:
    cas, kube, _ = loader(hsm)
    refused(await cas.load(spec(hsm), NS, now()), "CANotFound", "ConfigMap team/ca (key ca.crt)")
    put(kube, hsm)
    del kube.secrets[(NS, "pin")]
    refused(await cas.load(spec(hsm), NS, now()), "PINNotFound", "PIN Secret team/pin does not exist")
    kube.put_secret(NS, "pin", {"other": b"x"})
    refused(await cas.load(spec(hsm), NS, now()), "PINNotFound", "has no key pin")
    put(kube, hsm, cert="other-ca")  # a CA whose key is on another token
    refused(await cas.load(spec(hsm), NS, now()), "HSMUnavailable", "does not belong to the CA certificate")
    put(kube, hsm)
    refused(await cas.load(spec(hsm, tokenLabel="absent"), NS, now()), "HSMUnavailable", "no token")

    leaf_ca, leaf_key = not_a_ca()
    kube.configmaps[(NS, "ca")] = {"data": {"ca.crt": to_pem([leaf_ca]).decode()}}
    refused(await cas.load(spec(hsm), NS, now()), "CAInvalid", "is not a CA certificate")
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kube.configmaps[(NS, "ca")] = {"data": {"ca.crt": ((hsm.root / "rsa-ca.crt").read_bytes() + key_pem).decode()}}
    leaky = refused(await cas.load(spec(hsm), NS, now()), "CAInvalid", "holds a private key as well")
    assert key_pem.decode().splitlines()[1] not in leaky.message
    cas.close()


async def test_a_pin_the_token_refused_is_not_presented_again_even_by_the_next_process(hsm: SoftHSM) -> None:
    cas, kube, _ = loader(hsm)
    put(kube, hsm, pin=b"0000")
    refused(await cas.load(spec(hsm), NS, now()), "PINRefused", "the token refused the PIN")
    issuer = spec(hsm)
    assert issuer.pkcs11 is not None
    record = cas.refused_pin(NS, issuer.pkcs11)  # what the issuer's status.pinRefused keeps
    assert record == {"secretName": "pin", "resourceVersion": kube.secrets[(NS, "pin")].resource_version}
    cas.close()
    # The next process (a restart, a new leader) reads the record: with the token away, an attempt would say so.
    following, _, tokens = loader(hsm, kube)  # a new loader and token sessions, the same cluster
    hsm.take_away()
    try:
        refused(await following.load(issuer, NS, now(), refused_pin=record), "PINRefused", "not tried again until")
    finally:
        hsm.bring_back()
    assert tokens.built == 0, "the refused PIN reached the token"
    assert following.refused_pin(NS, issuer.pkcs11) == record  # and it keeps the record
    # The PIN Secret changes: presented (once), and the record goes.
    put(kube, hsm)
    assert isinstance(await following.load(issuer, NS, now(), refused_pin=record), IssuerCA)
    assert following.refused_pin(NS, issuer.pkcs11) is None
    following.close()


async def test_a_namespaced_issuer_naming_a_token_not_given_to_it_is_refused_for_good(hsm: SoftHSM) -> None:
    cas, kube, _ = loader(hsm)
    put(kube, hsm, namespace="elsewhere")
    pkcs11 = {"module": hsm.module, "tokenLabel": "ca-token", "keyLabel": "rsa-ca", "pinSecretRef": {"name": "pin"}}
    ca = {"pkcs11": pkcs11, "certificate": {"configMapName": "ca"}}
    body = {"metadata": {"name": "hsm", "namespace": "elsewhere"}, "spec": {"ca": ca}}
    found = refused(await cas.load(parse_issuer("MtlsIssuer", body), "elsewhere", now()), "TokenNotAllowed",
                    "token 'ca-token' is not given to namespace elsewhere")  # fmt: skip
    assert found.phase == "Failed"
    cas.close()


async def test_a_probe_finds_the_token_gone_and_back(hsm: SoftHSM) -> None:
    cas, kube, _ = loader(hsm)
    put(kube, hsm)
    assert isinstance(await cas.load(spec(hsm), NS, now()), IssuerCA)
    assert isinstance(await cas.load(spec(hsm), NS, now()), IssuerCA)  # no probe: the cached key, no token call
    hsm.take_away()
    try:
        refused(await cas.load(spec(hsm), NS, now(), probe=True), "HSMUnavailable", "stopped answering")
    finally:
        hsm.bring_back()
    assert isinstance(await cas.load(spec(hsm), NS, now(), probe=True), IssuerCA)
    cas.close()


async def test_a_configmap_is_read_once_per_few_seconds_for_all_certificates(hsm: SoftHSM) -> None:
    kube = FakeKube()
    clock = Clock(now())
    cas = Reconciler(kube, cpu_threads=1, clock=clock, tokens=TokenKeys((hsm.module,), GIVEN)).issuer_cas  # type: ignore[arg-type]
    put(kube, hsm)
    reads = 0
    read = kube.get_configmap

    async def counted(namespace: str, name: str) -> dict[str, Any] | None:
        nonlocal reads
        reads += 1
        return await read(namespace, name)

    kube.get_configmap = counted  # type: ignore[method-assign]
    for _ in range(20):  # twenty certificates of one issuer reconciled at once
        assert isinstance(await cas.load(spec(hsm), NS, clock.now), IssuerCA)
    assert reads == 1
    put(kube, hsm, cert="ec-ca")  # the certificate replaced: seen once the reuse is over
    clock.advance(seconds=CONFIGMAP_REUSE.total_seconds())
    refused(
        await cas.load(spec(hsm), NS, clock.now),
        "HSMUnavailable",
        "is an RSA key and the CA certificate's key is ECDSA",
    )
    cas.close()


async def test_a_ca_keypair_in_a_secret_is_loaded_as_before() -> None:
    kube = FakeKube()
    cas = Reconciler(kube, cpu_threads=1, clock=Clock()).issuer_cas  # type: ignore[arg-type]
    cert, key = make_ca("Secret CA")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    kube.put_secret(NS, "ca", {"tls.crt": to_pem([cert]), "tls.key": key_pem})
    body = {"metadata": {"name": "plain", "namespace": NS}, "spec": {"ca": {"secretName": "ca"}}}
    loaded = await cas.load(parse_issuer("MtlsIssuer", body), NS, now())
    assert isinstance(loaded, IssuerCA) and not loaded.in_token and loaded.key_location == "CA Secret team/ca"
    assert loaded.pool is cas.ctx.cpu
    cas.close()


def refused(result: IssuerCA | Rejected, reason: str, words: str) -> Rejected:
    assert isinstance(result, Rejected), result
    assert (result.reason, words in result.message) == (reason, True), result
    return result


def not_a_ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed certificate without basicConstraints CA:TRUE (a leaf pasted where the CA belongs)."""
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client.example.com")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now() - datetime.timedelta(days=1))
        .not_valid_after(now() + datetime.timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert, key


def token_issuer(hsm: SoftHSM, status: dict[str, Any] | None = None) -> tuple[FakeKube, IssuerBook, dict[str, Any]]:
    """An MtlsIssuer with its key in ca-token, as the controller's book holds it, and its certificate and PIN."""
    kube, book = FakeKube(), IssuerBook("mtls-system")
    token = {"module": hsm.module, "tokenLabel": "ca-token", "keyLabel": "rsa-ca", "pinSecretRef": {"name": "pin"}}
    ca = {"pkcs11": token, "certificate": {"configMapName": "ca"}}
    issuer = {"metadata": {"name": "hsm", "namespace": NAMESPACE}, "spec": {"ca": ca, "policy": ECDSA_TOO}}
    book.store_issuer("MtlsIssuer", kube.add_issuer("MtlsIssuer", {**issuer, "status": status or {}}))
    put(kube, hsm, namespace=NAMESPACE)
    return kube, book, issuer


async def test_a_token_gone_between_resolving_and_signing_signs_nothing(hsm: SoftHSM) -> None:
    """The issuer was Ready and its key is cached (no probe on a certificate's reconcile): the signature itself
    fails, and the certificate waits with the reason named; nothing is written. When the token is back, it issues."""
    kube, book, issuer = token_issuer(hsm)
    clock = Clock(now())
    ref = {"signer": {"issuerRef": {"kind": "MtlsIssuer", "name": "hsm"}}}
    lc = Lifecycle(
        certificate_body("late", spec=ref), kube, issuers=book, clock=clock, tokens=TokenKeys((hsm.module,), GIVEN)
    )
    cas = lc.reconciler.issuer_cas
    assert isinstance(await cas.load(parse_issuer("MtlsIssuer", issuer), NAMESPACE, clock.now), IssuerCA)  # Ready
    hsm.take_away()
    try:
        await lc.settle()
        message = lc.ready["message"]
        assert lc.ready["reason"] == "IssuerNotReady" and "on token label 'ca-token'" in message, lc.ready
        assert "stopped answering" in message or "does not initialise" in message, message
        assert lc.secret() is None
    finally:
        hsm.bring_back()
    assert (await lc.settle())["phase"] == "Ready", lc.ready
    leaf = x509.load_pem_x509_certificate(lc.secret()["tls.crt"])  # type: ignore[index]
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate((hsm.root / "rsa-ca.crt").read_bytes()))
    cas.close()


async def test_while_the_issuer_reports_its_token_down_no_key_is_generated(hsm: SoftHSM) -> None:
    down = {"type": "Ready", "status": "False", "reason": "HSMUnavailable", "message": "the token stopped answering"}
    kube, book, _ = token_issuer(hsm, {"conditions": [down]})
    ref = {"signer": {"issuerRef": {"kind": "MtlsIssuer", "name": "hsm"}}}
    tokens = CountingTokens((hsm.module,), GIVEN)
    lc = Lifecycle(certificate_body("waits", spec=ref), kube, issuers=book, clock=Clock(now()), tokens=tokens)
    await lc.settle()
    assert lc.ready["reason"] == "IssuerNotReady" and "the token stopped answering" in lc.ready["message"]
    assert (lc.keys_generated, tokens.built, lc.secret()) == (0, 0, None)
    lc.reconciler.issuer_cas.close()
