from __future__ import annotations

from mtls_operator.runtime.secretindex import SecretIndex

A, B = ("ns", "a"), ("ns", "b")


def test_a_secret_wakes_the_certificates_that_reference_it() -> None:
    index = SecretIndex()
    index.update(A, {"a-tls", "a-tls-next", "a-signed", "ca"})
    index.update(B, {"b-tls", "ca"})
    assert index.holders("ns", "a-tls") == (A,)
    assert sorted(index.holders("ns", "ca")) == [A, B]
    assert index.holders("ns", "unrelated") == ()
    assert index.holders("other", "ca") == ()  # a namespace's Secrets only


def test_changed_references_move_and_forget_removes_every_entry() -> None:
    index = SecretIndex()
    index.update(A, {"a-tls", "ca"})
    index.update(B, {"b-tls", "ca"})
    index.update(A, {"a-tls", "other-ca"})  # spec.signer.ca.secretName changed
    assert index.holders("ns", "ca") == (B,)
    assert index.holders("ns", "other-ca") == (A,)
    index.update(A, {"a-tls", "other-ca"})  # unchanged: nothing moves
    assert index.holders("ns", "a-tls") == (A,)
    index.forget(A)
    index.forget(B)
    assert len(index) == 0
    index.forget(A)  # twice: harmless


def test_a_shared_secret_survives_one_holder_leaving() -> None:
    index = SecretIndex()
    for key in (A, B):
        index.update(key, {"ca"})
    index.forget(A)
    assert index.holders("ns", "ca") == (B,)
    index.update(A, {"ca"})
    index.update(A, set())
    assert index.holders("ns", "ca") == (B,) and len(index) == 1
