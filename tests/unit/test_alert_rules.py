"""The alert rules are valid and every rule fires (and stays quiet) as promtool's rule unit tests say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is required (Debian package prometheus; .ci/run installs it)"
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=ROOT)


def test_rules_file_is_valid():
    proc = promtool("check", "rules", "manifests/prometheus/alerts.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 13 rules found" in proc.stdout


def test_rule_unit_tests_pass():
    proc = promtool("test", "rules", "tests/prometheus/alerts_test.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_has_a_test_and_a_runbook_section():
    rules = (ROOT / "manifests/prometheus/alerts.yaml").read_text()
    tests = (ROOT / "tests/prometheus/alerts_test.yaml").read_text()
    readme = (ROOT / "README.md").read_text()
    names = [line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")]
    assert len(names) == 13
    for name in names:
        assert f"alertname: {name}" in tests, name
        assert f"#### {name}" in readme, f"README runbook section for {name}"
