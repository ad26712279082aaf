"""MkDocs hook: a ```dot fenced block becomes the SVG Graphviz draws from it, at build time.

The picture is text in the repository and inline SVG in the page: no JavaScript, nothing fetched by the reader, so
the site works offline. Needs `dot` (Debian's graphviz; `make docs` installs it); a block dot refuses fails the build.
"""

from __future__ import annotations

import functools
import re
import subprocess
from typing import Any

FENCE = re.compile(r"^```dot\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@functools.lru_cache(maxsize=64)
def render(source: str) -> str:
    done = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise ValueError(f"graphviz refused a diagram: {done.stderr.strip()}")
    svg = done.stdout[done.stdout.index("<svg") :]
    # Markdown must not see blank lines or indentation inside the HTML block.
    return "\n".join(line.strip() for line in svg.splitlines() if line.strip() and not line.startswith("<!--"))


def on_page_markdown(markdown: str, **_: Any) -> str:
    return FENCE.sub(lambda m: f'<div class="diagram" markdown="0">\n{render(m.group(1))}\n</div>\n', markdown)
