"""The aggregator's remembered interval: times at a boundary fold where the division says.

``fold_now`` and ``fold_fast`` find a metric's interval by two comparisons against the range of
the interval folded into last; a time outside it takes the division and the lookup. At a
boundary (a time a few ulps either side of ``k * interval``, for intervals that are not exact
binary fractions) both must give the interval ``floor(created / interval)`` gives, as the
validating :meth:`Aggregator.fold` does, and an interval shipped by ``take()`` must not be
folded into again.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_aggregate import documents, entry, make_aggregator

from ecs_metrics_handler._aggregate import Aggregator
from ecs_metrics_handler._batcher import fold_entries
from ecs_metrics_handler._stats import DeliveryStats

SIZES = (0.1, 0.3, 1 / 3, 0.7, 1.0, 2.5, 7.0, 60.0)


def near(base: float, ulps: int) -> float:
    """``base`` moved by ``ulps`` steps of one ulp (down when negative)."""
    out = base
    for _ in range(abs(ulps)):
        out = math.nextafter(out, math.inf if ulps > 0 else -math.inf)
    return out


def summary(agg: Aggregator) -> list[tuple[Any, ...]]:
    return sorted(
        (
            source["@timestamp"],
            source["metrics"].get("part", 0),
            source["metrics"]["count"],
            source["metrics"]["sum"],
        )
        for _, source in documents(agg.take(None)[0])
    )


operations = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 3), st.integers(-3, 3)),  # a time: (boundary, ulps from it)
        st.just(None),  # take() every interval open so far, as a flush does
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(size=st.sampled_from(SIZES), first=st.integers(10, 2 * 10**9), ops=operations)
@example(size=1.0, first=100, ops=[(0, 0), (0, 1), (1, 0), (1, -1)])
@example(size=0.1, first=17_000_000_003, ops=[(1, -1), (1, 0), (1, 1), (0, 0), (2, 0)])
@example(size=0.3, first=5_666_666_668, ops=[(1, 0), (1, -1), (1, 1), None, (1, 0)])
def test_a_time_at_a_boundary_folds_where_the_division_puts_it(
    size: float, first: int, ops: list[tuple[int, int] | None]
) -> None:
    reference = make_aggregator(interval=size)
    cached = make_aggregator(interval=size)
    payload = {"name": "t", "type": "timer", "unit": "ms"}
    for step, op in enumerate(ops):
        if op is None:
            assert summary(reference) == summary(cached)
            continue
        boundary, ulps = op
        created = near((first + boundary) * size, ulps)
        value = float(step + 1)  # the sums say which metrics went where
        reference.fold(entry(created, dict(payload, value=value)))
        # The application thread's path first (it needs the series open), then the batcher's.
        now = entry(created, dict(payload, value=value))
        if not cached.fold_now(now.payload, now.created, now.seq):
            fold_entries(cached, [now], DeliveryStats())
    assert summary(reference) == summary(cached)


def test_every_time_next_to_a_boundary_folds_where_the_division_puts_it() -> None:
    # For each slot: open it and have its range remembered (metrics inside), then fold
    # metrics a few ulps either side of each of its boundaries.
    for size in SIZES:
        # 3, 7, 31 and 43: k * size / size rounds below k for 0.7, 1/3, 0.3 and 0.1
        for first in (1, 3, 7, 31, 43, 10**6 + 7, 1_733_000_000, 1_733_000_001, 17_330_019):
            reference = make_aggregator(interval=size)
            cached = make_aggregator(interval=size)
            # From inside the slot outwards, so that each time meets the slot's range.
            middle = (first + 0.5) * size
            times = [middle, middle, *(near(first * size, u) for u in range(3, -4, -1))]
            times += [middle, *(near((first + 1) * size, u) for u in range(-3, 4))]
            for step, created in enumerate(times):
                payload = {"name": "t", "type": "timer", "value": float(step + 1)}
                reference.fold(entry(created, dict(payload)))
                now = entry(created, dict(payload))
                if not cached.fold_now(now.payload, now.created, now.seq):
                    fold_entries(cached, [now], DeliveryStats())
            assert summary(reference) == summary(cached), (size, first)
