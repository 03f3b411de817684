"""Aggregation against the real node: documents per interval, exact totals, quantiles, caps.

Counts and sums are compared with exact ones computed here; values are whole numbers so that
float sums are exact in any order.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import pytest

from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler._aggregate import OVERFLOW_LABELS, RELATIVE_ACCURACY, merged_quantile

pytestmark = pytest.mark.slow


def _documents(client: Any, prefix: str) -> list[dict[str, Any]]:
    client.indices.refresh(index=f"{prefix}-*")
    found = client.search(index=f"{prefix}-*", body={"query": {"match_all": {}}, "size": 10_000})
    return [hit["_source"] for hit in found["hits"]["hits"]]


def _logger(name: str, handler: ElasticECSHandler) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    return log


def _exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_timers_over_ten_label_sets_arrive_as_ten_documents_per_interval(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """200,000 timers over 10 label sets in about 5 s with a 1 s interval: one document per
    label set and interval (a further part only for a record that reached the worker late, or
    after the final flush), exact count and sum, quantiles within 1 %."""
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=unique_name,
        install_template=True,
        aggregation_interval=1.0,
        # on a loaded machine the worker may fall behind for a moment: queue, never drop
        max_queue_records=250_000,
    )
    log = _logger(f"agg.{unique_name}", handler)
    rng = random.Random(7)
    values: dict[str, list[float]] = defaultdict(list)
    total, chunks, per_chunk = 200_000, 50, 4_000
    started = time.monotonic()
    try:
        for chunk in range(chunks):
            for _ in range(per_chunk):
                route = f"/r{rng.randrange(10)}"
                value = float(int(rng.lognormvariate(3, 1)) + 1)
                values[route].append(value)
                log.info("t", extra=metric("http.request", value, unit="ms", type="timer",
                                           labels={"route": route}))  # fmt: skip
            # spread the load over about 5 s (faster than that is fine on a loaded machine)
            pause = started + (chunk + 1) * 0.1 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        assert handler.flush(60)
        stats = handler.stats()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert stats["aggregated"] == total and stats["invalid"] == stats["dropped"] == 0
    docs = _documents(es_client, unique_name)
    assert len(docs) == stats["aggregates"] == stats["shipped"]
    by_interval: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        assert doc["metrics"]["aggregated"] is True
        by_interval[doc["event"]["start"]].append(doc)
    for start, group in by_interval.items():
        first_parts = [d for d in group if "part" not in d["metrics"]]
        assert len(first_parts) <= 10, start
        assert len({d["labels"]["route"] for d in first_parts}) == len(first_parts), start
    assert len(by_interval) >= 3  # the run spans several intervals
    assert sum(d["metrics"]["count"] for d in docs) == total
    assert sum(d["metrics"]["sum"] for d in docs) == sum(sum(v) for v in values.values())
    for route, mine in values.items():
        series = [d["metrics"] for d in docs if d["labels"]["route"] == route]
        assert sum(m["count"] for m in series) == len(mine)
        assert min(m["min"] for m in series) == min(mine)
        assert max(m["max"] for m in series) == max(mine)
        for q in (0.5, 0.9, 0.99):
            exact = _exact_quantile(mine, q)
            merged = merged_quantile([m["sketch"] for m in series], q)
            assert abs(merged - exact) <= RELATIVE_ACCURACY * exact, (route, q)


def test_twenty_thousand_label_sets_against_max_series_stay_bounded_and_exact(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """20,000 label sets, max_series=1000: at most 1,001 series held, overflow counted, exact."""
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=unique_name,
        aggregation_interval=3600,
        max_series=1000,
    )
    log = _logger(f"agg.{unique_name}", handler)
    held = []
    try:
        for i in range(20_000):
            log.info("c", extra=metric("jobs.done", i % 7, type="counter", labels={"job": i}))
            if i % 2000 == 1999:
                held.append(handler._worker._batcher._aggregator.series_count())  # type: ignore[union-attr]
        assert handler.flush(60)
        held.append(handler._worker._batcher._aggregator.series_count())  # type: ignore[union-attr]
        stats = handler.stats()
    finally:
        log.removeHandler(handler)
        handler.close()
    # one hour interval: at most two open at once if the run crosses an hour boundary
    assert max(held) <= 2 * 1001
    docs = _documents(es_client, unique_name)
    assert sum(d["metrics"]["count"] for d in docs) == 20_000
    assert sum(d["metrics"]["sum"] for d in docs) == sum(i % 7 for i in range(20_000))
    overflow = [d for d in docs if d.get("labels") == dict(OVERFLOW_LABELS)]
    assert overflow and len(docs) <= 2 * 1001
    assert stats["aggregated_overflow"] == sum(d["metrics"]["count"] for d in overflow)
    assert stats["aggregated_overflow"] >= 20_000 - 2 * 1000


def _aggregating_child(n: int) -> None:
    log = logging.getLogger("agg.forked")
    for _ in range(n):
        log.info("c", extra=metric("forked.hits", 1, type="counter", labels={"same": "series"}))
    # multiprocessing's child exits through os._exit(): the handler's finalizer closes it,
    # which ships the child's open interval


_SPAWNED = """
import logging, sys
from ecs_metrics_handler import ElasticECSHandler, metric

handler = ElasticECSHandler(hosts=[sys.argv[1]], es_index_name=sys.argv[2],
                            aggregation_interval=3600)
log = logging.getLogger("agg.spawned")
log.setLevel(logging.INFO)
log.addHandler(handler)
for _ in range(1000):
    log.info("c", extra=metric("forked.hits", 1, type="counter", labels={"same": "series"}))
handler.close()
"""


def test_forked_and_spawned_processes_counting_the_same_series_never_overwrite_each_other(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """A parent, 4 forked children and 2 spawned processes count into the same series: every
    process's document arrives (distinct ids and process.pid), the total is exact."""
    spawned = [
        subprocess.Popen([sys.executable, "-c", _SPAWNED, es_server.url, unique_name])
        for _ in range(2)
    ]
    handler = ElasticECSHandler(
        hosts=[es_server.url], es_index_name=unique_name, aggregation_interval=3600
    )
    log = _logger("agg.forked", handler)
    try:
        for _ in range(500):
            log.info("c", extra=metric("forked.hits", 1, type="counter", labels={"same": "series"}))
        # the parent's open interval holds 500 when the children are forked
        ctx = multiprocessing.get_context("fork")
        children = [ctx.Process(target=_aggregating_child, args=(1000,)) for _ in range(4)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
            assert child.exitcode == 0
        assert handler.flush(60)
        for process in spawned:
            assert process.wait(60) == 0
    finally:
        log.removeHandler(handler)
        handler.close()
        for process in spawned:
            if process.poll() is None:
                process.kill()
    docs = _documents(es_client, unique_name)
    assert sum(d["metrics"]["sum"] for d in docs) == 500 + 4 * 1000 + 2 * 1000
    pids = {d["process"]["pid"] for d in docs}
    assert len(pids) == 7 and os.getpid() in pids
    assert len({d["agent"]["ephemeral_id"] for d in docs}) == 7


def test_time_series_mode_stores_aggregates_and_a_replayed_interval_is_a_duplicate(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """index_mode="time_series": the template makes a time-series index whose _id the node
    derives from the dimensions; sending the same documents again is a 409 for each."""
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=unique_name,
        install_template=True,
        aggregation_interval=1.0,
        index_mode="time_series",
    )
    log = _logger(f"agg.{unique_name}", handler)
    try:
        for i in range(300):
            log.info("c", extra=metric("jobs", 1, type="counter", labels={"queue": f"q{i % 3}"}))
            log.info("t", extra=metric("latency", i + 1, type="timer", unit="ms"))
        assert handler.flush(60)
        stats = handler.stats()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert stats["dead_lettered"] == 0 and stats["aggregated"] == 600
    settings = es_client.indices.get_settings(index=f"{unique_name}-*")
    (index_settings,) = settings.values()
    assert index_settings["settings"]["index"]["mode"] == "time_series"
    docs = _documents(es_client, unique_name)
    assert len(docs) == stats["aggregates"] == stats["shipped"]
    assert sum(d["metrics"]["count"] for d in docs) == 600
    jobs = [d for d in docs if d["metrics"]["name"] == "jobs"]
    assert sum(d["metrics"]["sum"] for d in jobs) == 300
    # A replay sends the same documents again: the node derives the same _id, a 409 each.
    (index,) = settings
    operations: list[Any] = []
    for doc in docs:
        operations += [{"create": {"_index": index}}, doc]
    answer = es_client.bulk(operations=operations)
    statuses = [item["create"]["status"] for item in answer["items"]]
    assert statuses == [409] * len(docs)
    assert _documents(es_client, unique_name) and es_client.count(index=index)["count"] == len(docs)


def test_opensearch_stores_aggregates_with_the_same_template(
    os_server: Any, os_client: Any, unique_name: str
) -> None:
    """On OpenSearch aggregation works in the standard index mode: exact sums, sketch stored."""
    handler = ElasticECSHandler(
        hosts=[os_server.url],
        backend="opensearch",
        es_index_name=unique_name,
        install_template=True,
        aggregation_interval=3600,
    )
    log = _logger(f"agg.{unique_name}", handler)
    try:
        for i in range(1000):
            log.info("t", extra=metric("os.timer", i % 50 + 1, type="timer", labels={"n": i % 2}))
        assert handler.flush(60)
    finally:
        log.removeHandler(handler)
        handler.close()
    docs = _documents(os_client, unique_name)
    assert sum(d["metrics"]["count"] for d in docs) == 1000
    assert sum(d["metrics"]["sum"] for d in docs) == sum(i % 50 + 1 for i in range(1000))
    assert all(d["metrics"]["sketch"]["positive"]["counts"] for d in docs)
    index = next(iter(os_client.indices.get(index=f"{unique_name}-*")))
    mapping = os_client.indices.get_mapping(index=index)[index]["mappings"]
    metrics = mapping["properties"]["metrics"]["properties"]
    assert metrics["p99"]["type"] == "double" and metrics["sketch"]["enabled"] is False
