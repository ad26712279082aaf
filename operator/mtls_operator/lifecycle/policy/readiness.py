"""Phase and conditions from what the reconcile found (readiness)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from mtls_operator.api.status import Phase, format_time

PENDING, AWAITING_SIGNATURE, READY = Phase.PENDING, Phase.AWAITING_SIGNATURE, Phase.READY
RENEWING, EXPIRED, FAILED = Phase.RENEWING, Phase.EXPIRED, Phase.FAILED


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    existing: list[dict[str, Any]], wanted: list[Condition], generation: int, now: datetime.datetime
) -> list[dict[str, Any]]:
    """metav1.Condition semantics: lastTransitionTime only moves when the status changes."""
    by_type = {c.get("type"): c for c in existing}
    merged = []
    for cond in wanted:
        old = by_type.get(cond.type)
        transition = (
            old["lastTransitionTime"]
            if old and old.get("status") == cond.status and old.get("lastTransitionTime")
            else format_time(now)
        )
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": transition,
                "observedGeneration": generation,
            }
        )
    return merged
