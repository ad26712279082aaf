"""The Lease holder against a real socket that accepts requests and never answers (a connection that died without
a reset, or an apiserver whose etcd is gone): it must step down by `renew_deadline` after its last renewal, before
a standby can take the Lease over at `lease_duration`, and never hang a round forever."""

from __future__ import annotations

import asyncio
import datetime
import time

import kubernetes

from mtls_operator.runtime.leader import LeaderElector


async def test_holder_steps_down_in_time_when_the_apiserver_goes_silent(silent_server: str) -> None:
    config = kubernetes.client.Configuration()
    config.host = silent_server
    config.retries = False
    changes: list[tuple[bool, float]] = []
    started = time.monotonic()

    async def on_change(leader: bool) -> None:
        changes.append((leader, time.monotonic() - started))

    elector = LeaderElector(
        "ns",
        "lease",
        on_change=on_change,
        lease_duration=3.0,
        renew_deadline=2.0,
        retry_period=0.5,
        api=kubernetes.client.CoordinationV1Api(kubernetes.client.ApiClient(config)),
    )
    # As if it had renewed its Lease just now, the moment the apiserver went silent.
    elector.is_leader = True
    elector._last_renewal = datetime.datetime.now(datetime.UTC)
    task = asyncio.create_task(elector.run())
    try:
        deadline = time.monotonic() + 10
        while not changes and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert changes, "the holder never stepped down while its requests went unanswered"
        leader, after = changes[0]
        assert leader is False
        assert after < 3.0, f"stepped down {after:.1f} s after its last renewal: a standby takes over at 3 s"
    finally:
        task.cancel()
        elector._executor.shutdown(wait=False, cancel_futures=True)


async def test_a_standby_keeps_going_round_by_round(silent_server: str) -> None:
    """A follower's round that hangs is abandoned too, so it keeps trying (and takes over once the API is back)."""
    config = kubernetes.client.Configuration()
    config.host = silent_server
    elector = LeaderElector(
        "ns",
        "lease",
        on_change=lambda leader: asyncio.sleep(0),
        renew_deadline=1.0,
        retry_period=0.2,
        api=kubernetes.client.CoordinationV1Api(kubernetes.client.ApiClient(config)),
    )
    rounds = 0
    step = elector._step

    def counted() -> tuple[bool, str]:
        nonlocal rounds
        rounds += 1
        return step()

    elector._step = counted  # type: ignore[method-assign]
    task = asyncio.create_task(elector.run())
    try:
        await asyncio.sleep(4)
        assert rounds >= 2, f"{rounds} round(s) in 4 s: a hung request stalled the election"
        assert not elector.is_leader
    finally:
        task.cancel()
        elector._executor.shutdown(wait=False, cancel_futures=True)
