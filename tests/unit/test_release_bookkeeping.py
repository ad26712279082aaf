"""One version, said the same everywhere a user reads it; every release's commit recorded in the repository."""

from __future__ import annotations

import re
import subprocess

import yaml

from harness.cluster import ROOT
from harness.releases import releases
from mtls_operator import __version__


def test_the_chart_says_the_packages_version() -> None:
    chart = yaml.safe_load((ROOT / "charts" / "mtls-operator" / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == __version__, "run make manifests"


def test_the_changelog_opens_with_this_version_and_records_every_release() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    first = re.search(r"^## \[(\d+\.\d+\.\d+)\]", text, re.MULTILINE)
    assert first is not None and first.group(1) == __version__, "CHANGELOG.md's first section is this version"
    recorded = releases()
    assert recorded, "CHANGELOG.md records no release commit"
    versions = [r.version for r in recorded]
    assert __version__ not in versions or versions[0] == __version__, "this version is unreleased or the newest"
    for release in recorded:
        kind = subprocess.run(
            ["git", "-C", str(ROOT), "cat-file", "-t", release.commit], capture_output=True, text=True
        )
        assert kind.stdout.strip() == "commit", f"{release.version}: {release.commit} is not a commit here"
