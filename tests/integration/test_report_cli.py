"""``python -m ecs_metrics_handler report`` against real nodes, on raw and aggregated documents.

Known metrics are shipped through the handler (raw, and with ``aggregation_interval=60``) at
known times of a 10-minute range aligned to the minute, plus a few outside it; the report over
that range (10 buckets of 60 s, one aggregation interval each) must give exact counts, sums and
averages, percentiles within their stated error, and spark lines of the known shape. Values are
whole numbers so that sums are exact in any order.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler.cli import main

pytestmark = pytest.mark.slow

BUCKET = 60
BUCKETS = 10


class _At(logging.Filter):
    """Sets each record's ``created`` (the document's time) to ``at``."""

    at = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        record.created = self.at
        return True


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _ship(
    url: str, prefix: str, events: list[tuple[float, dict[str, Any]]], **options: Any
) -> None:
    handler = ElasticECSHandler(hosts=[url], es_index_name=prefix, install_template=True, **options)
    log = logging.getLogger(f"report.{prefix}.{len(options)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    clock = _At()
    log.addFilter(clock)
    log.addHandler(handler)
    try:
        for at, extra in events:
            clock.at = at
            log.info("m", extra=extra)
        assert handler.flush(60)
        stats = handler.stats()
    finally:
        log.removeHandler(handler)
        log.removeFilter(clock)
        handler.close()
    assert stats["spooled"] == stats["dropped"] == stats["invalid"] == 0, stats


def _timer(name: str, value: float) -> dict[str, Any]:
    return metric(name, value, unit="ms", type="timer")


@pytest.fixture(scope="module")
def start() -> float:
    """The range's start: a whole minute, 11 minutes ago (so the range lies in the past)."""
    return float(int(time.time()) // BUCKET * BUCKET - 11 * BUCKET)


def _in(start: float, bucket: int, i: int = 0) -> float:
    return start + bucket * BUCKET + 1 + (i % 50)


@pytest.fixture(scope="module")
def shipped(es_server: Any, start: float) -> Iterator[str]:
    """The index prefix holding the known metrics (see the module docstring)."""
    prefix = f"t-report-{os.getpid()}-{int(start)}"
    raw: list[tuple[float, dict[str, Any]]] = []
    value = 0
    for bucket in range(BUCKETS):  # raw.latency: bucket b holds b + 1 events, values 1..55
        for i in range(bucket + 1):
            value += 1
            raw.append((_in(start, bucket, i), _timer("raw.latency", value)))
    raw += [(_in(start, 3), metric("raw.orders", 3, type="counter"))]
    raw += [(_in(start, 4), metric("raw.orders", type="counter"))]  # counts 1
    raw += [(_in(start, 1, i), _timer("mixed.latency", v)) for i, v in enumerate(range(1, 51))]
    raw += [(start - 30, _timer("raw.latency", 1000)), (start + 610, _timer("raw.latency", 1000))]
    aggregated: list[tuple[float, dict[str, Any]]] = []
    for v in range(1, 1001):  # agg.latency: 300 events in bucket 2, 700 in bucket 7
        aggregated.append((_in(start, 2 if v <= 300 else 7, v), _timer("agg.latency", v)))
    aggregated += [(_in(start, 5, v), _timer("mixed.latency", v)) for v in range(51, 101)]
    aggregated += [(_in(start, 0), metric("agg.orders", 2, type="counter")) for _ in range(5)]
    aggregated += [(_in(start, 9), metric("agg.orders", type="counter")) for _ in range(3)]
    aggregated += [(_in(start, 6), metric("agg.depth", d, unit="jobs")) for d in (4, 9, 2)]
    aggregated += [(start - 90, _timer("agg.latency", 5000))]
    _ship(es_server.url, prefix, raw)
    _ship(es_server.url, prefix, aggregated, aggregation_interval=float(BUCKET))
    yield prefix


def _args(es_server: Any, prefix: str, start: float) -> list[str]:
    return [
        "report",
        "--hosts",
        es_server.url,
        "--index",
        prefix,
        "--from",
        _iso(start),
        "--to",
        _iso(start + BUCKETS * BUCKET),
        "--buckets",
        str(BUCKETS),
    ]


def _refresh(es_client: Any, prefix: str) -> None:
    es_client.indices.refresh(index=f"{prefix}-*")


def _within(found: float, exact: float, relative: float) -> bool:
    return abs(found - exact) <= relative * abs(exact)


def _exact_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_the_report_gives_exact_numbers_for_raw_aggregated_and_mixed_documents(
    es_server: Any, es_client: Any, shipped: str, start: float, capsys: pytest.CaptureFixture[str]
) -> None:
    _refresh(es_client, shipped)
    assert main([*_args(es_server, shipped, start), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seconds"] == 600 and report["bucket_seconds"] == 60
    rows = {row["name"]: row for row in report["metrics"]}
    names = ["agg.depth", "agg.latency", "agg.orders", "mixed.latency", "raw.latency"]
    assert sorted(rows) == [*names, "raw.orders"]

    raw = rows["raw.latency"]  # the events at start - 30 s and start + 610 s are outside
    assert (raw["count"], raw["sum"], raw["avg"], raw["from"]) == (55, 1540, 28, "raw")
    assert (raw["min"], raw["max"], raw["rate"]) == (1, 55, 55 / 600)
    assert raw["buckets"] == list(range(1, 11)) and raw["spark"] == "▂▃▄▄▅▆▆▇██"
    assert raw["percentile_method"] == "tdigest"
    values = [float(v) for v in range(1, 56)]
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        # TDigest interpolates between neighbours: within 1.5 of the exact rank's value here
        assert abs(raw[key] - _exact_rank(values, q)) <= 1.5, (key, raw[key])

    agg = rows["agg.latency"]
    assert (agg["count"], agg["sum"], agg["avg"], agg["from"]) == (1000, 500500, 500.5, "agg")
    assert (agg["min"], agg["max"], agg["aggregated_count"]) == (1, 1000, 1000)
    assert agg["buckets"] == [0, 0, 300, 0, 0, 0, 0, 700, 0, 0]
    assert agg["spark"] == "▁▁▄▁▁▁▁█▁▁"
    assert agg["percentile_method"] == "ddsketch" and not agg["capped"]
    values = [float(v) for v in range(1, 1001)]
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):  # DDSketch: within 1 %
        assert _within(agg[key], _exact_rank(values, q), 0.0101), (key, agg[key])

    mixed = rows["mixed.latency"]  # 50 raw values in bucket 1, 50 aggregated in bucket 5
    assert (mixed["count"], mixed["sum"], mixed["avg"], mixed["from"]) == (
        100,
        5050,
        50.5,
        "raw+agg",
    )
    assert (mixed["raw_count"], mixed["aggregated_count"]) == (50, 50)
    assert mixed["buckets"] == [0, 50, 0, 0, 0, 50, 0, 0, 0, 0]
    assert mixed["percentile_method"] == "ddsketch"
    values = [float(v) for v in range(1, 101)]
    for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        assert _within(mixed[key], _exact_rank(values, q), 0.0101), (key, mixed[key])

    orders = rows["raw.orders"]  # 3 + 1 (an increment without value counts 1)
    assert (orders["count"], orders["sum"], orders["avg"], orders["p50"]) == (2, 4, 2, None)
    orders = rows["agg.orders"]  # 5 x 2 + 3 x 1
    assert (orders["count"], orders["sum"], orders["p99"]) == (8, 13, None)
    assert orders["buckets"] == [5, 0, 0, 0, 0, 0, 0, 0, 0, 3]

    depth = rows["agg.depth"]  # an aggregated gauge keeps no sum and no sketch
    assert (depth["count"], depth["min"], depth["max"], depth["unit"]) == (3, 2, 9, "jobs")
    assert (depth["sum"], depth["avg"], depth["p50"], depth["percentile_method"]) == (None,) * 4


def test_the_report_keeps_to_the_names_asked_for_and_marks_capped_percentiles(
    es_server: Any, es_client: Any, shipped: str, start: float, capsys: pytest.CaptureFixture[str]
) -> None:
    _refresh(es_client, shipped)
    args = [*_args(es_server, shipped, start), "--name", "agg.*", "--fetch-limit", "1", "--json"]
    assert main(args) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["metrics"]}
    assert sorted(rows) == ["agg.depth", "agg.latency", "agg.orders"]
    latency = rows["agg.latency"]  # two interval documents, one fetched
    assert latency["capped"] and latency["count"] == 1000 and latency["avg"] == 500.5
    assert main(args[:-1]) == 0  # the table marks the capped percentiles
    table = capsys.readouterr().out
    (line,) = [line for line in table.splitlines() if line.startswith("agg.latency ")]
    assert line.split()[-4].endswith("*") and "more documents than the fetch limit" in table


def test_python_m_report_prints_the_table_with_spark_lines(
    es_server: Any, es_client: Any, shipped: str, start: float
) -> None:
    _refresh(es_client, shipped)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELASTICSEARCH_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ecs_metrics_handler", *_args(es_server, shipped, start)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"report: {shipped}-* from {_iso(start)[:19]}")
    (raw,) = [line for line in lines if line.startswith("raw.latency ")]
    assert raw.split()[1:8] == ["timer", "ms", "raw", "55", "0.09167", "1540", "28"]
    assert raw.endswith("▂▃▄▄▅▆▆▇██")
    (agg,) = [line for line in lines if line.startswith("agg.latency ")]
    assert agg.split()[3:8] == ["agg", "1000", "1.667", "500500", "500.5"]
    assert agg.endswith("▁▁▄▁▁▁▁█▁▁")
    assert any("TDigest" in line for line in lines)
    assert any("sketches merged" in line for line in lines)


def test_a_data_stream_is_reported_and_a_missing_one_reports_no_metrics(
    es_server: Any,
    es_client: Any,
    unique_name: str,
    start: float,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = f"metrics-{unique_name}-x"
    events = [(_in(start, 4, i), _timer("ds.latency", 2 * i)) for i in range(1, 4)]
    _ship(es_server.url, "python_metrics", events, data_stream=stream)
    es_client.indices.refresh(index=stream)
    args = ["report", "--hosts", es_server.url, "--data-stream", stream, "--json"]
    args += ["--from", _iso(start), "--to", _iso(start + 600), "--buckets", "10"]
    assert main(args) == 0
    (row,) = json.loads(capsys.readouterr().out)["metrics"]
    assert (row["count"], row["sum"], row["avg"], row["buckets"][4]) == (3, 12, 4, 3)
    missing = ["report", "--hosts", es_server.url, "--data-stream", f"{stream}-missing"]
    assert main(missing) == 0
    assert "report: no metrics in that range" in capsys.readouterr().out
    assert main([*missing, "--since", "soon"]) == 2
    assert "'--since'" in capsys.readouterr().err


def test_the_demo_ends_with_the_report_of_what_it_shipped(
    es_server: Any, unique_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--hosts", es_server.url, "--index", unique_name]) == 0
    out = capsys.readouterr().out
    assert f"report: {unique_name}-* from " in out
    (line,) = [line for line in out.splitlines() if line.startswith("db.query ")]
    assert line.split()[1:5] == ["timer", "ms", "raw", "5"]
    (line,) = [line for line in out.splitlines() if line.startswith("orders.placed ")]
    assert line.split()[1:7] == ["counter", "-", "raw", "1", "0.001111", "2"]


def test_the_report_reads_opensearch_too(
    os_server: Any,
    os_client: Any,
    unique_name: str,
    start: float,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Raw and aggregated documents through opensearch-py: the same exact numbers."""
    events = [(_in(start, b, i), _timer("os.latency", b + 1)) for b in (0, 9) for i in range(4)]
    _ship(os_server.url, unique_name, events, backend="opensearch")
    _ship(os_server.url, unique_name, events, backend="opensearch", aggregation_interval=60.0)
    os_client.indices.refresh(index=f"{unique_name}-*")
    args = ["report", "--opensearch", "--hosts", os_server.url, "--index", unique_name]
    args += ["--from", _iso(start), "--to", _iso(start + 600), "--buckets", "10", "--json"]
    assert main(args) == 0
    (row,) = json.loads(capsys.readouterr().out)["metrics"]
    assert (row["count"], row["sum"], row["avg"], row["from"]) == (16, 88, 5.5, "raw+agg")
    assert row["buckets"] == [8, 0, 0, 0, 0, 0, 0, 0, 0, 8] and row["spark"] == "█▁▁▁▁▁▁▁▁█"
    assert row["percentile_method"] == "ddsketch"
    assert _within(row["p50"], 1, 0.0101) and _within(row["p99"], 10, 0.0101)
