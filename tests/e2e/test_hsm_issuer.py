"""An issuer whose CA key lives in a PKCS#11 token (SoftHSM2), on the real apiserver with the operator running:
leaves and partners' CSRs signed through the token verify with openssl; every way the token can fail is named on
the issuer (HSMUnavailable, PINRefused, TokenNotAllowed) with nothing signed, and the issuer recovers by itself when
the cause goes away. The session operator gives its tokens to the namespaces of harness.softhsm.TOKEN_NAMESPACES
only: each test here takes one (the `namespace` fixture below); any other namespace is refused them."""

from __future__ import annotations

import base64
import itertools
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster import (
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    wait_for,
    wait_ready,
    wait_reason,
)
from harness.softhsm import ABSENT_MODULE, PIN, PROBE_SECONDS, TOKEN_NAMESPACES, SessionHSM

DAY = 2160
_token_namespaces = itertools.count()


@pytest.fixture
def namespace(kubectl: Kubectl) -> str:
    """A namespace the session operator gives its tokens to (a fresh one per test)."""
    name = TOKEN_NAMESPACES[next(_token_namespaces)]
    kubectl.run("create", "namespace", name)
    return name


def token_issuer(
    name: str,
    module: str,
    *,
    token: str = "e2e-rsa",
    key: str = "rsa-ca",
    pin_secret: str = "hsm-pin",
    certificate: dict[str, str] | None = None,
) -> str:
    body = {
        "apiVersion": "mtls.dev/v1alpha1",
        "kind": "MtlsIssuer",
        "metadata": {"name": name},
        "spec": {
            "ca": {
                "pkcs11": {
                    "module": module,
                    "tokenLabel": token,
                    "keyLabel": key,
                    "pinSecretRef": {"name": pin_secret},
                },
                "certificate": certificate or {"configMapName": "hsm-ca"},
            },
            "policy": {"partnerCSRs": "Allow", "keys": {"allowedAlgorithms": ["RSA", "ECDSA"]}},
        },
    }
    return yaml.safe_dump(body)


def issuer(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return kubectl.get("mtlsissuer", name, namespace) or {}


def wait_issuer(kubectl: Kubectl, namespace: str, name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        ready = condition(obj := issuer(kubectl, namespace, name))
        return obj if ready.get("status") == status and reason in (None, ready.get("reason")) else None

    return wait_for(reached, timeout=30, what=f"MtlsIssuer {name} Ready={status} {reason or ''}")


def put_pin(kubectl: Kubectl, namespace: str, pin: str, name: str = "hsm-pin") -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"pin": base64.b64encode(f"{pin}\n".encode()).decode()},  # as `echo $PIN > pin` leaves it
    }
    kubectl.apply(yaml.safe_dump(secret), namespace)


def put_ca_configmap(kubectl: Kubectl, namespace: str, softhsm: SessionHSM, ca: str = "rsa-ca") -> None:
    kubectl.run(
        "create", "configmap", "hsm-ca", "-n", namespace, f"--from-file=ca.crt={softhsm.certificate(ca)}",
    )  # fmt: skip


def ready_token_issuer(kubectl: Kubectl, namespace: str, softhsm: SessionHSM, name: str) -> dict[str, Any]:
    """The PIN, the CA certificate and an issuer with its key in e2e-rsa, once Ready."""
    put_pin(kubectl, namespace, PIN)
    put_ca_configmap(kubectl, namespace, softhsm)
    kubectl.apply(token_issuer(name, softhsm.module), namespace)
    return wait_issuer(kubectl, namespace, name, "True")


def issued(name: str, **spec: Any) -> dict[str, Any]:
    return {"duration": f"{DAY}h", "signer": {"issuerRef": {"kind": "MtlsIssuer", "name": name}}, **spec}


def openssl_verify(kubectl: Kubectl, namespace: str, secret: str, ca_file: Path, tmp_path: Path) -> str:
    data = kubectl.secret_data(secret, namespace)
    assert data is not None, f"{secret} was not written"
    leaf = tmp_path / f"{secret}.crt"
    leaf.write_bytes(data["tls.crt"])
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_file), "-purpose", "sslclient", str(leaf)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def no_pin_anywhere(kubectl: Kubectl, namespace: str, operator: OperatorProcess) -> None:
    events = kubectl.run("get", "events", "-n", namespace, "-o", "yaml").stdout
    issuers = kubectl.run("get", "mtlsissuers", "-n", namespace, "-o", "yaml").stdout
    for where, text in (("events", events), ("issuer status", issuers), ("operator log", operator.logs())):
        assert PIN not in text, f"the PIN appears in the {where}"


def test_a_ca_key_in_a_token_signs_leaves_and_partner_csrs_that_openssl_verifies(
    kubectl: Kubectl, operator: OperatorProcess, softhsm: SessionHSM, namespace: str, tmp_path: Path
) -> None:
    ready = condition(ready_token_issuer(kubectl, namespace, softhsm, "hsm"))
    assert "PKCS#11 key label 'rsa-ca' on token label 'e2e-rsa'" in ready["message"], ready
    assert "PKCS#11" in issuer(kubectl, namespace, "hsm")["status"]["ca"]["key"]

    kubectl.apply(certificate_manifest("leaf", spec=issued("hsm")), namespace)
    wait_ready(kubectl, namespace, "leaf")
    assert ": OK" in openssl_verify(kubectl, namespace, "leaf-tls", softhsm.certificate("rsa-ca"), tmp_path)

    partner = Partner(tmp_path / "partner")
    csr = partner.own_csr("/C=IE/O=Partner/CN=partner.example.com").decode()
    spec = issued("hsm", csr=csr)
    kubectl.apply(certificate_manifest("outbound", common_name="partner.example.com", spec=spec), namespace)
    wait_ready(kubectl, namespace, "outbound")
    data = kubectl.secret_data("outbound-tls", namespace)
    assert data is not None and "tls.key" not in data  # the partner owns its key
    openssl_verify(kubectl, namespace, "outbound-tls", softhsm.certificate("rsa-ca"), tmp_path)

    # ECDSA, with the CA certificate in a Secret this time (DER, as a Windows CA exports it).
    der = tmp_path / "ec-ca.der"
    subprocess.run(
        ["openssl", "x509", "-in", str(softhsm.certificate("ec-ca")), "-outform", "DER", "-out", str(der)], check=True
    )
    kubectl.run("create", "secret", "generic", "ec-ca-cert", "-n", namespace, f"--from-file=ca.crt={der}")
    certificate = {"secretName": "ec-ca-cert"}
    kubectl.apply(
        token_issuer("hsm-ec", softhsm.module, token="e2e-ec", key="ec-ca", certificate=certificate), namespace
    )
    wait_issuer(kubectl, namespace, "hsm-ec", "True")
    kubectl.apply(certificate_manifest("ec-leaf", spec=issued("hsm-ec")), namespace)
    wait_ready(kubectl, namespace, "ec-leaf")
    openssl_verify(kubectl, namespace, "ec-leaf-tls", softhsm.certificate("ec-ca"), tmp_path)
    no_pin_anywhere(kubectl, namespace, operator)


def test_each_token_problem_is_named_nothing_is_signed_and_the_fix_is_picked_up(
    kubectl: Kubectl, operator: OperatorProcess, softhsm: SessionHSM, namespace: str, tmp_path: Path
) -> None:
    put_ca_configmap(kubectl, namespace, softhsm)
    other = Partner(tmp_path / "other", name="Another CA")  # an RSA CA whose key is not in the token
    kubectl.run("create", "configmap", "foreign-ca", "-n", namespace, f"--from-file=ca.crt={other.ca_crt}")
    leaky = tmp_path / "leaky.pem"
    leaky.write_bytes(softhsm.certificate("rsa-ca").read_bytes() + other.ca_key.read_bytes())
    kubectl.run("create", "configmap", "leaky-ca", "-n", namespace, f"--from-file=ca.crt={leaky}")
    cases = {
        # name: (issuer manifest, reason, words of the message)
        "no-pin": (token_issuer("no-pin", softhsm.module, pin_secret="absent"), "PINNotFound", "absent does not exist"),
        # The token is logged in with the right PIN (by an issuer of an earlier test): another is not presented.
        "wrong-pin": (token_issuer("wrong-pin", softhsm.module), "PINRefused", "the PIN differs from the one"),
        "no-token": (token_issuer("no-token", softhsm.module, token="absent"), "HSMUnavailable", "no token with label"),
        "no-key": (
            token_issuer("no-key", softhsm.module, key="absent", pin_secret="good"),
            "HSMUnavailable",
            "no private key with label",
        ),
        "not-allowed": (token_issuer("not-allowed", "/usr/lib/libc.so.6"), "HSMUnavailable", "does not load"),
        "absent-module": (token_issuer("absent-module", ABSENT_MODULE), "HSMUnavailable", "cannot be loaded"),
        "foreign-ca": (
            token_issuer("foreign-ca", softhsm.module, pin_secret="good", certificate={"configMapName": "foreign-ca"}),
            "HSMUnavailable",
            "does not belong to the CA certificate",
        ),
        "leaky-ca": (
            token_issuer("leaky-ca", softhsm.module, pin_secret="good", certificate={"configMapName": "leaky-ca"}),
            "CAInvalid",
            "holds a private key as well: remove it",
        ),
    }
    put_pin(kubectl, namespace, "not-the-pin")
    put_pin(kubectl, namespace, PIN, name="good")
    for manifest, _, _ in cases.values():
        kubectl.apply(manifest, namespace)
    for name, (_, reason, words) in cases.items():
        message = condition(wait_issuer(kubectl, namespace, name, "False", reason))["message"]
        assert words in message, (name, message)
        assert "not-the-pin" not in message
    warnings = {e["reason"] for e in kubectl.events(namespace) if e.get("type") == "Warning"}
    assert {"HSMUnavailable", "PINNotFound", "CAInvalid"} <= warnings, warnings
    key_lines = other.ca_key.read_text().splitlines()[1:-1]
    issuers = kubectl.run("get", "mtlsissuers", "-n", namespace, "-o", "yaml").stdout
    assert not any(line in issuers for line in key_lines)  # the key pasted by mistake is named, never copied

    kubectl.apply(certificate_manifest("waits", spec=issued("wrong-pin")), namespace)
    message = condition(wait_reason(kubectl, namespace, "waits", "IssuerNotReady"))["message"]
    assert "the PIN differs from the one" in message
    assert kubectl.secret_data("waits-tls", namespace) is None  # nothing signed, nothing written

    # The fixes: the right PIN in the Secret (its change reaches the issuer at once), the right token label.
    put_pin(kubectl, namespace, PIN)
    wait_issuer(kubectl, namespace, "wrong-pin", "True")
    wait_ready(kubectl, namespace, "waits")
    fixed = yaml.safe_load(token_issuer("no-token", softhsm.module))
    kubectl.apply(yaml.safe_dump(fixed), namespace)
    wait_issuer(kubectl, namespace, "no-token", "True")
    put_pin(kubectl, namespace, PIN, name="absent")
    wait_issuer(kubectl, namespace, "no-pin", "True")


def test_a_token_that_goes_away_turns_the_issuer_not_ready_and_back_by_itself(
    kubectl: Kubectl, operator: OperatorProcess, softhsm: SessionHSM, namespace: str, tmp_path: Path
) -> None:
    ready_token_issuer(kubectl, namespace, softhsm, "flaky")
    softhsm.hsm.take_away()
    try:
        message = condition(wait_issuer(kubectl, namespace, "flaky", "False", "HSMUnavailable"))["message"]
        assert "e2e-rsa" in message, message
        kubectl.apply(certificate_manifest("during", spec=issued("flaky")), namespace)
        wait_reason(kubectl, namespace, "during", "IssuerNotReady")
        assert kubectl.secret_data("during-tls", namespace) is None
    finally:
        softhsm.hsm.bring_back()
    wait_issuer(kubectl, namespace, "flaky", "True")  # no edit, no restart: the probe finds it back
    wait_ready(kubectl, namespace, "during")
    openssl_verify(kubectl, namespace, "during-tls", softhsm.certificate("rsa-ca"), tmp_path)


def test_the_schema_refuses_an_issuer_that_names_its_ca_twice_or_half(
    kubectl: Kubectl, softhsm: SessionHSM, namespace: str
) -> None:
    token = {"module": softhsm.module, "tokenLabel": "t", "keyLabel": "k", "pinSecretRef": {"name": "p"}}
    cases = [
        ({"secretName": "ca", "pkcs11": token, "certificate": {"configMapName": "c"}}, "set exactly one of secretName"),
        ({"pkcs11": token}, "pkcs11 needs certificate"),
        ({"secretName": "ca", "certificate": {"configMapName": "c"}}, "certificate applies only with pkcs11"),
        (
            {"pkcs11": {**token, "tokenSerial": "1"}, "certificate": {"configMapName": "c"}},
            "tokenLabel and tokenSerial",
        ),
        ({"pkcs11": {**token, "keyId": "zz"}, "certificate": {"configMapName": "c"}}, "keyId"),
        ({"pkcs11": {**token, "module": "libsofthsm2.so"}, "certificate": {"secretName": "c"}}, "absolute path"),
    ]
    for ca, words in cases:
        body = {
            "apiVersion": "mtls.dev/v1alpha1",
            "kind": "MtlsIssuer",
            "metadata": {"name": f"bad-{uuid.uuid4().hex[:6]}"},
        }
        done = kubectl.apply(yaml.safe_dump({**body, "spec": {"ca": ca}}), namespace, check=False)
        assert done.returncode != 0 and words in done.stderr, (ca, done.stderr)


def test_a_token_held_ca_key_signs_the_issuers_crl(
    kubectl: Kubectl, operator: OperatorProcess, softhsm: SessionHSM, namespace: str, tmp_path: Path
) -> None:
    """The CRL is signed where the key is: in the token (no key ever leaves it), and openssl verifies it with the
    CA certificate; a revocation of what the token signed is in the next one."""
    ready_token_issuer(kubectl, namespace, softhsm, "hsm-crl")
    kubectl.apply(certificate_manifest("leaf", spec=issued("hsm-crl")), namespace)
    serial = wait_ready(kubectl, namespace, "leaf")["status"]["issuedBy"]["serialNumber"]
    kubectl.plugin("revoke", "leaf", "-n", namespace, "--reason", "superseded")

    def listed() -> str | None:
        data = (kubectl.get("configmap", "mtlsissuer-hsm-crl-crl", namespace) or {}).get("data") or {}
        return data["ca.crl"] if serial in subprocess.run(
            ["openssl", "crl", "-noout", "-text"], input=data.get("ca.crl", ""), capture_output=True, text=True
        ).stdout else None  # fmt: skip

    crl = tmp_path / "ca.crl"
    crl.write_text(wait_for(listed, timeout=30, what="the token-signed CRL lists the revoked serial"))
    checked = subprocess.run(
        ["openssl", "crl", "-in", str(crl), "-CAfile", str(softhsm.certificate("rsa-ca")), "-noout"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr, checked
    status = issuer(kubectl, namespace, "hsm-crl")["status"]
    assert status["crl"]["revokedCertificates"] == 1
    no_pin_anywhere(kubectl, namespace, operator)


def test_a_pin_the_token_refused_is_not_presented_again_after_a_restart(
    kubectl: Kubectl, operator: OperatorProcess, softhsm: SessionHSM, namespace: str
) -> None:
    """A token counts refused PINs and locks after a few: the refusal is kept in the issuer's status
    (status.pinRefused: the PIN Secret's version, never the PIN), so the next process does not present it again."""
    kubectl.run("create", "configmap", "pin-ca", "-n", namespace, f"--from-file=ca.crt={softhsm.certificate('pin-ca')}")
    put_pin(kubectl, namespace, "not-the-pin")
    issuer_body = token_issuer("guarded", softhsm.module, token="e2e-pin", key="pin-ca",
                               certificate={"configMapName": "pin-ca"})  # fmt: skip
    kubectl.apply(issuer_body, namespace)
    refused = wait_issuer(kubectl, namespace, "guarded", "False", "PINRefused")
    assert "the token refused the PIN" in condition(refused)["message"]
    version = (kubectl.get("secret", "hsm-pin", namespace) or {})["metadata"]["resourceVersion"]
    assert refused["status"]["pinRefused"] == {"secretName": "hsm-pin", "resourceVersion": version}
    before = condition(refused)
    operator.stop()
    operator.start()
    # The new process reads the record (tests/unit/test_lifecycle_signers_issuerca.py shows it then makes no token
    # call): re-probed every 2 s here, the issuer stays refused, its condition unchanged, the record kept.
    time.sleep(3 * PROBE_SECONDS)
    after = issuer(kubectl, namespace, "guarded")
    assert condition(after) == before
    assert after["status"]["pinRefused"] == {"secretName": "hsm-pin", "resourceVersion": version}
    # The PIN Secret changes: presented once, and the right one is taken.
    put_pin(kubectl, namespace, PIN)
    ready = wait_issuer(kubectl, namespace, "guarded", "True")
    assert "pinRefused" not in ready["status"]
    no_pin_anywhere(kubectl, namespace, operator)


def test_a_tenant_cannot_reach_a_token_not_given_to_its_namespace(
    kubectl: Kubectl, operator: OperatorProcess, softhsm: SessionHSM, namespace: str
) -> None:
    """The token's owner keeps signing while another namespace names its token, with its PIN or a guess: refused
    before any PIN reaches the token (a guess would otherwise count towards locking the owner's PIN)."""
    ready_token_issuer(kubectl, namespace, softhsm, "owner")
    tenant = f"tenant-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", tenant)
    put_ca_configmap(kubectl, tenant, softhsm)
    put_pin(kubectl, tenant, PIN)  # even the right PIN, leaked to the tenant
    put_pin(kubectl, tenant, "a-guess", name="guess")
    kubectl.apply(token_issuer("borrow", softhsm.module), tenant)
    kubectl.apply(token_issuer("guess", softhsm.module, pin_secret="guess"), tenant)
    for name in ("borrow", "guess"):
        message = condition(wait_issuer(kubectl, tenant, name, "False", "TokenNotAllowed"))["message"]
        assert f"token 'e2e-rsa' is not given to namespace {tenant}" in message, message
    assert "TokenNotAllowed" in {e["reason"] for e in kubectl.events(tenant) if e.get("type") == "Warning"}
    kubectl.apply(certificate_manifest("stolen", spec=issued("borrow")), tenant)
    wait_reason(kubectl, tenant, "stolen", "IssuerNotReady")
    assert kubectl.secret_data("stolen-tls", tenant) is None
    # The owner is untouched: still Ready, still signing.
    kubectl.apply(certificate_manifest("after", spec=issued("owner")), namespace)
    wait_ready(kubectl, namespace, "after")
    assert condition(issuer(kubectl, namespace, "owner"))["status"] == "True"
    kubectl.run("delete", "namespace", tenant, "--wait=false")
