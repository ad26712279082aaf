"""api.revocation: the MtlsRevocation spec and the operator's record on it."""

from __future__ import annotations

import pytest

from mtls_operator.api.refs import IssuerKey
from mtls_operator.api.revocation import parse_revocation, resolution_annotations, resolved_of


def body(**spec: object) -> dict:
    return {"metadata": {"name": "r", "namespace": "team", "uid": "u", "creationTimestamp": "2026-06-01T00:00:00Z"},
            "spec": {"reason": "keyCompromise", "requestedBy": "alice", **spec}}  # fmt: skip


def test_by_certificate_name_or_by_serial_of_an_issuer() -> None:
    by_name = parse_revocation(body(certificateName="svc"))
    assert by_name.certificate_name == "svc" and by_name.serial_number is None and by_name.requested_by == "alice"
    by_serial = parse_revocation(body(serialNumber="0a:ff", issuerRef={"kind": "ClusterMtlsIssuer", "name": "p"}))
    assert by_serial.serial_number == 0x0AFF and by_serial.issuer_ref is not None
    assert by_serial.issuer_ref.key("team") == IssuerKey("ClusterMtlsIssuer", "", "p")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"certificateName": "a", "serialNumber": "01"}, "exactly one of certificateName and serialNumber"),
        ({}, "exactly one of certificateName and serialNumber"),
        ({"serialNumber": "01"}, "needs spec.issuerRef"),
        ({"certificateName": "a", "reason": "certificateHold"}, "spec.reason 'certificateHold' is not one of"),
    ],
)
def test_what_the_schema_would_refuse_is_named(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_revocation(body(**spec))


def test_the_record_round_trips_and_a_bad_one_is_no_record() -> None:
    recorded = body(certificateName="svc")
    recorded["metadata"]["annotations"] = resolution_annotations(IssuerKey("MtlsIssuer", "team", "ca"), "0AFF")
    resolved = resolved_of(recorded)
    assert resolved is not None and resolved.serial_number == 0x0AFF
    assert resolved.issuer == IssuerKey("MtlsIssuer", "team", "ca")
    recorded["metadata"]["annotations"]["mtls.dev/revoked-issuer"] = "Secret/x"
    assert resolved_of(recorded) is None
