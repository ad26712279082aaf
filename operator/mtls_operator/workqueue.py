"""A keyed work queue with timers, like client-go's workqueue: the scalable alternative to a task per object.

- A key is processed by at most one worker at a time; adding it while it is processed runs it once more after.
- Keys added many times before a worker picks them up are processed once (events are coalesced).
- `add_at` schedules a key at an instant; one scheduler task sleeps until the earliest instant, so 10,000
  certificates cost 10,000 heap entries, not 10,000 sleeping tasks.
- Failures are retried with per-key exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Key = Hashable


class WorkQueue:
    def __init__(
        self,
        process: Callable[[Key], Awaitable[datetime.datetime | None]],
        *,
        workers: int = 4,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        self._process = process
        self._workers = workers
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}  # the one live timer per key (earliest wins)
        self._seq = itertools.count()
        self._timer_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(i), name=f"worker-{i}") for i in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._scheduler(), name="scheduler"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def alive(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    def add(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_at(self, key: Key, when: datetime.datetime) -> None:
        delay = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
        self.add_after(key, delay)

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._timers, (due, next(self._seq), key))
        self._timer_changed.set()

    def forget(self, key: Key) -> None:
        """Drops timers and backoff of a deleted object."""
        self._due.pop(key, None)
        self._failures.pop(key, None)

    def pending_timers(self) -> int:
        return len(self._due)

    async def _scheduler(self) -> None:
        while True:
            self._timer_changed.clear()
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                due, _, key = heapq.heappop(self._timers)
                if self._due.get(key) == due:
                    del self._due[key]
                    self.add(key)
            timeout = self._timers[0][0] - now if self._timers else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_changed.wait(), timeout=timeout)

    async def _worker(self, index: int) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                wake_at = await self._process(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self._max_backoff, self._base_backoff * 2 ** (failures - 1))
                log.exception("reconcile of %s failed (attempt %d); retrying in %.0fs", key, failures, delay)
                self.add_after(key, delay)
            else:
                self._failures.pop(key, None)
                if wake_at is not None:
                    self.add_at(key, wake_at)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
