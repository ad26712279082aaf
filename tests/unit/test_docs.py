"""The manual's generated pages match their sources, and the README's links lead somewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_pages_are_current():
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "gen_docs.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr


def test_every_relative_link_of_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    links = [target for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme) if "://" not in target]
    assert len(links) > 30
    missing = [target for target in links if not (ROOT / target).exists()]
    assert not missing


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert 150 <= len(lines) <= 250, len(lines)
