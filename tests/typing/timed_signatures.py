"""Checked by mypy (see tests/unit/test_timing.py): timed() keeps the wrapped signatures.

Each ``type: ignore`` below must be needed: with ``warn_unused_ignores`` (strict mode) mypy
fails if a decorated function stopped rejecting a wrong call.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

from ecs_metrics_handler._timing import timed


@timed("add")
def add(a: int, b: int = 2, *, scale: int = 1) -> int:
    return (a + b) * scale


@timed("fetch")
async def fetch(sku: str) -> bytes:
    return sku.encode()


assert_type(add(1, scale=2), int)
coroutine: Coroutine[Any, Any, bytes] = fetch("a")

add("1")  # type: ignore[arg-type]
add(1, 2, 3)  # type: ignore[call-arg]
add(1, scaling=2)  # type: ignore[call-arg]
bad = fetch(1)  # type: ignore[arg-type]


async def use() -> None:
    assert_type(await fetch("x"), bytes)
    with timed("block") as timer:
        assert_type(timer, timed)
    async with timed("block") as atimer:
        assert_type(atimer.elapsed_ns, int | None)
