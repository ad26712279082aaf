"""The MtlsCertificate status vocabulary: phases, condition types, the one time format, the Ready condition.

Kubernetes writes times as RFC 3339 in UTC with a `Z` (metav1.Time); everything we write, read back, print or meter
goes through `format_time` and `parse_time` here.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime (Leases; the renew annotation may carry it)


class Phase(StrEnum):
    PENDING = "Pending"
    AWAITING_SIGNATURE = "AwaitingSignature"
    READY = "Ready"
    RENEWING = "Renewing"
    EXPIRED = "Expired"
    FAILED = "Failed"


class ConditionType(StrEnum):
    READY = "Ready"
    RENEWAL_DUE = "RenewalDue"
    CHAIN_VALID = "ChainValid"  # the CAs the certificate in service depends on stay valid as long as it does
    PUBLISHED = "Published"  # an MtlsRevocation: the issuer's CRL lists its serial
    CRL_PUBLISHED = "CRLPublished"  # an issuer: its CRL is signed and current


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(TIME_FORMAT) if moment.tzinfo else moment.strftime(TIME_FORMAT)


def parse_time(text: str | None) -> datetime.datetime | None:
    """A metav1.Time or MicroTime as an aware UTC datetime; None for None, an empty or an unreadable value."""
    if not text:
        return None
    for layout in (TIME_FORMAT, MICRO_TIME_FORMAT):
        try:
            return datetime.datetime.strptime(text, layout).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
    return None


def find_condition(status: Mapping[str, Any] | None, kind: str = ConditionType.READY) -> dict[str, Any]:
    """The condition of that type in a status ({} when there is none)."""
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}
