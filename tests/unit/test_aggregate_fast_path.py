"""Aggregation's fast path and bucket sketches against their references.

* ``Aggregator.fold_fast`` (payload shapes seen before, no validation) must give the very
  documents, bytes for bytes, of the validating ``Aggregator.fold`` alone, and reject the same
  payloads with the same reasons;
* ``BucketSketch`` must count, collapse and answer quantiles exactly like
  ``ddsketch.LogCollapsingLowestDenseDDSketch`` (read here through its stores, the one place
  that looks inside ddsketch), and stay within ``RELATIVE_ACCURACY`` of the exact quantiles.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_aggregate import entry, make_aggregator

from ecs_metrics_handler._aggregate import Aggregator
from ecs_metrics_handler._batcher import fold_entries
from ecs_metrics_handler._metric import MetricType, normalize_metric_fields
from ecs_metrics_handler._sketch import (
    BIN_LIMIT,
    RELATIVE_ACCURACY,
    BucketSketch,
    KeyCache,
    _bulk_multiplier,
    merged_quantile,
    sketch_fields,
    sketch_quantile,
)
from ecs_metrics_handler._stats import DeliveryStats
from ecs_metrics_handler.exceptions import InvalidMetricError


def aggregator(max_series: int = 100, *, reference: bool = False) -> Aggregator:
    agg = make_aggregator(max_series=max_series)
    if reference:  # every entry through the validating path
        agg.fold_fast = lambda _entry: False  # type: ignore[method-assign]
    return agg


class Named(str):
    """A str subclass: refused as a name, unit or type by the validation."""


names = st.sampled_from(["db.query", "http.request", "queue", Named("db.query"), "", 7])
types = st.sampled_from(
    [
        None,
        "timer",
        "counter",
        "gauge",
        "histogram",
        "TIMER",
        " Gauge",
        "bogus",
        1,
        Named("timer"),
        *MetricType,
    ]
)
units = st.sampled_from([None, "ms", "bytes", Named("ms"), 3])
label_values = st.one_of(
    st.sampled_from(["a", "b", 1, 1.0, True, False, 0, -0.0, 0.0, None, 2**70, math.nan]),
    st.sampled_from([math.inf, decimal.Decimal(1), (1, 2), Named("a")]),
)
label_keys = st.sampled_from(["route", "method", "a.b", "a_b", 1, True])
labels = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(label_keys, label_values, max_size=3),
    st.sampled_from([[], "x", [("route", "a")]]),
)
values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0, 1, -1, 5, 2**63 - 1, 2**63, -(2**64), True, "1", decimal.Decimal("2.5")]),
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from([0.5, 1.5, 2.5, 1e-300, -1e300, 5e-324]),
)
extras = st.sampled_from(
    [
        {},
        {},
        {},
        {"duration_ns": 1_500_000},
        {"duration_ns": "x"},
        {"outcome": "success"},
        {"outcome": "bogus"},
        {"start": 1.0, "end": 2.0},
        {"error_type": ValueError},
        {"other": 1},
    ]
)


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([None, "x", 3, ["name"]]))
    payload: dict[str, Any] = {"name": draw(names)}
    for key, strategy in (("type", types), ("unit", units), ("labels", labels), ("value", values)):
        if draw(st.booleans()):
            payload[key] = draw(strategy)
    payload.update(draw(extras))
    return payload


@st.composite
def events(draw: st.DrawFn) -> list[tuple[float, Any]]:
    """Metrics of a few shapes, as an application logs them: the same name, type, unit and
    labels again and again with new values, now and then a label value of another type."""
    bases = draw(st.lists(payloads(), min_size=1, max_size=4))
    out: list[tuple[float, Any]] = []
    for _ in range(draw(st.integers(0, 80))):
        base = draw(st.sampled_from(bases))
        created = draw(st.floats(min_value=0, max_value=4, allow_nan=False))
        if not isinstance(base, dict):
            out.append((created, base))
            continue
        payload = dict(base)
        if draw(st.booleans()):
            payload["value"] = draw(values)
        raw_labels = payload.get("labels")
        if isinstance(raw_labels, dict) and raw_labels and draw(st.integers(0, 4)) == 0:
            payload["labels"] = {k: draw(label_values) for k in raw_labels}
        elif isinstance(raw_labels, dict):
            payload["labels"] = dict(raw_labels)
        out.append((created, payload))
    return out


def fold_all(
    agg: Aggregator, batch: list[tuple[float, Any]], cuts: set[int]
) -> tuple[list[bytes], list[str], DeliveryStats]:
    stats = DeliveryStats()
    items: list[bytes] = []
    reasons: list[str] = []
    entries = [entry(created, payload) for created, payload in batch]
    for i in range(0, len(entries), 7):
        reasons += [d.reason for d in fold_entries(agg, entries[i : i + 7], stats)]
        if i in cuts:
            items += agg.take(float(i // 7))[0]
    items += agg.take(None)[0]
    return items, reasons, stats


@settings(max_examples=300, deadline=None)
@given(events(), st.sets(st.integers(0, 120).map(lambda i: i - i % 7)), st.sampled_from([2, 100]))
def test_the_fast_path_writes_the_documents_of_the_validating_path(
    batch: list[tuple[float, Any]], cuts: set[int], max_series: int
) -> None:
    """Same bulk items (ids, labels, numbers, sketches), same rejects, same counters."""
    repeated = batch + batch  # the second half meets shapes seen before
    fast, reference = aggregator(max_series), aggregator(max_series, reference=True)
    got = fold_all(fast, repeated, cuts)
    want = fold_all(reference, repeated, cuts)
    assert got[0] == want[0]
    assert got[1] == want[1]
    for name in ("aggregated", "aggregated_overflow"):
        assert getattr(got[2], name) == getattr(want[2], name)
    assert (fast.folded, fast.overflowed) == (reference.folded, reference.overflowed)


@pytest.mark.parametrize(
    "later",
    [
        {"labels": {"r": decimal.Decimal(1)}},  # equal to 1, written "1"
        {"labels": {"r": True}},
        {"labels": {"r": 1.0}},
        {"labels": {"r": 2**70}},
        {"labels": {"r": None}},
        {"labels": {"r.x": 1}},
        {"labels": {1: 1}},
        {"value": math.nan},
        {"value": -math.inf},
        {"value": 2**63},
        {"value": decimal.Decimal("2.5")},
        {"value": None},
        {"type": "TIMER"},
        {"type": MetricType.TIMER},
        {"type": Named("timer")},
        {"unit": None},
        {"duration_ns": 2_000_000},
    ],
)
def test_look_alikes_of_a_known_shape_fold_as_the_validating_path_folds_them(
    later: dict[str, Any],
) -> None:
    """A payload equal in Python to a known shape, but normalised otherwise, is not confused."""
    base = {"name": "t", "type": "timer", "unit": "ms", "value": 1.0, "labels": {"r": 1}}
    look_alike = {**base, **later}
    batch = [(1.0, base), (1.1, base), (1.2, look_alike), (1.3, base), (1.4, look_alike)]
    got = fold_all(aggregator(), batch, set())
    want = fold_all(aggregator(reference=True), batch, set())
    assert got[0] == want[0] and got[1] == want[1]


def reason_of(payload: Any) -> str:
    try:
        normalize_metric_fields(payload)
    except InvalidMetricError as e:
        return f"invalid metric: {e.reason}"
    raise AssertionError(f"valid: {payload!r}")


@pytest.mark.parametrize(
    "bad",
    [
        {"value": math.inf},
        {"value": math.nan},
        {"value": True},
        {"value": "12"},
        {"value": 2**64},  # becomes a float: valid, so not here
        {"duration_ns": "x"},
        {"outcome": "bogus"},
        {"start": "now"},
        {"labels": ["route", "a"]},
        {"name": Named("t")},
        {"unit": Named("ms")},
        {"type": Named("timer")},
        {"type": "bogus"},
        {"name": ""},
    ],
)
def test_a_payload_like_one_seen_before_is_still_rejected_with_its_reason(
    bad: dict[str, Any],
) -> None:
    good = {"name": "t", "type": "timer", "unit": "ms", "value": 1.0, "labels": {"r": "a"}}
    payload = {**good, **bad}
    agg, stats = aggregator(), DeliveryStats()
    fold_entries(agg, [entry(1.0, dict(good)), entry(1.1, dict(good))], stats)
    assert agg.fold_fast(entry(1.2, dict(good)))  # the shape is known: fast
    try:
        normalize_metric_fields(payload)
    except InvalidMetricError:
        rejected = fold_entries(agg, [entry(1.3, payload)], stats)
        assert [d.reason for d in rejected] == [reason_of(payload)]
        assert agg.folded == 3
    else:  # valid after all (a huge int becomes a float): it folds
        assert fold_entries(agg, [entry(1.3, payload)], stats) == []
        assert agg.folded == 4


# -- sketches ---------------------------------------------------------------------------------


def ddsketch_reference(values: list[float]) -> tuple[dict[str, Any], list[float | None]]:
    """The sketch fields and quantiles of ddsketch's own sketch (reads its stores)."""
    from ddsketch import LogCollapsingLowestDenseDDSketch

    sketch = LogCollapsingLowestDenseDDSketch(
        relative_accuracy=RELATIVE_ACCURACY, bin_limit=BIN_LIMIT
    )
    for v in values:
        sketch.add(v)

    def store(s: Any) -> dict[str, list[int]]:
        pairs = [(s.offset + i, int(c)) for i, c in enumerate(s.bins) if c]
        return {"indexes": [i for i, _ in pairs], "counts": [c for _, c in pairs]}

    fields = {
        "gamma": sketch._mapping.gamma,
        "index_offset": sketch._mapping._offset,
        "zero_count": int(sketch._zero_count),
        "positive": store(sketch._store),
        "negative": store(sketch._negative_store),
    }
    return fields, [sketch.get_quantile_value(q) for q in (0.0, 0.01, 0.5, 0.9, 0.99, 1.0)]


def ours(values: list[float]) -> tuple[dict[str, Any], list[float | None]]:
    sketch = BucketSketch(KeyCache())
    for v in values:
        sketch.add(v)
    quantiles = [sketch_quantile(sketch, q) for q in (0.0, 0.01, 0.5, 0.9, 0.99, 1.0)]
    return sketch_fields(sketch), quantiles


magnitudes = st.floats(min_value=-300, max_value=300).map(lambda e: 10.0**e)
sketch_values = st.lists(
    st.one_of(
        magnitudes,
        magnitudes.map(lambda v: -v),
        st.sampled_from([0.0, -0.0, 0, 1, 5e-324, -5e-324, 2.2250738585072014e-308]),
        st.floats(min_value=-1e3, max_value=1e3),
        st.integers(min_value=-(10**6), max_value=10**6),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(sketch_values)
def test_buckets_collapsing_and_quantiles_match_ddsketch(values: list[float]) -> None:
    """Including ranges far beyond BIN_LIMIT buckets (lowest ones collapse), either order."""
    want = ddsketch_reference(values)
    got = ours(values)
    assert got == want
    assert [type(q) for q in got[1]] == [type(q) for q in want[1]]  # 0 (int) for the zero bucket
    assert ours(values[::-1])[0] == ddsketch_reference(values[::-1])[0] == want[0]


positive_values = st.lists(
    st.one_of(magnitudes, st.floats(min_value=1e-3, max_value=1e3, exclude_min=True)),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(positive_values, sketch_values),
    st.lists(st.integers(min_value=1, max_value=80), max_size=12),
    st.booleans(),
)
def test_values_added_in_chunks_count_in_ddsketchs_buckets(
    values: list[float], cuts: list[int], exact_multiplier: bool
) -> None:
    """Chunks all positive take the bulk path (a chunk partly remembered included: every
    value is added twice); any other chunk the one-by-one path; both give ddsketch's
    buckets. Without the mapping's multiplier the bulk path computes each bucket alone."""
    keys = KeyCache()
    if not exact_multiplier:
        keys._multiplier = None
    sketch = BucketSketch(keys)
    doubled = values + values[::2] + values
    start = 0
    for k, size in enumerate(cuts):
        chunk = doubled[start : start + size]
        if k % 2 and chunk:  # as Series.settle calls it: with the chunk's bounds
            sketch.add_all(chunk, min(chunk), max(chunk))
        else:
            sketch.add_all(chunk)
        start += size
    sketch.add_all(doubled[start:])
    assert sketch_fields(sketch) == ddsketch_reference(doubled)[0]


def test_the_bulk_multiplier_is_refused_when_it_disagrees_with_the_mapping() -> None:
    from ddsketch.mapping import LogarithmicMapping

    mapping = LogarithmicMapping(RELATIVE_ACCURACY)
    assert _bulk_multiplier(mapping) == mapping._multiplier
    key = mapping.key
    mapping.key = lambda value: key(value) + (value > 1000)  # type: ignore[method-assign]
    assert _bulk_multiplier(mapping) is None  # a key not of the formula
    del mapping._multiplier
    assert _bulk_multiplier(mapping) is None


def test_collapsing_keeps_the_highest_bin_limit_indexes() -> None:
    values = [10.0**e for e in range(-150, 151)] * 2
    fields, _ = ours(values)
    indexes = fields["positive"]["indexes"]
    assert indexes[-1] - indexes[0] == BIN_LIMIT - 1
    assert sum(fields["positive"]["counts"]) == len(values)
    assert fields == ddsketch_reference(values)[0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=1e-6, max_value=1e9),
            st.floats(min_value=-1e9, max_value=-1e-6),
            st.just(0.0),
        ),
        min_size=1,
        max_size=400,
    )
)
def test_quantiles_of_signed_values_are_within_the_relative_accuracy(values: list[float]) -> None:
    ordered = sorted(values)
    sketch = BucketSketch(KeyCache())
    for v in values:
        sketch.add(v)
    fields = sketch_fields(sketch)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[math.floor(q * (len(ordered) - 1))]
        got = sketch_quantile(sketch, q)
        assert got is not None
        assert abs(got - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + 1e-9)
        if exact >= 0:  # merged_quantile reads the written form back (same buckets)
            merged = merged_quantile(fields, q)
            assert abs(merged - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + 1e-9)


def test_the_written_sketch_uses_ddsketchs_public_mapping() -> None:
    from ddsketch.mapping import LogarithmicMapping

    mapping = LogarithmicMapping(RELATIVE_ACCURACY)
    sketch = BucketSketch(KeyCache())
    for v in (0.5, 12.0, -3.0, 0.0):
        sketch.add(v)
    assert sketch_fields(sketch) == {
        "gamma": mapping.gamma,
        "index_offset": 0.0,
        "zero_count": 1,
        "positive": {"indexes": [mapping.key(0.5), mapping.key(12.0)], "counts": [1, 1]},
        "negative": {"indexes": [mapping.key(3.0)], "counts": [1]},
    }


def test_label_keys_equal_in_python_but_written_otherwise_are_not_confused() -> None:
    """``1``, ``True`` and ``1.0`` as label keys are the labels "1", "True" and "1.0"."""
    batch = [
        (1.0 + i / 10, {"name": "t", "type": "counter", "labels": {key: "a"}})
        for i, key in enumerate([1, 1, True, 1.0, 1, True])
    ]
    got = fold_all(aggregator(), batch, set())
    want = fold_all(aggregator(reference=True), batch, set())
    assert got[0] == want[0] and len(got[0]) == 3
