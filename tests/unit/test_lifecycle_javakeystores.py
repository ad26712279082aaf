"""JavaKeystores: stores made from the bytes going into service, rebuilt only when their source changed,
removed when they cannot be made (never left behind for an older certificate)."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from harness.pki import issue
from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.names import PKCS12_SOURCE_ANNOTATION
from mtls_operator.api.spec import parse_spec
from mtls_operator.kube.objects import SecretView
from mtls_operator.lifecycle.javakeystores import KEYSTORE_KEY, TRUSTSTORE_KEY, JavaKeystores
from mtls_operator.pki.certificates import to_pem
from mtls_operator.pki.keys import private_key_to_pem


class FakeSecrets:
    """The one call JavaKeystores makes of the Kubernetes layer, in memory."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], SecretView] = {}

    def put(self, name: str, data: dict[str, bytes]) -> None:
        self.secrets[("ns", name)] = SecretView(name, "ns", data, {}, [], "1")

    async def get_secret(self, namespace: str, name: str) -> SecretView | None:
        return self.secrets.get((namespace, name))


def spec(pkcs12_spec: dict | None):
    body = {
        "metadata": {"name": "apata", "namespace": "ns", "uid": "u"},
        "spec": {"secretName": "apata-tls", "commonName": "client.example.com",
                 "subject": {"country": "IE", "organization": "Us"}},
    }  # fmt: skip
    if pkcs12_spec is not None:
        body["spec"]["keystores"] = {"pkcs12": pkcs12_spec}
    return parse_spec(body)


@pytest.fixture
def pem(ca, client_key):
    return {"tls.key": private_key_to_pem(client_key), "tls.crt": to_pem([issue(client_key.public_key(), ca)]),
            "ca.crt": to_pem([ca[0]])}  # fmt: skip


def run(coro):
    return asyncio.run(coro)


def test_stores_are_built_then_left_alone_until_their_source_changes(pem, ca, client_key):
    kube = FakeSecrets()
    kube.put("pw", {"password": b"changeit\n"})
    stores = JavaKeystores(kube, CpuPool(1))  # type: ignore[arg-type]
    wanted = spec({"passwordSecretRef": {"name": "pw"}, "alias": "client"})
    first = run(stores.update_for(wanted, pem, None))
    assert first.problem is None and set(first.data) == {KEYSTORE_KEY, TRUSTSTORE_KEY}
    loaded = pkcs12.load_pkcs12(first.data[KEYSTORE_KEY], b"changeit")  # the trailing newline is not part of it
    assert loaded.cert is not None and loaded.cert.friendly_name == b"client"
    live = SecretView("apata-tls", "ns", {**pem, **first.data}, {}, [], "2",
                      annotations={k: v for k, v in first.annotations.items() if v})  # fmt: skip
    assert not run(stores.update_for(wanted, pem, live))  # current: nothing to write, nothing decrypted
    renewed = {**pem, "tls.crt": to_pem([issue(client_key.public_key(), ca)])}
    rebuilt = run(stores.update_for(wanted, renewed, live))  # a renewal: stores for the new certificate
    assert pkcs12.load_pkcs12(rebuilt.data[KEYSTORE_KEY], b"changeit").cert.certificate.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM) == renewed["tls.crt"]  # fmt: skip
    kube.put("pw", {"password": b"rotated"})
    assert run(stores.update_for(wanted, pem, live)).data  # a new password: new stores


def test_missing_password_removes_stale_stores_and_names_the_secret(pem):
    kube = FakeSecrets()
    stores = JavaKeystores(kube, CpuPool(1))  # type: ignore[arg-type]
    wanted = spec({"passwordSecretRef": {"name": "pw", "key": "storepass"}})
    live = SecretView("apata-tls", "ns", {**pem, KEYSTORE_KEY: b"old"}, {}, [], "2",
                      annotations={PKCS12_SOURCE_ANNOTATION: "x"})  # fmt: skip
    missing = run(stores.update_for(wanted, pem, live))
    assert missing.problem == "Secret pw (spec.keystores.pkcs12.passwordSecretRef) does not exist"
    assert missing.data == {KEYSTORE_KEY: None, TRUSTSTORE_KEY: None}
    kube.put("pw", {"password": b"x"})
    wrong_key = run(stores.update_for(wanted, pem, None))
    assert (
        wrong_key.problem is not None
        and wrong_key.problem.endswith("has no non-empty key 'storepass'")
        and "password" not in wrong_key.problem.split("'storepass'")[1]  # the Secret's other keys are not named
    )
    assert not wrong_key  # nothing there, nothing to remove


def test_turned_off_or_outbound_removes_the_stores(pem):
    stores = JavaKeystores(FakeSecrets(), CpuPool(1))  # type: ignore[arg-type]
    live = SecretView("apata-tls", "ns", {**pem, KEYSTORE_KEY: b"old", TRUSTSTORE_KEY: b"old"}, {}, [], "2")
    off = run(stores.update_for(spec(None), pem, live))
    assert off.data == {KEYSTORE_KEY: None, TRUSTSTORE_KEY: None} and off.problem is None
    assert not run(stores.update_for(spec(None), pem, None))
    outbound = {k: v for k, v in pem.items() if k != "tls.key"}
    assert not run(stores.update_for(spec({"passwordSecretRef": {"name": "pw"}}), outbound, None))


def test_alias_defaults_to_the_certificate_name():
    assert spec({"passwordSecretRef": {"name": "pw"}}).pkcs12.alias == "apata"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="passwordSecretRef.name is required"):
        spec({"passwordSecretRef": {}})
