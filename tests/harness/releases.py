"""The project's releases as CHANGELOG.md records them (`## [X.Y.Z]` followed by a `Commit: <sha>` line; a clone
need not carry tags), and a release's tree taken out of git by that commit."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.cluster import ROOT

_RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\][^\n]*\n(?:(?!^## ).*\n)*?Commit: `?([0-9a-f]{40})`?", re.MULTILINE)


@dataclass(frozen=True)
class Release:
    version: str
    commit: str


def releases() -> list[Release]:
    """Released versions, newest first (the unreleased section has no Commit line)."""
    return [Release(v, c) for v, c in _RELEASE.findall((ROOT / "CHANGELOG.md").read_text())]


def previous_release() -> Release:
    found = releases()
    assert found, "CHANGELOG.md records no release (a `## [X.Y.Z]` section with a `Commit: <sha>` line)"
    return found[0]


def checkout(release: Release, destination: Path, *paths: str) -> Path:
    """The release's files (`paths`, default all) under `destination`, by `git archive` of its commit."""
    destination.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", release.commit, *paths], capture_output=True
    )
    if archive.returncode != 0:
        raise AssertionError(
            f"git cannot read release {release.version} ({release.commit}): {archive.stderr.decode().strip()}; "
            "the upgrade test needs the repository's history (not a shallow clone)"
        )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    return destination
