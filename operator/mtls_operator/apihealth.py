"""Is the Kubernetes API reachable? One log line when it goes away, one when it is back, counts in between.

Without this, every failed reconcile attempt during an apiserver outage logged a full urllib3 traceback: a 30 s
outage with a few certificates made 446 lines, and at 10,000 certificates the flood hides the line that matters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import urllib3
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

UNAVAILABLE_STATUSES = {429, 500, 502, 503, 504}


def is_outage(exc: BaseException) -> bool:
    """An error that says the API is away or overloaded, not that our request was wrong."""
    if isinstance(exc, ApiException):
        return exc.status in UNAVAILABLE_STATUSES or not exc.status
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


class ApiHealth:
    FLAP_SECONDS = 30.0  # a failure this soon after recovering continues the same outage in the log

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.down_since: float | None = None
        self.failures = 0
        self._recovered_at: float | None = None
        self._quiet = False  # this outage continues one already logged (the API flapped while coming back)

    @property
    def reachable(self) -> bool:
        return self.down_since is None

    def outage_seconds(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.down_since is None:
            self.down_since = self.clock()
            self._quiet = self._recovered_at is not None and self.down_since - self._recovered_at < self.FLAP_SECONDS
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            if self._quiet:
                log.debug("Kubernetes API unreachable again (%s), right after recovering", reason)
            else:
                log.warning(
                    "Kubernetes API unreachable (%s); retrying with backoff, further failures are counted", reason
                )

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.log(
                logging.DEBUG if self._quiet else logging.INFO,
                "Kubernetes API reachable again after %.0fs; %d requests failed meanwhile",
                self.outage_seconds(), self.failures,
            )  # fmt: skip
            self.down_since = None
            self.failures = 0
            self._recovered_at = self.clock()
