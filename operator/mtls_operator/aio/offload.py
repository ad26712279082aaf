"""CPU work off the event loop, in a thread pool (cryptography releases the GIL while it computes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CPU_NICENESS = 10
THREAD_PREFIX = "pki"


def pool_threads() -> int:
    """The CpuPools' worker threads still alive (idle, or computing something nobody will use after a stop)."""
    return sum(1 for thread in threading.enumerate() if thread.name.startswith(THREAD_PREFIX + "_"))


def _yield_to_the_loop() -> None:
    """Key generation keeps every core busy during a burst; at the same OS priority the event loop's thread then
    waits for whole scheduler slices (loop lag p99 48 ms measured, with the GC already tamed). At a lower priority
    (per thread: Linux niceness is per thread) the loop, the API threads and a co-located apiserver go first."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CPU_NICENESS)


class CpuPool:
    def __init__(
        self,
        threads: int,
        released_slot: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=THREAD_PREFIX, initializer=_yield_to_the_loop
        )
        self.released_slot = released_slot or contextlib.nullcontext

    def close(self) -> None:
        """At stop: work not started is dropped (a key generated for a CSR never published is worth nothing); what
        is running now is abandoned by runtime.cli's exit (an RSA-4096 key can take seconds more)."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs `fn` in the pool; the work-queue slot is lent to others while it waits its turn."""
        async with self.released_slot():
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
