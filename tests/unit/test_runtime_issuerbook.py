"""runtime.issuerbook: who uses which issuer, which Secret is whose CA, and which changes matter to certificates."""

from __future__ import annotations

from mtls_operator.api.refs import IssuerKey
from mtls_operator.runtime.issuerbook import IssuerBook

CLUSTER = IssuerKey("ClusterMtlsIssuer", "", "platform")


def issuer(generation: int = 1, status: dict | None = None, secret: str = "platform-ca") -> dict:
    return {"metadata": {"name": "platform", "generation": generation}, "spec": {"ca": {"secretName": secret}},
            "status": status or {}}  # fmt: skip


def certificate(kind: str | None, name: str = "platform") -> dict:
    signer = {"issuerRef": {"kind": kind, "name": name}} if kind else {"manual": {}}
    return {"metadata": {"name": "c", "namespace": "team"}, "spec": {"signer": signer}}


def test_users_follow_the_reference() -> None:
    book = IssuerBook("mtls-system")
    assert book.set_certificate(("team", "c"), certificate("ClusterMtlsIssuer")) == (None, CLUSTER)
    assert book.set_certificate(("team", "c"), certificate("ClusterMtlsIssuer")) == ()  # unchanged: nothing to recount
    assert book.users(CLUSTER) == {("team", "c")} and book.users_in("team") == {("team", "c")}
    team = IssuerKey("MtlsIssuer", "team", "platform")
    assert book.set_certificate(("team", "c"), certificate("MtlsIssuer")) == (CLUSTER, team)
    assert book.users(CLUSTER) == set()
    assert book.set_certificate(("team", "c"), None) == (team, None)
    assert book.issuer_of(("team", "c")) is None


def test_the_ca_secret_of_a_cluster_issuer_is_in_the_configured_namespace() -> None:
    book = IssuerBook("mtls-system")
    book.store_issuer("ClusterMtlsIssuer", issuer())
    assert book.readers_of("mtls-system", "platform-ca") == {CLUSTER}
    book.store_issuer("ClusterMtlsIssuer", issuer(secret="other-ca"))
    assert book.readers_of("mtls-system", "platform-ca") == set()
    assert book.readers_of("mtls-system", "other-ca") == {CLUSTER}
    book.forget_issuer("ClusterMtlsIssuer", issuer())
    assert book.readers_of("mtls-system", "other-ca") == set() and book.find(CLUSTER) is None


def test_only_what_certificates_read_counts_as_a_change() -> None:
    book = IssuerBook("mtls-system")
    assert book.store_issuer("ClusterMtlsIssuer", issuer())[1]  # new
    ready = {"conditions": [{"type": "Ready", "status": "True"}], "ca": {"fingerprint": "AA"}, "certificates": 1}
    assert book.store_issuer("ClusterMtlsIssuer", issuer(status=ready))[1]
    recount = {**ready, "certificates": 2, "certificatesOnPreviousCA": 1}
    assert not book.store_issuer("ClusterMtlsIssuer", issuer(status=recount))[1]  # counts: no re-check of users
    assert book.store_issuer("ClusterMtlsIssuer", issuer(2, recount))[1]  # the spec (policy) changed
    rotated = {**recount, "ca": {"fingerprint": "BB"}, "rotation": {"startedTime": "2026-12-01T00:00:00Z"}}
    assert book.store_issuer("ClusterMtlsIssuer", issuer(2, rotated))[1]


def test_namespace_label_changes() -> None:
    book = IssuerBook("mtls-system")
    assert book.store_namespace({"metadata": {"name": "team", "labels": {"a": "1"}}})  # first sight counts
    assert not book.store_namespace({"metadata": {"name": "team", "labels": {"a": "1"}}})
    assert book.store_namespace({"metadata": {"name": "team", "labels": {"a": "2"}}})
    assert book.namespace_labels("team") == {"a": "2"}
    book.forget_namespace("team")
    assert book.namespace_labels("team") is None
