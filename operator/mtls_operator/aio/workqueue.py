"""A keyed work queue with timers, like client-go's workqueue: the scalable alternative to a task per object.

- A key is processed by at most one task at a time; adding it while it is processed runs it once more after.
- Keys added many times while one run is under way are processed once more, not once per add (coalesced).
- A run is a task of its own while (and only while) the key has work, and at most `slots` runs proceed at
  once: a resync of 10,000 objects must not flood the event loop (or /healthz stops answering). A run that
  waits for CPU-bound work (an RSA-4096 key) gives its slot back meanwhile (`released_slot`), so slow key
  generation never holds up objects that only need the API.
- `add_at` schedules a key at an instant; one scheduler task sleeps until the earliest instant, so 10,000
  certificates cost 10,000 heap entries, not 10,000 sleeping tasks.
- Failures are retried with per-key exponential backoff.
- `deactivate` (a standby replica, or one that lost its Lease) drops every run, timer and backoff and ignores
  adds until `activate` hands it the keys to look at again: a standby must not act on anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Key = Hashable


TIMER_SLACK_SECONDS = 0.5  # a timer may fire this much later than asked when one for its key is already set


class WorkQueue:
    def __init__(
        self,
        process: Callable[[Key], Awaitable[datetime.datetime | None]],
        *,
        quiet_failure: Callable[[BaseException], bool] = lambda exc: False,
        slots: int = 32,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        self._process = process
        self._quiet_failure = quiet_failure  # e.g. an apiserver outage: logged once elsewhere, not per attempt
        self._slots = asyncio.Semaphore(slots)
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._started: set[Key] = set()  # runs that hold a slot and may have read state already
        self._dirty: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._timers: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}  # the one live timer per key (earliest wins)
        self._seq = itertools.count()
        self._timer_changed = asyncio.Event()
        self._scheduler_task: asyncio.Task[None] | None = None
        self.processed = 0
        self.active = True

    def start(self) -> None:
        self._scheduler_task = asyncio.create_task(self._scheduler(), name="scheduler")

    async def stop(self) -> None:
        tasks = [*self._running.values(), *([self._scheduler_task] if self._scheduler_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def alive(self) -> bool:
        return self._scheduler_task is not None and not self._scheduler_task.done()

    async def deactivate(self) -> None:
        """Stops acting: in-flight runs are cancelled, timers and backoffs dropped, adds ignored."""
        self.active = False
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        self._started.clear()
        self._dirty.clear()
        self._failures.clear()
        self._timers.clear()
        self._due.clear()

    def activate(self, keys: list[Key]) -> None:
        """Starts acting again, from a fresh look at every key (timers are rebuilt by their runs)."""
        self.active = True
        for key in keys:
            self.add(key)

    def add(self, key: Key) -> None:
        if not self.active:
            return
        if key in self._running:
            # A run still waiting for its slot has read nothing yet and will see this change: no second run.
            if key in self._started:
                self._dirty.add(key)
        else:
            self._running[key] = asyncio.create_task(self._run(key))

    def add_at(self, key: Key, when: datetime.datetime) -> None:
        delay = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
        self.add_after(key, delay)

    def add_after(self, key: Key, delay: float) -> None:
        if not self.active:
            return
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        # Slack: `add_at` turns the same wall-clock instant into a slightly different monotonic one on every call;
        # each one a microsecond earlier pushed one more entry, stale until its instant (months for a year-long
        # certificate) — with NTP slewing the wall clock, one per reconcile.
        if key in self._due and self._due[key] <= due + TIMER_SLACK_SECONDS:
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

    def in_flight(self) -> int:
        return len(self._running)

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

    async def _run(self, key: Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                await self._run_once(key)
                if key not in self._dirty:
                    return
        finally:
            self._running.pop(key, None)

    @contextlib.asynccontextmanager
    async def released_slot(self) -> AsyncIterator[None]:
        """Inside a run: give the slot to another key while this one waits for something slow."""
        self._slots.release()
        try:
            yield
        finally:
            await self._slots.acquire()

    async def _run_once(self, key: Key) -> None:
        self.processed += 1
        try:
            async with self._slots:
                self._started.add(key)
                try:
                    wake_at = await self._process(key)
                finally:
                    self._started.discard(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(self._max_backoff, self._base_backoff * 2 ** (failures - 1))
            if self._quiet_failure(exc):
                log.debug("reconcile of %s failed (attempt %d): %s; retrying in %.0fs", key, failures, exc, delay)
            else:
                log.exception("reconcile of %s failed (attempt %d); retrying in %.0fs", key, failures, delay)
            self.add_after(key, delay)
        else:
            self._failures.pop(key, None)
            if wake_at is not None and wake_at <= datetime.datetime.now(datetime.UTC):
                # Due already: run again now. add() would drop it, taking this finished run for one that has
                # not read anything yet (found when a certificate arrived inside its renewal window).
                self._dirty.add(key)
            elif wake_at is not None:
                self.add_at(key, wake_at)
