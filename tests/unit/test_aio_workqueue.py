from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable

from mtls_operator.aio.workqueue import WorkQueue


async def test_adds_during_a_run_coalesce_into_one_more_run():
    runs: list[str] = []
    gate = asyncio.Event()

    async def process(key):
        runs.append(key)
        if len(runs) == 1:
            await gate.wait()
        return None

    queue = WorkQueue(process)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.01)
    for _ in range(10):
        queue.add("a")
    gate.set()
    await asyncio.sleep(0.05)
    assert runs == ["a", "a"]
    await queue.stop()


async def test_a_slow_key_does_not_block_others():
    done: list[str] = []
    slow = asyncio.Event()

    async def process(key):
        if key == "slow":
            await slow.wait()
        done.append(key)
        return None

    queue = WorkQueue(process)
    queue.start()
    queue.add("slow")
    for i in range(50):
        queue.add(f"k{i}")
    await asyncio.sleep(0.05)
    assert len(done) == 50 and "slow" not in done
    slow.set()
    await asyncio.sleep(0.01)
    assert "slow" in done
    await queue.stop()


def recorder() -> tuple[list[str], Callable[[str], Awaitable[None]]]:
    """A process function that only records which keys ran, in order."""
    seen: list[str] = []

    async def process(key: str) -> None:
        seen.append(key)

    return seen, process


async def test_timers_fire_at_their_instant_with_one_entry_per_key():
    fired, process = recorder()
    queue = WorkQueue(process)
    queue.start()
    queue.add_after("later", 0.2)
    queue.add_after("later", 0.05)  # earliest wins
    queue.add_after("later", 0.3)
    queue.add_at("at", datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=0.1))
    assert queue.pending_timers() == 2
    await asyncio.sleep(0.02)
    assert fired == []
    await asyncio.sleep(0.2)
    assert sorted(fired) == ["at", "later"]
    await asyncio.sleep(0.2)
    assert len(fired) == 2, "a superseded timer does not fire again"
    await queue.stop()


async def test_the_same_instant_asked_again_adds_no_heap_entry():
    """Every reconcile of a certificate asks for a wake at its renewal time: months away, the same instant each
    time. The heap (whose stale entries only leave when their time comes) must not grow with the reconciles."""
    fired, process = recorder()
    queue = WorkQueue(process)
    queue.start()
    renewal = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=300)
    for _ in range(1000):
        queue.add_at("c", renewal)
    assert len(queue._timers) == 1
    queue.add_after("c", 1.0)  # a retry sooner than that does add one
    assert len(queue._timers) == 2 and queue.pending_timers() == 1
    await queue.stop()


async def test_failures_retry_with_growing_backoff():
    calls: list[float] = []

    async def process(key):
        calls.append(asyncio.get_running_loop().time())
        if len(calls) < 3:
            raise RuntimeError("API down")
        return None

    queue = WorkQueue(process, base_backoff=0.02)
    queue.start()
    queue.add("k")
    await asyncio.sleep(0.2)
    assert len(calls) == 3
    assert calls[2] - calls[1] >= calls[1] - calls[0] >= 0.015
    await queue.stop()


async def test_forget_drops_the_timer():
    fired, process = recorder()
    queue = WorkQueue(process)
    queue.start()
    queue.add_after("gone", 0.05)
    queue.forget("gone")
    await asyncio.sleep(0.1)
    assert fired == []
    await queue.stop()


async def test_slots_bound_concurrency_and_are_lent_while_waiting_for_cpu():
    active = 0
    peak = 0
    gate = asyncio.Event()
    order: list[str] = []
    queue: WorkQueue

    async def process(key):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if key == "heavy":
            async with queue.released_slot():  # as the reconciler does around key generation
                active -= 1
                await gate.wait()
                active += 1
        else:
            await asyncio.sleep(0.01)
        order.append(key)
        active -= 1
        return None

    queue = WorkQueue(process, slots=2)
    queue.start()
    queue.add("heavy")
    for i in range(6):
        queue.add(f"light{i}")
    await asyncio.sleep(0.2)
    assert peak <= 2
    assert order == [f"light{i}" for i in range(6)], "light keys ran while the heavy one waited for CPU"
    gate.set()
    await asyncio.sleep(0.05)
    assert order[-1] == "heavy"
    await queue.stop()


async def test_adds_for_a_run_still_waiting_for_its_slot_do_not_cause_a_second_run():
    runs: list[str] = []
    gate = asyncio.Event()

    async def process(key):
        runs.append(key)
        if key == "blocker":
            await gate.wait()
        return None

    queue = WorkQueue(process, slots=1)
    queue.start()
    queue.add("blocker")
    queue.add("waiting")
    await asyncio.sleep(0.01)
    for _ in range(5):
        queue.add("waiting")  # e.g. the initial listing of its Secrets, before it has read anything
    gate.set()
    await asyncio.sleep(0.05)
    assert runs == ["blocker", "waiting"]
    await queue.stop()


async def test_deactivated_queue_cancels_runs_drops_timers_and_ignores_adds():
    started: list[str] = []
    finished: list[str] = []
    forever = asyncio.Event()

    async def process(key):
        started.append(key)
        if key == "slow":
            await forever.wait()
        finished.append(key)
        return None

    queue = WorkQueue(process)
    queue.start()
    queue.add("slow")
    queue.add_after("timer", 0.05)
    await asyncio.sleep(0.01)
    await queue.deactivate()  # lost the Lease: stop acting at once
    queue.add("b")
    await asyncio.sleep(0.1)
    assert started == ["slow"] and finished == []
    assert queue.in_flight() == 0 and queue.pending_timers() == 0
    queue.activate(["slow", "timer"])  # leader again: look at every key afresh
    forever.set()
    await asyncio.sleep(0.05)
    assert sorted(finished) == ["slow", "timer"]
    await queue.stop()


async def test_a_run_that_asks_to_run_again_now_runs_again():
    runs: list[str] = []

    async def process(key):
        runs.append(key)
        # The first run decides the key is due again at once (a certificate issued inside its renewal window).
        return datetime.datetime.now(datetime.UTC) if len(runs) == 1 else None

    queue = WorkQueue(process)
    queue.start()
    queue.add("a")
    await asyncio.sleep(0.05)
    assert runs == ["a", "a"]
    await queue.stop()
