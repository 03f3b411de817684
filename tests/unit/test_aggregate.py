"""Aggregation: folding metrics into series, interval boundaries, sketches and document ids.

The aggregator is driven directly with entries whose ``created`` is chosen (a fake clock), and
through the handler on FakeCluster for the flush/close paths.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
import subprocess
import sys
from itertools import count
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_metrics_handler import ConfigurationError, ElasticECSHandler, metric, replay
from ecs_metrics_handler._aggregate import (
    CLOSE_GRACE,
    OVERFLOW_LABELS,
    QUANTILES,
    RELATIVE_ACCURACY,
    Aggregator,
    merged_quantile,
)
from ecs_metrics_handler._batcher import fold_entries
from ecs_metrics_handler._capture import Entry
from ecs_metrics_handler._config import HandlerOptions, IndexMode
from ecs_metrics_handler._ledger import Ledger
from ecs_metrics_handler._stats import DeliveryStats
from ecs_metrics_handler._templates import load_templates
from ecs_metrics_handler.testing import FakeCluster

_seq = count(1)


def entry(created: float, payload: Any) -> Entry:
    out = Entry()
    out.seq = next(_seq)
    out.payload = payload
    out.message = "m"
    out.created = created
    out.name = "test"
    out.levelname = "INFO"
    return out


def make_aggregator(interval: float = 1.0, max_series: int = 100) -> Aggregator:
    return Aggregator(
        interval,
        max_series,
        index_of=lambda ts: f"idx-{int(ts)}",
        decorate=lambda doc: doc.setdefault("agent", {"ephemeral_id": "x"}),
        id_prefix="P",
        dataset="test.metrics",
        pid=42,
    )


def documents(items: list[bytes]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(action, source) pairs of bulk items."""
    out = []
    for item in items:
        action, source = item.rstrip(b"\n").split(b"\n")
        out.append((orjson.loads(action)["create"], orjson.loads(source)))
    return out


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def test_counter_gauge_and_timer_documents_carry_the_intervals_numbers() -> None:
    """Counters: sum and count; gauges: last/min/max/count; timers: count/sum/min/max/pXX."""
    agg = make_aggregator()
    for created, payload in [
        (10.1, {"name": "hits", "type": "counter", "value": 2}),
        (10.2, {"name": "hits", "type": "counter"}),
        (10.3, {"name": "temp", "type": "gauge", "value": 5.0}),
        (10.4, {"name": "temp", "type": "gauge", "value": 1.0}),
        (10.5, {"name": "temp", "type": "gauge", "value": 3.0}),
        (10.6, {"name": "q", "type": "timer", "value": 10.0, "unit": "ms"}),
        (10.7, {"name": "q", "type": "timer", "value": 30.0, "unit": "ms"}),
    ]:
        agg.fold(entry(created, payload))
    items, min_seq = agg.take(None)
    assert min_seq is not None
    by_name = {src["metrics"]["name"]: (action, src) for action, src in documents(items)}
    hits = by_name["hits"][1]["metrics"]
    assert (hits["sum"], hits["count"], hits["aggregated"]) == (3, 2, True)
    temp = by_name["temp"][1]["metrics"]
    assert (temp["last"], temp["min"], temp["max"], temp["count"]) == (3.0, 1.0, 5.0, 3)
    action, doc = by_name["q"]
    q = doc["metrics"]
    assert (q["count"], q["sum"], q["min"], q["max"], q["unit"]) == (2, 40.0, 10.0, 30.0, "ms")
    assert 10.0 <= q["p50"] <= 30.0 and set(q["sketch"]) >= {"gamma", "positive", "negative"}
    assert doc["@timestamp"] == doc["event"]["start"] == "1970-01-01T00:00:10.000Z"
    assert doc["event"]["end"] == "1970-01-01T00:00:11.000Z"
    assert doc["event"]["duration"] == 1_000_000_000
    assert doc["event"]["kind"] == "metric" and doc["process"] == {"pid": 42}
    assert doc["agent"] == {"ephemeral_id": "x"}
    assert action["_index"] == "idx-10"


def test_intervals_close_only_after_their_end_plus_grace() -> None:
    """take(now) ships the intervals that ended CLOSE_GRACE before now and keeps the open one."""
    agg = make_aggregator(interval=2.0)
    agg.fold(entry(100.5, {"name": "c", "type": "counter"}))
    agg.fold(entry(102.5, {"name": "c", "type": "counter"}))
    assert agg.take(102.0 + CLOSE_GRACE / 2) == ([], None)
    items, _ = agg.take(102.0 + CLOSE_GRACE)
    ((_, doc),) = documents(items)
    assert doc["event"]["start"] == "1970-01-01T00:01:40.000Z"
    assert agg.held_min_seq() is not None
    items, _ = agg.take(None)
    ((_, doc),) = documents(items)
    assert doc["event"]["start"] == "1970-01-01T00:01:42.000Z"
    assert agg.held_min_seq() is None


def test_records_after_a_flush_in_the_same_interval_ship_as_the_next_part() -> None:
    """A second part has its own id and metrics.part, so both documents count."""
    agg = make_aggregator()
    agg.fold(entry(5.1, {"name": "c", "type": "counter", "value": 1}))
    first, _ = agg.take(None)
    agg.fold(entry(5.2, {"name": "c", "type": "counter", "value": 2}))
    second, _ = agg.take(None)
    (a, d1), (b, d2) = documents(first) + documents(second)
    assert a["_id"] != b["_id"]
    assert "part" not in d1["metrics"] and d2["metrics"]["part"] == 1
    assert d1["metrics"]["sum"] + d2["metrics"]["sum"] == 3


def test_ids_are_deterministic_per_series_interval_and_prefix() -> None:
    """The same series and interval give the same id (a replay is a 409); another prefix not."""

    def ids(prefix: str) -> list[str]:
        agg = make_aggregator()
        agg._id_prefix = prefix
        for labels in ({"a": 1}, {"a": 2}):
            agg.fold(entry(7.5, {"name": "c", "type": "counter", "labels": labels}))
        return [action["_id"] for action, _ in documents(agg.take(None)[0])]

    assert ids("P") == ids("P")
    assert len(set(ids("P"))) == 2
    assert not set(ids("P")) & set(ids("Q"))


def test_series_beyond_max_series_fold_into_the_overflow_series() -> None:
    """Past the cap, new label sets go to one overflow series per name, counted; totals exact."""
    agg = make_aggregator(max_series=3)
    stats = DeliveryStats()
    entries = [
        entry(1.5, {"name": "c", "type": "counter", "value": 1, "labels": {"k": i}})
        for i in range(10)
    ]
    assert fold_entries(agg, entries, stats) == []
    assert agg.series_count() == 4
    docs = [d for _, d in documents(agg.take(None)[0])]
    overflow = [d for d in docs if d.get("labels") == dict(OVERFLOW_LABELS)]
    assert len(overflow) == 1 and overflow[0]["metrics"]["count"] == 7
    assert sum(d["metrics"]["sum"] for d in docs) == 10
    assert (stats.aggregated, stats.aggregated_overflow) == (10, 7)


def test_invalid_payloads_become_dead_letters_and_the_rest_folds() -> None:
    """A bad metric is rejected alone; it never reaches a series."""
    agg = make_aggregator()
    stats = DeliveryStats()
    rejected = fold_entries(
        agg,
        [entry(1.0, {"name": ""}), entry(1.0, {"name": "ok", "type": "counter"})],
        stats,
    )
    assert len(rejected) == 1 and "invalid metric" in rejected[0].reason
    assert stats.aggregated == 1


metric_events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=20, allow_nan=False),
        st.sampled_from(["counter", "gauge", "timer"]),
        st.sampled_from([None, {"r": "a"}, {"r": "b"}]),
        st.integers(min_value=-1000, max_value=1_000_000),
    ),
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(metric_events, st.sampled_from([0.5, 1.0, 3.0]), st.floats(min_value=0, max_value=25))
def test_any_sequence_folds_to_exact_counts_and_sums(
    events: list[tuple[float, str, dict[str, str] | None, int]], interval: float, cut: float
) -> None:
    """Whatever the metrics and wherever take() cuts, counts and sums over documents are exact."""
    agg = make_aggregator(interval=interval)
    items: list[bytes] = []
    for i, (created, kind, labels, value) in enumerate(events):
        payload: dict[str, Any] = {"name": f"m.{kind}", "type": kind, "value": value}
        if labels:
            payload["labels"] = labels
        agg.fold(entry(created, payload))
        if i == len(events) // 2:
            items += agg.take(cut)[0]
    items += agg.take(None)[0]
    docs = [d for _, d in documents(items)]
    for kind in ("counter", "gauge", "timer"):
        values = [v for _, k, _, v in events if k == kind]
        mine = [d["metrics"] for d in docs if d["metrics"]["type"] == kind]
        assert sum(m["count"] for m in mine) == len(values)
        if kind != "gauge":
            assert sum(m["sum"] for m in mine) == sum(values)
        else:
            assert max((m["max"] for m in mine), default=None) == max(values, default=None)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=500,
    )
)
def test_quantiles_are_within_the_stated_relative_error(values: list[float]) -> None:
    """p50/p90/p99 (and the merged sketch's) are within RELATIVE_ACCURACY of the exact ones."""
    agg = make_aggregator()
    for v in values:
        agg.fold(entry(3.2, {"name": "t", "type": "timer", "value": v}))
    ((_, doc),) = documents(agg.take(None)[0])
    for field, q in QUANTILES:
        exact = exact_quantile(values, q)
        for got in (doc["metrics"][field], merged_quantile(doc["metrics"]["sketch"], q)):
            assert abs(got - exact) <= RELATIVE_ACCURACY * exact * (1 + 1e-9)


@pytest.mark.parametrize(
    "extreme", [sys.float_info.max, 1.7637650858249372e308, -sys.float_info.max]
)
def test_timers_at_the_edge_of_the_float_range_keep_finite_quantiles(extreme: float) -> None:
    """A magnitude beyond the sketch's range counts in its top bucket: no overflow, the
    interval's other series still ship."""
    agg = make_aggregator()
    agg.fold(entry(3.1, {"name": "ok", "type": "timer", "value": 5.0}))
    agg.fold(entry(3.2, {"name": "huge", "type": "timer", "value": extreme}))
    by_name = {d["metrics"]["name"]: d["metrics"] for _, d in documents(agg.take(None)[0])}
    assert set(by_name) == {"ok", "huge"}
    huge = by_name["huge"]
    for field, q in QUANTILES:
        assert math.isfinite(huge[field]) and (huge[field] > 0) == (extreme > 0)
        assert abs(huge[field] - extreme) <= RELATIVE_ACCURACY * abs(extreme)
        merged = merged_quantile(huge["sketch"], q)  # the top bucket's value
        assert math.isfinite(merged) and (merged > 0) == (extreme > 0)
        assert sys.float_info.max / 1.03 <= abs(merged) <= sys.float_info.max
    assert huge["max"] == huge["min"] == extreme


def test_a_sketch_that_cannot_be_read_still_ships_the_exact_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should reading a sketch fail, its series ships count/sum/min/max; nothing is lost."""
    import ecs_metrics_handler._aggregate as module

    def broken(sketch: Any, q: float) -> float:
        raise OverflowError("math range error")

    monkeypatch.setattr(module, "sketch_quantile", broken)
    agg = make_aggregator()
    for v in (1.0, 3.0):
        agg.fold(entry(3.1, {"name": "t", "type": "timer", "value": v}))
    agg.fold(entry(3.2, {"name": "hits", "type": "counter", "value": 2}))
    by_name = {d["metrics"]["name"]: d["metrics"] for _, d in documents(agg.take(None)[0])}
    assert by_name["hits"]["sum"] == 2
    timer = by_name["t"]
    assert (timer["count"], timer["sum"], timer["min"], timer["max"]) == (2, 4.0, 1.0, 3.0)
    assert "p50" not in timer and "sketch" not in timer


def test_sketches_of_two_intervals_merge_to_the_quantiles_of_all_values() -> None:
    """metrics.sketch holds bucket counts: merging two documents' sketches stays accurate."""
    agg = make_aggregator()
    low = [float(v) for v in range(1, 501)]
    high = [float(v) for v in range(501, 1001)]
    for v in low:
        agg.fold(entry(1.5, {"name": "t", "type": "timer", "value": v}))
    for v in high:
        agg.fold(entry(2.5, {"name": "t", "type": "timer", "value": v}))
    sketches = [d["metrics"]["sketch"] for _, d in documents(agg.take(None)[0])]
    assert len(sketches) == 2
    exact = exact_quantile(low + high, 0.9)
    assert abs(merged_quantile(sketches, 0.9) - exact) <= RELATIVE_ACCURACY * exact


# -- through the handler ---------------------------------------------------------------------


def test_aggregation_options_are_checked_at_construction() -> None:
    """A wrong aggregation_interval or max_series fails naming the option."""
    for options in ({"aggregation_interval": 0}, {"aggregation_interval": "soon"}):
        with pytest.raises(ConfigurationError, match="aggregation_interval"):
            ElasticECSHandler(client=FakeCluster(), **options)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_series"):
        ElasticECSHandler(client=FakeCluster(), aggregation_interval=1, max_series=0)


def test_without_ddsketch_aggregation_fails_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The extra to install is named in the error."""
    monkeypatch.setitem(sys.modules, "ddsketch", None)
    with pytest.raises(ConfigurationError, match=r"ecs-metrics-handler\[aggregation\]"):
        ElasticECSHandler(client=FakeCluster(), aggregation_interval=1)


def test_flush_ships_the_open_interval_and_stats_account_for_it(logger: logging.Logger) -> None:
    """flush() ships every open series; emitted + aggregates == outcomes + aggregated."""
    cluster = FakeCluster()
    handler = ElasticECSHandler(
        client=cluster, es_index_name="unit", aggregation_interval=3600, flush_frequency_in_sec=5
    )
    logger.addHandler(handler)
    for i in range(1000):
        logger.info("t", extra=metric("db.query", i, type="timer", labels={"n": i % 3}))
    logger.info("bad", extra={"metric": {"name": ""}})
    assert handler.flush(5)
    docs = cluster.documents()
    assert len(docs) == 3
    assert sum(d["metrics"]["count"] for d in docs) == 1000
    assert sum(d["metrics"]["sum"] for d in docs) == sum(range(1000))
    stats = handler.stats()
    assert (stats["aggregated"], stats["aggregates"], stats["invalid"]) == (1000, 3, 1)
    outcomes = ("shipped", "spooled", "dead_lettered", "invalid", "dropped", "aggregated")
    assert stats["emitted"] + stats["aggregates"] == sum(stats[k] for k in outcomes)
    handler.close()


def test_close_ships_what_is_still_open(logger: logging.Logger) -> None:
    """Records folded but not flushed are shipped by close()."""
    cluster = FakeCluster()
    handler = ElasticECSHandler(client=cluster, es_index_name="unit", aggregation_interval=3600)
    logger.addHandler(handler)
    for _ in range(10):
        logger.info("c", extra=metric("hits", 1, type="counter"))
    handler.close()
    (doc,) = cluster.documents()
    assert (doc["metrics"]["sum"], doc["metrics"]["count"]) == (10, 10)


def test_time_series_mode_needs_aggregation_and_elasticsearch() -> None:
    """index_mode="time_series" without aggregation_interval, or on OpenSearch, fails early."""
    with pytest.raises(ConfigurationError, match=r"index_mode.*aggregation_interval"):
        ElasticECSHandler(client=FakeCluster(), index_mode="time_series")
    with pytest.raises(ConfigurationError, match=r"index_mode.*opensearch"):
        HandlerOptions.from_kwargs(
            index_mode="TIME_SERIES", aggregation_interval=1, backend="opensearch"
        )
    options = HandlerOptions.from_kwargs(index_mode="time_series", aggregation_interval=1)
    assert options.index_mode is IndexMode.TIME_SERIES


def test_time_series_templates_mark_dimensions_metrics_and_the_index_mode() -> None:
    """The series key and the process identity are dimensions, the numbers gauges."""
    bodies = load_templates("app", data_stream=False, time_series=True)
    settings = bodies["index"]["template"]["settings"]["index"]
    assert settings["mode"] == "time_series"
    assert "labels.*" in settings["routing_path"]
    props = bodies["component"]["template"]["mappings"]["properties"]
    for path in ("metrics.name", "service.name", "host.name", "agent.ephemeral_id"):
        node = props
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]["properties"]
        assert node[leaf]["time_series_dimension"] is True, path
    assert props["metrics"]["properties"]["p99"]["time_series_metric"] == "gauge"
    assert "time_series_dimension" not in str(load_templates("app", data_stream=False))


def test_time_series_mode_sends_no_document_ids(logger: logging.Logger) -> None:
    """The cluster derives the _id of a time-series document: the action line carries none."""
    agg = Aggregator(
        1.0,
        10,
        index_of=lambda ts: "i",
        decorate=lambda doc: None,
        id_prefix="P",
        dataset="d",
        pid=1,
        server_ids=True,
    )
    agg.fold(entry(1.5, {"name": "c", "type": "counter"}))
    ((action, _),) = documents(agg.take(None)[0])
    assert action == {"_index": "i"}


def test_a_spooled_interval_replayed_twice_is_counted_once(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """Aggregates spooled during an outage keep their ids: a second replay is all 409s."""
    cluster = FakeCluster()
    cluster.down = True
    folder = tmp_path / "spool"
    handler = ElasticECSHandler(
        client=cluster,
        es_index_name="unit",
        aggregation_interval=3600,
        flush_failure_folder=str(folder),
        max_retries=0,
        retry_backoff_initial=0.01,
        retry_backoff_max=0.05,
    )
    logger.addHandler(handler)
    for i in range(30):
        logger.info("c", extra=metric("hits", 2, type="counter", labels={"k": i % 3}))
    logger.removeHandler(handler)
    handler.close()
    stats = handler.stats()
    assert (stats["aggregated"], stats["aggregates"], stats["spooled"]) == (30, 3, 3)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)

    cluster.down = False
    first = replay(folder, client=cluster, es_index_name="unit")
    again = replay(copy, client=cluster, es_index_name="unit")
    assert (first.indexed, first.duplicates) == (3, 0)
    assert (again.indexed, again.duplicates) == (0, 3)
    docs = cluster.documents()
    assert len(docs) == 3 and sum(d["metrics"]["sum"] for d in docs) == 60


_EXIT_SCRIPT = """
import logging, sys
from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler.testing import FakeCluster

class Recording(FakeCluster):
    def bulk(self, *, operations, **kwargs):
        with open(sys.argv[1], "ab") as out:
            out.write(operations)
        return super().bulk(operations=operations, **kwargs)

log = logging.getLogger("exit")
log.setLevel(logging.INFO)
log.addHandler(ElasticECSHandler(client=Recording(), aggregation_interval=3600))
for _ in range(100):
    log.info("c", extra=metric("hits", 1, type="counter"))
# no flush, no close: the interpreter's exit (logging.shutdown) ships the open interval
"""


def test_interpreter_exit_ships_the_open_interval(tmp_path: Path) -> None:
    """A process that never flushes still ships its open series when it exits."""
    sent = tmp_path / "sent.ndjson"
    subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(sent)], check=True, timeout=60)
    lines = sent.read_bytes().splitlines()
    sources = [orjson.loads(line) for line in lines[1::2]]
    assert [(s["metrics"]["sum"], s["metrics"]["count"]) for s in sources] == [(100, 100)]


def test_records_held_in_open_series_are_not_settled() -> None:
    """flush() waits for folded records until their series are shipped (Ledger.hold)."""
    ledger = Ledger(100, 100, halted=lambda: False)
    ledger.hold(5)
    with ledger.cond:
        assert not ledger.settled_through(7, lambda: None)
        assert ledger.settled_through(4, lambda: None)
    ledger.hold(None)
    with ledger.cond:
        assert ledger.settled_through(7, lambda: None)


def test_integer_values_keep_integer_numbers_in_the_bytes() -> None:
    """Sums, last, min and max of int values are written as ints (``"sum":6``, not ``6.0``),
    float ones as floats: the numbers a document carries do not depend on the build."""
    agg = make_aggregator()
    for v in (1, 2, 3):
        agg.fold(entry(3.1, {"name": "hits", "type": "counter", "value": v}))
        agg.fold(entry(3.1, {"name": "depth", "type": "gauge", "value": v}))
        agg.fold(entry(3.1, {"name": "took", "type": "timer", "value": v}))
    agg.fold(entry(3.1, {"name": "ratio", "type": "gauge", "value": 2.0}))
    agg.fold(entry(3.1, {"name": "ticks", "type": "counter"}))
    raw = {
        orjson.loads(item.split(b"\n")[1])["metrics"]["name"]: item.split(b"\n")[1]
        for item in agg.take(None)[0]
    }

    def numbers(name: str, *fields: str) -> list[bytes]:
        return [re.search(rb'"%b":([-0-9.e+]+)[,}]' % f.encode(), raw[name])[1] for f in fields]  # type: ignore[index]

    assert numbers("hits", "sum") == [b"6"]
    assert numbers("depth", "last", "min", "max") == [b"3", b"1", b"3"]
    assert numbers("took", "sum", "min", "max") == [b"6", b"1", b"3"]
    assert numbers("ratio", "last", "min", "max") == [b"2.0", b"2.0", b"2.0"]
    assert numbers("ticks", "count", "sum") == [b"1", b"1"]
