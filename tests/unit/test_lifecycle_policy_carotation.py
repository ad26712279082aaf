"""policy.carotation: each certificate's turn inside the spread, fixed by its UID; nothing before the rotation is
recorded; a certificate from elsewhere moves at once."""

from __future__ import annotations

import datetime

from mtls_operator.lifecycle.policy.carotation import UNRECORDED_RETRY, ca_move, reissue_time

START = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
SPREAD = datetime.timedelta(hours=24)


def test_turns_are_spread_over_the_window_and_stable() -> None:
    times = [reissue_time(f"uid-{i}", START, SPREAD) for i in range(1000)]
    assert all(START <= t < START + SPREAD for t in times)
    assert times == [reissue_time(f"uid-{i}", START, SPREAD) for i in range(1000)]  # a restart keeps every turn
    hours = {int((t - START).total_seconds() // 3600) for t in times}
    assert len(hours) == 24  # every hour of the window gets some, not one burst


def test_due_only_at_its_turn() -> None:
    at = reissue_time("uid-1", START, SPREAD)
    early = ca_move("uid-1", "NEW", "NEW", START, SPREAD, at - datetime.timedelta(seconds=1))
    assert not early.due and early.at == at
    assert ca_move("uid-1", "NEW", "NEW", START, SPREAD, at).due


def test_nothing_moves_before_the_issuer_recorded_the_new_ca() -> None:
    now = START + SPREAD
    move = ca_move("uid-1", "OLD", "NEW", START, SPREAD, now)
    assert not move.due and move.at == now + UNRECORDED_RETRY


def test_a_certificate_from_another_signer_moves_at_once() -> None:
    assert ca_move("uid-1", "NEW", "NEW", None, SPREAD, START).due
