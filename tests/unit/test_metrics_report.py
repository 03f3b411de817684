"""The report's pure parts: spark lines, numbers, time ranges, combining raw and aggregated
numbers, raw values as a mergeable sketch, and the rows read from a scripted cluster answer."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_metrics_handler._aggregate import RELATIVE_ACCURACY, merged_quantile
from ecs_metrics_handler._metrics_report import (
    AggregatedPart,
    RawPart,
    combine,
    search_body,
)
from ecs_metrics_handler._report_format import (
    BLOCKS,
    MetricRow,
    TimeRange,
    format_number,
    parse_duration,
    parse_time,
    render_json,
    render_table,
    spark_line,
    time_range,
)
from ecs_metrics_handler._report_sketch import merge_sketches, values_sketch
from ecs_metrics_handler.exceptions import ConfigurationError

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc)
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)


def test_a_spark_line_scales_to_the_largest_bucket() -> None:
    assert spark_line([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == "▂▃▄▄▅▆▆▇██"
    assert spark_line([0, 300, 0, 700]) == "▁▄▁█"
    assert spark_line([0, 0, 0]) == "▁▁▁" and spark_line([]) == ""
    assert spark_line([1, 1000]) == "▂█"  # a tiny but non-zero bucket still shows


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=60))
def test_a_spark_line_is_monotonic_in_its_values(values: list[int]) -> None:
    line = spark_line(values)
    assert len(line) == len(values) and set(line) <= set(BLOCKS)
    levels = [BLOCKS.index(c) for c in line]
    ordered = sorted(zip(values, levels, strict=True))
    assert [level for _, level in ordered] == sorted(levels)  # a larger value, no lower block
    for value, level in zip(values, levels, strict=True):
        assert (level == 0) == (value == 0)
        if value and value == max(values):
            assert level == len(BLOCKS) - 1


def test_numbers_print_whole_or_with_four_significant_digits() -> None:
    assert [format_number(v) for v in (None, 28.0, 1540, 0.09166666, 500.5, 52.345678)] == [
        "-",
        "28",
        "1540",
        "0.09167",
        "500.5",
        "52.35",
    ]
    assert format_number(1.5e9 + 0.5) == "1.500e+09" and format_number(math.nan) == "-"
    assert format_number(0.00012) == "1.200e-04"


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_a_printed_number_reads_back_within_its_precision(value: float) -> None:
    text = format_number(value)
    assert abs(float(text) - value) <= max(abs(value) * 1e-3, 0.05 if abs(value) >= 100 else 1e-6)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("90s", 90), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("45", 45)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration("--since", text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0m", "soon", "15 minutes", "-5m", "m"])
def test_a_bad_duration_names_its_option(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_duration("--since", text)
    assert caught.value.option == "--since"


@given(st.lists(st.tuples(st.integers(1, 500), st.sampled_from("smhd")), min_size=1, max_size=4))
def test_a_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration("--since", text).total_seconds() == sum(n * unit[u] for n, u in parts)


def test_time_ranges_from_since_or_from_and_to() -> None:
    assert time_range(since=None, start=None, end=None, now=NOW) == TimeRange(
        NOW - timedelta(minutes=15), NOW
    )
    window = time_range(since="1h", start=None, end="2026-12-03T12:00:00Z", now=NOW)
    assert (window.start.hour, window.end.hour, window.seconds) == (11, 12, 3600)
    window = time_range(since=None, start="2026-12-03T10:00", end="2026-12-03 12:00+01:00", now=NOW)
    assert window.start == datetime(2026, 12, 3, 10, tzinfo=timezone.utc)  # no offset: UTC
    assert window.seconds == 3600  # 12:00+01:00 is 11:00 UTC


def test_a_range_that_ends_before_it_starts_or_is_said_twice_names_its_option() -> None:
    with pytest.raises(ConfigurationError) as caught:
        time_range(since="5m", start="2026-12-03T10:00Z", end=None, now=NOW)
    assert caught.value.option == "--since"
    with pytest.raises(ConfigurationError) as caught:
        time_range(since=None, start="2026-12-03T16:00Z", end=None, now=NOW)
    assert caught.value.option == "--from"
    with pytest.raises(ConfigurationError) as caught:
        parse_time("--to", "yesterday")
    assert caught.value.option == "--to"


@given(st.integers(1, 10**10), st.integers(1, 200))
def test_buckets_cover_the_range_and_no_more_than_one_width_beyond(
    millis: int, buckets: int
) -> None:
    window = TimeRange(NOW, NOW + timedelta(milliseconds=millis))
    width = window.bucket_ms(buckets)
    assert width * buckets >= millis and (width - 1) * buckets < max(millis, buckets)


def test_one_time_bucket_width_gives_an_aligned_histogram() -> None:
    window = TimeRange(NOW, NOW + timedelta(minutes=10))
    histogram = search_body(window, ["a.*"], 10)["aggs"]["names"]["aggs"]["types"]["aggs"]
    time = histogram["units"]["aggs"]["time"]["date_histogram"]
    assert time["fixed_interval"] == "60000ms"
    assert (window.start_ms - int(time["offset"].removesuffix("ms"))) % 60000 == 0


_counts = st.integers(0, 10**6)
_sums = st.integers(-(10**9), 10**9).map(float)


@given(_counts, _sums, _counts, _counts, _sums, st.sampled_from(["timer", "counter", "gauge"]))
def test_raw_and_aggregated_numbers_add_up(
    raw_count: int, raw_sum: float, agg_count: int, agg_unsummed: int, agg_sum: float, kind: str
) -> None:
    raw = RawPart(count=raw_count, valued=raw_count, total=raw_sum, minimum=1.0, maximum=5.0)
    agg = AggregatedPart(
        documents=1 if agg_count + agg_unsummed else 0,
        count=agg_count + agg_unsummed,
        summed=agg_count,
        total=agg_sum,
        minimum=0.5 if agg_count + agg_unsummed else None,
        maximum=9.0 if agg_count + agg_unsummed else None,
    )
    row = combine("m", kind, "ms", raw, agg, [raw_count, agg_count])
    assert row.count == raw_count + agg_count + agg_unsummed
    assert (row.raw_count, row.aggregated_count) == (raw_count, agg_count + agg_unsummed)
    if agg_unsummed:  # some aggregated events were not summed (gauges): no sum, no average
        assert row.average is None and row.known_sum is None
    elif raw_count + agg_count:
        assert row.average == pytest.approx((raw_sum + agg_sum) / (raw_count + agg_count))
        assert row.known_sum == raw_sum + agg_sum
    else:
        assert row.average is None
    assert row.minimum == (0.5 if agg.documents else 1.0)
    assert row.maximum == (9.0 if agg.documents else 5.0)
    assert row.rate(100) == row.count / 100


def test_percentiles_of_raw_documents_come_from_the_cluster_only_without_aggregated_ones() -> None:
    estimate = {50.0: 3.0, 95.0: 9.0, 99.0: 10.0}
    raw = RawPart(count=10, valued=10, total=55.0, percentiles=estimate)
    row = combine("m", "timer", "ms", raw, AggregatedPart(), [])
    assert (row.percentiles, row.percentile_method, row.shape) == (estimate, "tdigest", "raw")
    mixed = combine("m", "timer", "ms", raw, AggregatedPart(documents=1, count=2, summed=2), [])
    assert (mixed.percentiles, mixed.percentile_method, mixed.shape) == ({}, None, "raw+agg")
    counter = combine("m", "counter", None, raw, AggregatedPart(), [])
    assert counter.percentiles == {}  # a counter's increments have no percentiles worth showing


_values = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=1e-6, max_value=1e9),
        st.floats(min_value=-1e9, max_value=-1e-6),
    ),
    min_size=1,
    max_size=300,
)


@given(_values, st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_raw_values_as_a_sketch_give_quantiles_within_its_accuracy(
    values: list[float], q: float
) -> None:
    found = merged_quantile(values_sketch(values, GAMMA, 0.0), q)
    exact = sorted(values)[int(q * (len(values) - 1))]
    assert abs(found - exact) <= (RELATIVE_ACCURACY + 1e-9) * abs(exact)


@given(_values, _values)
def test_raw_values_merge_with_a_stored_sketch_of_the_same_mapping(
    stored: list[float], raw: list[float]
) -> None:
    pytest.importorskip("ddsketch")
    from ecs_metrics_handler._sketch import BucketSketch, KeyCache, sketch_fields

    sketch = BucketSketch(KeyCache())
    for value in stored:
        sketch.add(value)
    fields = sketch_fields(sketch)
    merged = [fields, values_sketch(raw, fields["gamma"], fields["index_offset"])]
    everything = sorted(stored + raw)
    for q in (0.5, 0.95, 0.99):
        exact = everything[int(q * (len(everything) - 1))]
        found = merged_quantile(merged, q)
        assert abs(found - exact) <= (RELATIVE_ACCURACY + 1e-9) * abs(exact) + 1e-12
        assert merged_quantile(merge_sketches(merged), q) == found  # merged once, same answer


def _row(**fields: Any) -> MetricRow:
    return MetricRow(name="db.query", type="timer", unit="ms", **fields)


def test_the_table_lines_up_and_says_how_percentiles_were_computed() -> None:
    window = TimeRange(NOW - timedelta(minutes=10), NOW)
    rows = [
        _row(count=5, raw_count=5, valued=5, total=30.0, percentiles={50.0: 6.0, 95.0: 9.5},
             percentile_method="tdigest", buckets=[0, 5]),
        MetricRow(name="q", type="gauge", unit=None, count=3, aggregated_count=3,
                  complete_values=False, capped=True, percentile_method="ddsketch",
                  percentiles={50.0: 1.0, 95.0: 2.0, 99.0: 2.0}, buckets=[3, 0]),
    ]  # fmt: skip
    text = render_table(rows, "python_metrics-*", window, 2)
    lines = text.splitlines()
    assert lines[0] == (
        "report: python_metrics-* from 2026-12-03T14:50:00Z to 2026-12-03T15:00:00Z "
        "(600 s; spark line: 2 buckets of 300 s)"
    )
    assert " ".join(lines[2].split()) == "db.query timer ms raw 5 0.008333 30 6 6 9.5 - ▁█"
    assert " ".join(lines[3].split()) == "q gauge - agg 3 0.005 - - 1* 2* 2* █▁"
    assert lines[1].index("count") + len("count") == lines[2].index("5 ") + 1  # right-aligned
    assert "TDigest" in text and "sketches merged" in text
    assert "fetch limit" in text and "keep no sum" in text
    assert render_table([], "x", window, 2).endswith("report: no metrics in that range")
    assert '"p95": 9.5' in render_json(rows, "x", window, 2)


def test_rows_come_from_a_scripted_answer_with_buckets_aligned_to_the_start() -> None:
    from ecs_metrics_handler._metrics_report import _buckets, _parts

    window = TimeRange(NOW - timedelta(minutes=2), NOW)
    start = window.start_ms
    bucket = {
        "raw": {
            "doc_count": 2,
            "sum": {"value": 3.0},
            "sum_or_one": {"value": 4.0},
            "valued": {"value": 1},
            "min": {"value": 3.0},
            "max": {"value": 3.0},
            "percentiles": {"values": [{"key": 50.0, "value": 3.0}]},
        },
        "aggregated": {
            "doc_count": 1,
            "count": {"value": 6.0},
            "summed": {"count": {"value": 6.0}, "sum": {"value": 12.0}},
            "min": {"value": 1.0},
            "max": {"value": 2.0},
            "sketched": {"doc_count": 0},
        },
        "time": {
            "buckets": [
                {"key": start, "doc_count": 2,
                 "aggregated": {"doc_count": 0, "count": {"value": 0}}},
                {"key": start + 60_000, "doc_count": 1,
                 "aggregated": {"doc_count": 1, "count": {"value": 6.0}}},
                {"key": start + 120_000, "doc_count": 9,  # past the range: ignored
                 "aggregated": {"doc_count": 0, "count": {"value": 0}}},
            ]
        },
    }  # fmt: skip
    raw, agg = _parts("counter", bucket)
    assert (raw.count, raw.valued, raw.total) == (2, 2, 4.0)  # a counter without value counts 1
    raw, agg = _parts("timer", bucket)
    assert (raw.count, raw.valued, raw.total, raw.percentiles) == (2, 1, 3.0, {50.0: 3.0})
    assert (agg.documents, agg.count, agg.summed, agg.total) == (1, 6, 6, 12.0)
    assert _buckets(bucket, window, 2) == [2, 6]
