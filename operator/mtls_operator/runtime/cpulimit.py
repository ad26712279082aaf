"""How many CPUs this process may really use: the container's CPU limit (cgroup v2 or v1), not the node's cores.

`os.cpu_count()` in a Pod is the node's core count: a 1-CPU limit on a 16-core node would start 16 key-generation
threads that the CFS quota then throttles (each RSA key takes longer, none finishes sooner). Kubernetes writes the
container's limit as a CFS quota; this reads it the way Go 1.25's runtime and the JVM do, from the container's view
of its own cgroup (runc mounts it at /sys/fs/cgroup), bounded by the CPUs the process is pinned to.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_MOUNT = Path("/sys/fs/cgroup")


def quota_v2(text: str) -> float | None:
    """`cpu.max`: "<quota> <period>" or "max <period>" (no limit)."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    quota, period = int(fields[0]), int(fields[1])
    return quota / period if quota > 0 and period > 0 else None


def quota_v1(quota_text: str, period_text: str) -> float | None:
    """`cpu.cfs_quota_us` (-1: no limit) over `cpu.cfs_period_us`."""
    quota, period = int(quota_text), int(period_text)
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(mount: Path = CGROUP_MOUNT) -> float | None:
    """The CPU limit in CPUs (1.5 for `cpu: 1500m`), or None when there is none or it cannot be read."""
    try:
        v2 = mount / "cpu.max"
        if v2.is_file():
            return quota_v2(v2.read_text())
        for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
            quota, period = mount / controller / "cpu.cfs_quota_us", mount / controller / "cpu.cfs_period_us"
            if quota.is_file() and period.is_file():
                return quota_v1(quota.read_text(), period.read_text())
    except (OSError, ValueError):
        return None  # unreadable or odd: fall back to the cores, as before
    return None


def usable_cpus(mount: Path = CGROUP_MOUNT) -> int:
    """Whole CPUs to size CPU-bound thread pools with: the limit rounded up, at most the CPUs we may run on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(mount)
    if limit is None:
        return max(1, cores)
    return max(1, min(cores, math.ceil(limit)))
