from __future__ import annotations

from mtls_operator.lifecycle.policy.keymanager import LIVE, NEXT, KeyDecision, decide_pending_key
from mtls_operator.pki.keys import KeySpec

RSA2048, RSA4096 = KeySpec("RSA", 2048), KeySpec("RSA", 4096)


def decide(**kw):
    args = {
        "has_certificate": False, "rotation_policy": "Always", "wanted": RSA2048, "live_key": None,
        "live_key_unreadable": False, "next_key": None, "next_key_unreadable": False,
    }  # fmt: skip
    args.update(kw)
    return decide_pending_key(**args)


def test_first_issuance_generates_into_live_secret_once():
    assert decide() == KeyDecision(LIVE, True, "Missing")
    assert decide(live_key=RSA2048) == KeyDecision(LIVE, False, "Reuse")


def test_stored_key_is_reused_whatever_the_status_says():
    # The decision has no input from status at all: losing status cannot cause a new key.
    assert decide(live_key=RSA2048).generate is False


def test_deliberate_spec_change_regenerates():
    assert decide(live_key=RSA2048, wanted=RSA4096) == KeyDecision(LIVE, True, "KeySpecChanged")


def test_unreadable_key_is_replaced():
    assert decide(live_key_unreadable=True) == KeyDecision(LIVE, True, "Unreadable")


def test_renewal_uses_separate_next_secret():
    assert decide(has_certificate=True, live_key=RSA2048) == KeyDecision(NEXT, True, "Missing")
    assert decide(has_certificate=True, live_key=RSA2048, next_key=RSA2048) == KeyDecision(NEXT, False, "Reuse")


def test_rotation_never_reuses_live_key():
    assert decide(has_certificate=True, rotation_policy="Never", live_key=RSA2048) == KeyDecision(LIVE, False, "Reuse")
    # ...unless the spec asks for another key size: then a new key is unavoidable.
    got = decide(has_certificate=True, rotation_policy="Never", live_key=RSA2048, wanted=RSA4096)
    assert got == KeyDecision(NEXT, True, "Missing")
