"""The alert rules are valid and every rule fires (and stays quiet) as promtool's rule unit tests say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

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


RUNBOOK_URL = "https://mtls-operator.github.io/mtls-operator/operations/runbooks/{alert}.html"


def alert_rules() -> list[dict]:
    rules = yaml.safe_load((ROOT / "manifests/prometheus/alerts.yaml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_rule_has_a_test_and_its_own_runbook_page():
    tests = (ROOT / "tests/prometheus/alerts_test.yaml").read_text()
    rules = alert_rules()
    assert len(rules) == 13
    pages = set()
    for rule in rules:
        name = rule["alert"]
        assert f"alertname: {name}" in tests, name
        page = ROOT / "docs" / "operations" / "runbooks" / f"{name.lower()}.md"
        assert page.read_text().startswith(f"# {name}\n"), f"runbook page for {name}"
        assert rule["annotations"]["runbook_url"] == RUNBOOK_URL.format(alert=name.lower()), name
        pages.add(page.name)
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))
    assert pages <= {Path(p).name for p in _nav_pages(nav["nav"]) if "runbooks/" in p}, "every runbook in the nav"


def _nav_pages(entries: list) -> list[str]:
    found = []
    for entry in entries:
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                found.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return found


def test_the_chart_value_is_the_default_url():
    values = yaml.safe_load((ROOT / "charts/mtls-operator/values.yaml").read_text())
    assert values["prometheusRule"]["runbookURLTemplate"] == RUNBOOK_URL
