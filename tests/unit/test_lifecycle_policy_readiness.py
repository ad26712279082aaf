from __future__ import annotations

import datetime

from mtls_operator.lifecycle.policy.readiness import Condition, merge_conditions

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(hours=1)


def test_transition_time_moves_only_when_status_changes():
    first = merge_conditions([], [Condition("Ready", "False", "AwaitingSignature", "m")], 1, T0)
    assert first[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    same = merge_conditions(first, [Condition("Ready", "False", "KeyMismatch", "other")], 2, T1)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["reason"] == "KeyMismatch" and same[0]["observedGeneration"] == 2
    flipped = merge_conditions(same, [Condition("Ready", "True", "Ready", "ok")], 2, T1)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T01:00:00Z"
