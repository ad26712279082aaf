"""Which private key a pending request uses, where it is stored, and whether it must be generated (key manager).

The rule that protects partners' hand-signed work: a stored key is reused whenever it still fits the spec.
A key is generated only when none is stored, the stored one is unreadable, or spec.privateKey asks for a
different algorithm/size; the key in service is never overwritten by a renewal (it goes to a separate Secret).
"""

from __future__ import annotations

from dataclasses import dataclass

from mtls_operator.pki.keys import KeySpec

LIVE = "live"  # the key lives in spec.secretName (first issuance, or rotationPolicy Never)
NEXT = "next"  # the key waits in <secretName>-next until its certificate arrives (renewal with rotation)


@dataclass(frozen=True)
class KeyDecision:
    location: str  # LIVE | NEXT
    generate: bool
    reason: str  # Reuse | Missing | Unreadable | KeySpecChanged


def decide_pending_key(
    *,
    has_certificate: bool,
    rotation_policy: str,
    wanted: KeySpec,
    live_key: KeySpec | None,
    live_key_unreadable: bool,
    next_key: KeySpec | None,
    next_key_unreadable: bool,
) -> KeyDecision:
    """`*_key` is the spec of the stored key (None when absent); `*_unreadable` when bytes exist but do not parse."""
    if not has_certificate:
        return _decide(LIVE, wanted, live_key, live_key_unreadable)
    if rotation_policy == "Never" and live_key == wanted:
        return KeyDecision(LIVE, False, "Reuse")
    return _decide(NEXT, wanted, next_key, next_key_unreadable)


def _decide(location: str, wanted: KeySpec, stored: KeySpec | None, unreadable: bool) -> KeyDecision:
    if unreadable:
        return KeyDecision(location, True, "Unreadable")
    if stored is None:
        return KeyDecision(location, True, "Missing")
    if stored != wanted:
        return KeyDecision(location, True, "KeySpecChanged")
    return KeyDecision(location, False, "Reuse")
