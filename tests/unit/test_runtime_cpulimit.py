"""The key-generation pool is sized from the container's CPU limit (cgroup v2 and v1), not the node's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mtls_operator.runtime.cpulimit import cgroup_cpu_limit, quota_v1, quota_v2, usable_cpus


def cores() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("text", "cpus"), [("100000 100000", 1.0), ("150000 100000", 1.5), ("max 100000", None), ("50000 100000\n", 0.5)]
)
def test_cgroup_v2_cpu_max(text: str, cpus: float | None) -> None:
    assert quota_v2(text) == cpus


@pytest.mark.parametrize(("quota", "period", "cpus"), [("100000", "100000", 1.0), ("-1", "100000", None)])
def test_cgroup_v1_cfs_quota(quota: str, period: str, cpus: float | None) -> None:
    assert quota_v1(quota, period) == cpus


def test_v2_mount_is_read(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.5


@pytest.mark.parametrize("controller", ["cpu", "cpu,cpuacct"])
def test_v1_mount_is_read(tmp_path: Path, controller: str) -> None:
    (tmp_path / controller).mkdir()
    (tmp_path / controller / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / controller / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.0
    assert usable_cpus(tmp_path) == 1


def test_a_fractional_limit_rounds_up_and_never_exceeds_the_cpus_we_run_on(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # cpu: 500m
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(cores() + 8) * 100000} 100000\n")  # a limit above the node's cores
    assert usable_cpus(tmp_path) == cores()


def test_no_limit_or_an_unreadable_one_means_every_core(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path) == cores()  # nothing mounted there
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cpus(tmp_path) == cores()
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cgroup_cpu_limit(tmp_path) is None
