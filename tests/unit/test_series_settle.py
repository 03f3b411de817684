"""A series' deferred numbers: ``Series.add`` queues a value, ``Series.settle`` folds it.

What settles must be what folding each value at once gives, in the order added (the same
float sum, bit for bit; the same last value, bounds and sketch buckets), whenever the
settling happens; and a series never holds more than ``PENDING_LIMIT`` values unsettled.
"""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ecs_metrics_handler._series import PENDING_LIMIT, Series
from ecs_metrics_handler._sketch import BucketSketch, KeyCache

values = st.lists(
    st.one_of(
        st.none(),
        st.integers(-(10**6), 10**6),
        st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
    ),
    max_size=3 * PENDING_LIMIT,
)


def folded_one_by_one(
    added: list[float | None], counter: bool, keys: KeyCache, sampled: bool
) -> dict[str, object]:
    """The reference: each value folded as it comes."""
    count, total, low, high, last = 0, 0, math.inf, -math.inf, None
    sketch = BucketSketch(keys) if sampled else None
    for value in added:
        count += 1
        if value is None:
            if counter:
                total += 1
            continue
        total += value
        if counter:
            continue
        last, low, high = value, min(low, value), max(high, value)
        if sketch is not None:
            sketch.add(value)
    return {
        "count": count,
        "total": total,
        "min": low,
        "max": high,
        "last": last,
        "buckets": (sketch.positive, sketch.negative, sketch.zero_count) if sketch else None,
    }


def numbers(series: Series) -> dict[str, object]:
    sketch = series.sketch
    return {
        "count": series.count,
        "total": series.total,
        "min": series.minimum,
        "max": series.maximum,
        "last": series.last,
        "buckets": (sketch.positive, sketch.negative, sketch.zero_count) if sketch else None,
    }


@settings(max_examples=200, deadline=None)
@given(
    values,
    st.sampled_from(["counter", "gauge", "timer"]),
    st.sets(st.integers(0, 3 * PENDING_LIMIT)),
)
@example([1e16, 1.0, 1.0, 1.0, 1.0], "gauge", {0})  # a sum regrouped would round otherwise
def test_settling_at_any_points_gives_the_numbers_of_folding_one_by_one(
    added: list[float | None], kind: str, settle_after: set[int]
) -> None:
    keys = KeyCache()
    counter, sampled = kind == "counter", kind == "timer"
    series = Series(counter, sketch=BucketSketch(keys) if sampled else None)
    for i, value in enumerate(added):
        series.add(value)
        assert len(series.pending) < PENDING_LIMIT
        if i in settle_after:
            series.settle()
    series.settle()
    assert not series.pending
    want = folded_one_by_one(added, counter, keys, sampled)
    got = numbers(series)
    assert got == want
    assert type(got["total"]) is type(want["total"])  # int sums stay int


def test_a_series_settles_by_itself_at_the_pending_limit() -> None:
    series = Series()
    for i in range(PENDING_LIMIT - 1):
        series.add(float(i))
    assert (len(series.pending), series.count) == (PENDING_LIMIT - 1, 0)
    series.add(1.5)
    assert (len(series.pending), series.count) == (0, PENDING_LIMIT)
    assert series.last == 1.5
