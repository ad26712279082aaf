"""runtime.revocationbook: resolved revocations indexed by issuer and serial; the earliest of several wins."""

from __future__ import annotations

from typing import Any

from mtls_operator.api.names import REVOKED_ISSUER_ANNOTATION, REVOKED_SERIAL_ANNOTATION
from mtls_operator.api.refs import IssuerKey
from mtls_operator.runtime.revocationbook import RevocationBook

TEAM = IssuerKey("MtlsIssuer", "team", "ca")


def revocation(name: str, serial: str | None, reason: str = "superseded", created: str = "2026-06-01T00:00:00Z",
               namespace: str = "team") -> dict[str, Any]:  # fmt: skip
    annotations = {REVOKED_SERIAL_ANNOTATION: serial, REVOKED_ISSUER_ANNOTATION: "MtlsIssuer/ca"} if serial else {}
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created, "annotations": annotations},
        "spec": {"certificateName": "svc", "reason": reason, "requestedBy": "alice"},
    }


def test_only_resolved_revocations_count() -> None:
    book = RevocationBook()
    assert book.store(revocation("r", None)) == (None, False)
    assert book.store(revocation("r", "0A")) == (TEAM, True)
    assert book.store(revocation("r", "0A")) == (TEAM, False)  # the same again: nothing changed
    assert book.revoked(TEAM, 0x0A) is not None and book.revoked(TEAM, 0x0B) is None
    assert [e.serial_number for e in book.entries(TEAM)] == [0x0A]
    assert book.revocations_of(TEAM) == [("team", "r")]


def test_two_revocations_of_one_serial_keep_the_earliest_and_deleting_one_keeps_the_other() -> None:
    book = RevocationBook()
    book.store(revocation("late", "0A", "superseded", "2026-06-02T00:00:00Z"))
    book.store(revocation("early", "0A", "keyCompromise", "2026-06-01T00:00:00Z"))
    assert book.revoked(TEAM, 0x0A).reason == "keyCompromise"  # type: ignore[union-attr]
    assert len(book.entries(TEAM)) == 1
    assert book.forget(revocation("early", "0A")) == TEAM
    assert book.revoked(TEAM, 0x0A).reason == "superseded"  # type: ignore[union-attr]
    book.forget(revocation("late", "0A"))
    assert book.entries(TEAM) == [] and book.counts() == {}


def test_an_unreadable_record_is_not_a_revocation() -> None:
    book = RevocationBook()
    bad = revocation("r", "not-hex")
    assert book.store(bad) == (None, False)
    bad_reason = revocation("r2", "0B", reason="certificateHold")
    assert book.store(bad_reason) == (None, False)
