"""The sketch -> ``metrics.histogram`` conversion, and the document hook that writes it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_metrics_handler._aggregate import Aggregator, merged_quantile, sketch_fields
from ecs_metrics_handler._capture import Entry
from ecs_metrics_handler._histogram import histogram_fields
from ecs_metrics_handler._sketch import BucketSketch, KeyCache

# magnitudes within the sketch's 2048 buckets per sign at 1 % (1e-6..1e9): beyond that its
# lowest buckets collapse by design and the error bound no longer holds for them
_magnitude = st.floats(min_value=1e-6, max_value=1e9)
finite = st.one_of(_magnitude, _magnitude.map(lambda v: -v))
values_lists = st.lists(st.one_of(finite, st.just(0.0)), min_size=1, max_size=300)


def _sketch_of(values: list[float]) -> dict[str, Any]:
    sketch = BucketSketch(KeyCache())
    for v in values:
        sketch.add(v)
    return sketch_fields(sketch)


def _histogram_quantile(hist: dict[str, list[Any]], q: float) -> float:
    """Quantile by the same rank rule as merged_quantile, read off the histogram."""
    rank = q * (sum(hist["counts"]) - 1)
    seen = 0
    for value, count in zip(hist["values"], hist["counts"], strict=True):
        seen += count
        if seen > rank:
            return float(value)
    return float(hist["values"][-1])


@settings(max_examples=200, deadline=None)
@given(values_lists, st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.99, 1.0]))
def test_histogram_counts_sum_to_count_values_ascend_and_quantiles_match(
    values: list[float], q: float
) -> None:
    sketch = _sketch_of(values)
    hist = histogram_fields(sketch)
    assert sum(hist["counts"]) == len(values)
    assert all(isinstance(c, int) and c > 0 for c in hist["counts"])
    assert all(a < b for a, b in zip(hist["values"], hist["values"][1:], strict=False))
    assert _histogram_quantile(hist, q) == merged_quantile(sketch, q)
    exact = sorted(values)[int(q * (len(values) - 1))]
    assert abs(_histogram_quantile(hist, q) - exact) <= 0.0101 * abs(exact) + 1e-9


def test_negative_zero_and_positive_buckets_in_ascending_order() -> None:
    gamma = 1.5
    sketch = {
        "gamma": gamma,
        "index_offset": 0.0,
        "zero_count": 2,
        "positive": {"indexes": [1, 3], "counts": [1, 4]},
        "negative": {"indexes": [2, 0], "counts": [3, 1]},
    }
    hist = histogram_fields(sketch)
    rep = [2 * gamma**i / (1 + gamma) for i in (2, 0, 1, 3)]
    assert hist == {
        "values": [-rep[0], -rep[1], 0.0, rep[2], rep[3]],
        "counts": [3, 1, 2, 1, 4],
    }


def test_fractional_counts_are_rounded_and_empty_buckets_left_out() -> None:
    sketch = {
        "gamma": 2.0,
        "zero_count": 0,
        "positive": {"indexes": [0, 1], "counts": [2.6, 0.2]},
        "negative": {"indexes": [], "counts": []},
    }
    assert histogram_fields(sketch) == {"values": [2 / 3], "counts": [3]}


def _entry(created: float, payload: Any, seq: int) -> Entry:
    out = Entry()
    out.seq = seq
    out.payload = payload
    out.message = "m"
    out.created = created
    out.name = "test"
    out.levelname = "INFO"
    return out


def _aggregator(flag: list[bool]) -> Aggregator:
    return Aggregator(
        1.0,
        10,
        index_of=lambda ts: "i",
        decorate=lambda doc: None,
        id_prefix="P",
        dataset="d",
        pid=1,
        histogram=lambda: flag[0],
    )


def test_documents_carry_the_histogram_only_once_the_flag_is_set() -> None:
    flag = [False]
    agg = _aggregator(flag)
    timer = {"name": "t", "type": "timer", "value": 5.0}
    agg.fold(_entry(1.5, timer, 1))
    agg.fold(_entry(1.5, {"name": "c", "type": "counter"}, 2))
    before = [d for d in _sources(agg.take(None)[0])]
    assert all("histogram" not in d["metrics"] for d in before)
    flag[0] = True
    agg.fold(_entry(2.5, timer, 3))
    agg.fold(_entry(2.5, {"name": "c", "type": "counter"}, 4))
    after = {d["metrics"]["type"]: d["metrics"] for d in _sources(agg.take(None)[0])}
    assert after["timer"]["histogram"] == histogram_fields(after["timer"]["sketch"])
    assert after["timer"]["histogram"]["counts"] == [1]
    assert "histogram" not in after["counter"]


def _sources(items: list[bytes]) -> list[dict[str, Any]]:
    import orjson

    return [orjson.loads(item.split(b"\n")[1]) for item in items]
