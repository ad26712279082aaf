"""When an issuer signs its CRL again, and why (pure; a named reason).

A CRL is signed again when what it lists changed, when the CA that signs changed (a rotation: servers look the CRL
up by the CA's key identifier), and at half its lifetime even when nothing changed, so a server that fetches it on
a schedule always holds one well inside its nextUpdate. Its number only grows: the next is one more than the last
published, and never less than the signing time in seconds (so a lost ConfigMap or a new leader never goes back).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import StrEnum

from mtls_operator.pki.crl import CrlInfo


class CrlReason(StrEnum):
    NONE = "NoCRL"
    ENTRIES_CHANGED = "EntriesChanged"
    CA_CHANGED = "CAChanged"
    LIFETIME_CHANGED = "LifetimeChanged"
    REFRESH = "Refresh"


@dataclass(frozen=True)
class CrlDecision:
    due: bool
    reason: CrlReason | None
    refresh_at: datetime.datetime  # when to look again by the clock alone


def crl_due(
    current: CrlInfo | None,
    wanted_serials: frozenset[int],
    ca_key_id: bytes | None,
    lifetime: datetime.timedelta,
    now: datetime.datetime,
) -> CrlDecision:
    if current is None:
        return CrlDecision(True, CrlReason.NONE, now + lifetime / 2)
    refresh_at = current.this_update + lifetime / 2
    reason = None
    if current.serials != wanted_serials:
        reason = CrlReason.ENTRIES_CHANGED
    elif current.issuer_key_id != ca_key_id:
        reason = CrlReason.CA_CHANGED
    elif current.next_update is None or current.next_update - current.this_update != lifetime:
        reason = CrlReason.LIFETIME_CHANGED
    elif now >= refresh_at:
        reason = CrlReason.REFRESH
    if reason is not None:
        return CrlDecision(True, reason, now + lifetime / 2)
    return CrlDecision(False, None, refresh_at)


def next_number(current: CrlInfo | None, now: datetime.datetime) -> int:
    return max((current.number + 1) if current else 1, int(now.timestamp()))
