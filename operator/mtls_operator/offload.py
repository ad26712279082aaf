"""CPU work off the event loop, in a thread pool (cryptography releases the GIL while it computes)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class CpuPool:
    def __init__(
        self,
        threads: int,
        released_slot: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pki")
        self.released_slot = released_slot or contextlib.nullcontext

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Runs `fn` in the pool; the work-queue slot is lent to others while it waits its turn."""
        async with self.released_slot():
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
