"""Property-based fuzzing of every function that parses untrusted bytes (hypothesis, derandomized: CI repeats).

Inputs: random bytes, random DER inside valid PEM armour, and valid certificates, CSRs and keys mutated byte by
byte (in PEM and in the DER under the armour, so parsing gets past the first check). The only allowed outcomes
are a result or our typed rejection; any other exception is a crash of the operator on user input.
"""

from __future__ import annotations

import base64
import contextlib
import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.pki import CLIENT_AUTH, NOW, issue, make_ca
from mtls_operator.api.issuer import parse_issuer
from mtls_operator.api.spec import parse_spec
from mtls_operator.lifecycle.policy.issuance import IssuanceRequest, violations
from mtls_operator.lifecycle.publisher import trust_bundle
from mtls_operator.pki.bundle import UnreadableFile, read_certificates
from mtls_operator.pki.certificates import first_certificate, load_pem_bundle
from mtls_operator.pki.csr import CsrPolicy, Subject, build_csr, check_partner_csr
from mtls_operator.pki.keys import KeySpec, load_private_key, private_key_to_pem
from mtls_operator.pki.signing import load_ca
from mtls_operator.pki.verify import Rejection, Verified, verify_signed_certificate

# A time budget per input: a parser that backtracks or builds paths pair by pair shows as one slow input (the
# quadratic PEM scanner took 5.7 s on 128 KiB), and a slow input is a failure. A second is a hundred times what any
# of these parsers needs (a 1 MiB hostile file: 14 ms), so machine noise does not fail it.
FUZZ = settings(
    max_examples=2000,
    derandomize=True,
    deadline=datetime.timedelta(seconds=1),
    suppress_health_check=list(HealthCheck),
)

CA = make_ca("Fuzz CA")
KEY = rsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF = issue(KEY.public_key(), CA, eku=CLIENT_AUTH)
PEM = serialization.Encoding.PEM
SEEDS = {
    "leaf": LEAF.public_bytes(PEM),
    "ca": CA[0].public_bytes(PEM),
    "chain": LEAF.public_bytes(PEM) + CA[0].public_bytes(PEM),
    "csr": build_csr(KEY, Subject("client.example.com", "IE", "Org"), ["client.example.com"]),
    "key": private_key_to_pem(KEY),
    "ec-key": private_key_to_pem(EC_KEY),
    "der": LEAF.public_bytes(serialization.Encoding.DER),
    "p7-pem": pkcs7.serialize_certificates([CA[0], LEAF], PEM),
    "p7-der": pkcs7.serialize_certificates([CA[0], LEAF], serialization.Encoding.DER),
}


def armour(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


def unarmour(pem: bytes) -> tuple[str, bytes]:
    lines = pem.decode().strip().splitlines()
    label = lines[0].removeprefix("-----BEGIN ").removesuffix("-----")
    end = next(i for i, line in enumerate(lines) if line.startswith("-----END"))
    return label, base64.b64decode("".join(lines[1:end]))


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """A valid object with a few bytes flipped, cut or inserted, in the PEM text or in the DER beneath it."""
    armoured = seed.startswith(b"-----")
    in_der = armoured and draw(st.booleans())
    label, der = unarmour(seed) if armoured else ("", seed)
    data = bytearray(der if in_der else seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut" and data:
            del data[pos : pos + draw(st.integers(1, 16))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            data = data[:pos]
    return armour(label, bytes(data)) if in_der else bytes(data)


def untrusted(seed: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=512).map(lambda der: armour("CERTIFICATE", der)),
        mutated(SEEDS[seed]),
    )


@FUZZ
@given(tls_crt=untrusted("chain"), ca_crt=st.one_of(st.none(), untrusted("ca")))
def test_verify_signed_certificate_only_verdicts(tls_crt: bytes, ca_crt: bytes | None) -> None:
    result = verify_signed_certificate(tls_crt, ca_crt, KEY, "client.example.com", NOW)
    assert isinstance(result, Verified | Rejection)
    if isinstance(result, Rejection):
        assert result.reason and result.message and b"PRIVATE" not in result.message.encode()


def partner_file() -> st.SearchStrategy[bytes]:
    """What partners send, mutated: DER, PKCS#7 in PEM and DER, a chain with a key pasted in."""
    return st.one_of(
        untrusted("der"), untrusted("p7-der"), mutated(SEEDS["p7-pem"]), mutated(SEEDS["key"] + SEEDS["chain"])
    )


@FUZZ
@given(tls_crt=partner_file(), ca_crt=st.one_of(st.none(), partner_file()))
def test_every_format_gives_only_verdicts(tls_crt: bytes, ca_crt: bytes | None) -> None:
    result = verify_signed_certificate(tls_crt, ca_crt, KEY, "client.example.com", NOW)
    assert isinstance(result, Verified | Rejection)
    if isinstance(result, Rejection):
        assert result.reason and result.message and b"PRIVATE KEY-----" not in result.message.encode()


@FUZZ
@given(data=partner_file())
def test_read_certificates_only_certificates_or_a_named_refusal(data: bytes) -> None:
    try:
        found = read_certificates(data, "tls.crt")
    except UnreadableFile as exc:
        assert str(exc).startswith("tls.crt") and "PRIVATE KEY-----" not in str(exc)
    else:
        assert found.certificates


@FUZZ
@given(csr=untrusted("csr").map(lambda b: b.decode("latin-1")))
def test_check_partner_csr_only_a_csr_or_a_problem(csr: str) -> None:
    parsed, problem = check_partner_csr(csr, "client.example.com", CsrPolicy(algorithms=("RSA", "ECDSA")))
    assert (parsed is None) != (problem is None)


@FUZZ
@given(tls_crt=st.one_of(st.none(), untrusted("ca")), tls_key=st.one_of(st.none(), untrusted("key")))
def test_load_ca_only_a_ca_or_value_error(tls_crt: bytes | None, tls_key: bytes | None) -> None:
    try:
        load_ca(tls_crt, tls_key)
    except ValueError as exc:
        assert "PRIVATE KEY-----" not in str(exc)  # the message names the problem, never the key


@FUZZ
@given(pem=st.one_of(untrusted("key"), mutated(SEEDS["ec-key"])))
def test_load_private_key_only_a_key_or_value_error(pem: bytes) -> None:
    with contextlib.suppress(ValueError):
        load_private_key(pem)


@FUZZ
@given(data=untrusted("chain"))
def test_certificate_bundles(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        assert load_pem_bundle(data)
    first_certificate(data)  # None or a certificate, never an exception
    assert isinstance(trust_bundle([data, SEEDS["ca"]]), bytes)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
SPEC_KEYS = ["secretName", "commonName", "subject", "dnsNames", "privateKey", "duration", "renewBefore", "signer",
             "csr", "csrPolicy", "publishCA", "secretDeletionPolicy"]  # fmt: skip


@FUZZ
@given(spec=st.dictionaries(st.sampled_from(SPEC_KEYS), JSONISH, max_size=8), annotations=JSONISH)
def test_parse_spec_only_a_spec_or_the_errors_the_reconciler_reports(spec: dict, annotations: object) -> None:
    body = {"metadata": {"name": "x", "namespace": "n", "uid": "u", "annotations": annotations}, "spec": spec}
    # Reconciler.reconcile turns exactly these into Ready=False, reason InvalidSpec.
    with contextlib.suppress(ValueError, KeyError, TypeError):
        parse_spec(body)


ISSUER_POLICY_KEYS = ["namespaceSelector", "allowedCommonNames", "allowedDNSNames", "allowedSubject", "maxDuration",
                      "keys", "partnerCSRs"]  # fmt: skip
POLICY_VALUES = st.one_of(JSONISH, st.just({"organization": ["x"]}), st.just({"matchLabels": {"a": "b"}}))


@FUZZ
@given(
    policy=st.dictionaries(st.sampled_from(ISSUER_POLICY_KEYS), POLICY_VALUES, max_size=7),
    spec=st.dictionaries(st.sampled_from(["ca", "rotation"]), JSONISH, max_size=2),
    kind=st.sampled_from(["MtlsIssuer", "ClusterMtlsIssuer"]),
    common_name=st.text(max_size=30),
)
def test_issuer_specs_and_their_policy_only_verdicts(policy: dict, spec: dict, kind: str, common_name: str) -> None:
    """An issuer body that bypassed the schema gives a spec or a ValueError; a usable one judges any request."""
    body = {"metadata": {"name": "i", "namespace": "n"}, "spec": {"ca": {"secretName": "ca"}, **spec, "policy": policy}}
    try:
        issuer = parse_issuer(kind, body)
    except ValueError:
        return
    request = IssuanceRequest("n", common_name, [common_name], {"organization": "x"}, datetime.timedelta(days=1),
                              KeySpec("RSA", 2048))  # fmt: skip
    found = violations(request, issuer.policy, {"a": "b"})
    assert all(v.rule.startswith("policy.") and v.message for v in found)


def test_seeds_are_valid() -> None:
    """The mutations start from inputs that pass: the fuzzers explore the neighbourhood of real objects."""
    for seed in ("der", "p7-pem", "p7-der"):
        assert isinstance(verify_signed_certificate(SEEDS[seed], None, KEY, "client.example.com", NOW), Verified)
    assert isinstance(verify_signed_certificate(SEEDS["chain"], SEEDS["ca"], KEY, "client.example.com", NOW), Verified)
    assert check_partner_csr(SEEDS["csr"].decode(), "client.example.com")[1] is None
    load_ca(SEEDS["ca"], private_key_to_pem(CA[1]))
    assert datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC) > NOW
