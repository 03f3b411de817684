"""The test tree can be collected whole: no two test modules share a basename.

pytest imports test modules by basename (the ``prepend`` import mode, without packages), so a
second ``test_x.py`` in another folder fails the whole collection with "import file mismatch".
"""

from __future__ import annotations

import collections
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_basename() -> None:
    names = collections.Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
