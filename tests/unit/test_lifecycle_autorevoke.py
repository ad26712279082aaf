"""lifecycle.autorevoke's pure parts: which certificate a renewal superseded, and the revokeOnDelete finalizer."""

from __future__ import annotations

from typing import Any

from mtls_operator.api.names import REVOKE_ON_DELETE_FINALIZER
from mtls_operator.lifecycle.autorevoke import IssuedBy, finalizers_wanted, superseded

ISSUER = {"spec": {"ca": {"secretName": "x"}, "revocation": {"revokeOnDelete": True}}}


def cert(serial: str | None, issuer: str = "MtlsIssuer/team", **meta: Any) -> dict[str, Any]:
    status = {"issuedBy": {"issuer": issuer, "serialNumber": serial}} if serial else {}
    return {"metadata": {"name": "svc", "namespace": "ns", **meta}, "status": status}


def test_a_renewal_by_the_same_issuer_supersedes_the_previous_serial() -> None:
    old = superseded(cert("0A"), cert("0B"))
    assert old is not None and old.serial_hex == "0A" and old.issuer.namespace == "ns"
    assert superseded(cert("0A"), cert("0A")) is None  # nothing changed
    assert superseded(cert(None), cert("0B")) is None  # a first issuance supersedes nothing
    assert superseded(cert("0A", "MtlsIssuer/old"), cert("0B", "MtlsIssuer/new")) is None  # another issuer's CRL


def test_the_finalizer_follows_the_issuers_wish_and_never_blocks_a_deletion_already_under_way() -> None:
    assert finalizers_wanted(cert("0A"), ISSUER) == [REVOKE_ON_DELETE_FINALIZER]
    assert finalizers_wanted(cert(None), ISSUER) is None  # nothing in service: nothing to revoke
    held = cert("0A", finalizers=["other", REVOKE_ON_DELETE_FINALIZER])
    assert finalizers_wanted(held, ISSUER) is None
    assert finalizers_wanted(held, {"spec": {}}) == ["other"]  # the issuer stopped asking: let go
    assert finalizers_wanted(cert("0A", deletionTimestamp="2026-01-01T00:00:00Z"), ISSUER) is None
    assert IssuedBy.of(cert("0A", "Secret/x")) is None
