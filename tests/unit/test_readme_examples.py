"""README.rst's "In your stack" blocks are excerpts of the examples the suite runs.

Each code block there is preceded by text naming the example files it comes from
(``examples/...``); every non-blank line of the block must appear in one of those files, in
the same order, so the README cannot drift from what is tested against the real node.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION = "In your stack"


def _section(text: str) -> str:
    start = text.index(f"\n{SECTION}\n{'=' * len(SECTION)}\n")
    end = re.search(r"\n[^\n]+\n=+\n", text[start + len(SECTION) + 2 :])
    assert end is not None
    return text[start : start + len(SECTION) + 2 + end.start()]


def _blocks(section: str) -> list[tuple[list[str], list[str]]]:
    """(files named before the block, the block's lines) for each code block."""
    blocks = []
    files: list[str] = []
    pending: list[str] = []
    lines = section.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".. code-block::"):
            i += 1
            body = []
            while i < len(lines) and (not lines[i] or lines[i].startswith("    ")):
                body.append(lines[i][4:])
                i += 1
            files = pending or files
            pending = []
            blocks.append((files, [b.strip() for b in body if b.strip()]))
            continue
        pending += re.findall(r"``(examples/[\w.]+)``", line)
        i += 1
    return blocks


def _is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


BLOCKS = _blocks(_section((ROOT / "README.rst").read_text(encoding="utf-8")))


def test_the_section_has_a_block_for_each_integration() -> None:
    named = {name for files, _ in BLOCKS for name in files}
    assert {
        "examples/structlog_stdlib.py",
        "examples/loguru_sink.py",
        "examples/gunicorn.conf.py",
        "examples/uvicorn_logging.yaml",
        "examples/uvicorn_app.py",
        "examples/django_site.py",
        "examples/celery_tasks.py",
    } <= named


@pytest.mark.parametrize(("files", "lines"), BLOCKS, ids=lambda v: str(v)[:40])
def test_each_block_is_an_excerpt_of_its_example(files: list[str], lines: list[str]) -> None:
    assert files, f"no example named before the block starting {lines[:1]}"
    sources = {f: (ROOT / f).read_text(encoding="utf-8").splitlines() for f in files}
    matches = [
        f for f, text in sources.items() if _is_subsequence(lines, [t.strip() for t in text])
    ]
    assert matches, f"block starting {lines[:2]} is not an excerpt of {files}"


def test_a_changed_line_is_caught() -> None:
    files, lines = BLOCKS[0]
    changed = [*lines[:-1], lines[-1] + " # edited"]
    text = (ROOT / files[0]).read_text(encoding="utf-8").splitlines()
    assert not _is_subsequence(changed, [t.strip() for t in text])
