"""CPU work off the event loop (aio.offload): the pool's threads are the ones the operator's exit leaves to end with
the process (runtime.cli), so they must be found by name, and only they."""

from __future__ import annotations

import threading

from mtls_operator.aio.offload import CpuPool, pool_threads


async def test_the_pools_threads_are_counted_and_nothing_else():
    before = pool_threads()
    release = threading.Event()
    bystander = threading.Thread(target=release.wait, name="pkix-not-a-pool-thread")
    bystander.start()
    pool = CpuPool(2)
    try:
        assert pool_threads() == before  # a thread whose name merely starts alike is not counted
        assert await pool.run(sum, [1, 2]) == 3
        assert pool_threads() == before + 1  # one job: one worker started
    finally:
        release.set()
        bystander.join()
        pool.close()
        pool.executor.shutdown(wait=True)
    assert pool_threads() == before
