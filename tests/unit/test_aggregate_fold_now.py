"""Aggregation on the application's thread: ``Aggregator.fold_now`` and the handler's use of it.

``fold_now`` must fold exactly what the batcher's path would (the same documents, byte for
byte), only when it may (lock free, known shape, series open, ``seq`` covered), never raise,
and leave the delivery counters exact.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_aggregate import documents, entry, make_aggregator
from test_aggregate_fast_path import events

from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler._aggregate import Aggregator
from ecs_metrics_handler._batcher import fold_entries
from ecs_metrics_handler._stats import DeliveryStats
from ecs_metrics_handler.testing import FakeCluster

TIMER = {"name": "db.query", "type": "timer", "unit": "ms", "labels": {"route": "/a"}}


def seeded(payload: dict[str, Any], created: float = 0.5) -> Aggregator:
    """An aggregator whose batcher already folded one metric of ``payload``'s series."""
    agg = make_aggregator()
    assert not fold_entries(agg, [entry(created, dict(payload, value=1.0))], DeliveryStats())
    return agg


def test_only_a_known_shape_of_an_open_series_folds_on_the_calling_thread() -> None:
    agg = make_aggregator()
    first = entry(0.5, dict(TIMER, value=1.0))
    assert agg.fold_now(first.payload, first.created, first.seq) is False  # no interval yet
    fold_entries(agg, [first], DeliveryStats())
    later = entry(0.6, dict(TIMER, value=2.0))
    assert agg.fold_now(later.payload, later.created, later.seq)
    other_interval = entry(1.5, dict(TIMER, value=3.0))
    assert not agg.fold_now(other_interval.payload, other_interval.created, other_interval.seq)
    other_series = entry(0.7, dict(TIMER, labels={"route": "/b"}, value=4.0))
    assert not agg.fold_now(other_series.payload, other_series.created, other_series.seq)
    assert (agg.folded, agg.folded_now) == (1, 1)
    ((_, source),) = documents(agg.take(None)[0])
    assert (source["metrics"]["count"], source["metrics"]["sum"]) == (2, 3.0)


def test_nothing_folds_while_the_lock_is_held_or_for_a_record_older_than_its_interval() -> None:
    older = entry(0.4, dict(TIMER, value=5.0))  # its seq is lower than the seeding record's
    agg = seeded(TIMER)
    with agg.lock:
        newer = entry(0.6, dict(TIMER, value=2.0))
        assert agg.fold_now(newer.payload, newer.created, newer.seq) is None  # busy
    # The ledger holds the interval from its lowest seq: an older one must take the queue.
    assert not agg.fold_now(older.payload, older.created, older.seq)
    assert agg.folded_now == 0


class Unhashable:
    def __hash__(self) -> int:
        raise ValueError("no hash")


def test_an_odd_payload_is_left_to_the_batcher_and_never_raises() -> None:
    agg = seeded(TIMER)
    odd: list[Any] = [
        {"name": "db.query", "labels": {"route": Unhashable()}, "value": 1.0},
        {"name": "db.query", "value": "1"},
        {"name": "db.query", "value": float("nan")},
        {"name": "db.query", "duration_ns": 5},
        {"value": 1.0},
    ]
    for payload in odd:
        assert not agg.fold_now(payload, 0.5, 10**9)
    assert not agg.lock.locked()


@settings(max_examples=200, deadline=None)
@given(events(), st.sets(st.integers(0, 80)))
def test_folding_on_the_calling_thread_gives_the_batchers_documents(
    batch: list[tuple[float, Any]], cuts: set[int]
) -> None:
    """Each metric tried with fold_now first (the batcher folding what it refuses) gives the
    documents, invalid reasons and counts of the batcher folding every metric in order."""
    entries = [entry(created, payload) for created, payload in batch]
    results = []
    for direct in (False, True):
        agg, stats = make_aggregator(), DeliveryStats()
        items: list[bytes] = []
        reasons: list[str] = []
        for i, e in enumerate(entries):
            if not (direct and agg.fold_now(e.payload, e.created, e.seq)):
                reasons += [d.reason for d in fold_entries(agg, [e], stats)]
            if i in cuts:
                items += agg.take(float(i % 5))[0]
        items += agg.take(None)[0]
        results.append((items, reasons, stats.aggregated + agg.folded_now))
    assert results[1] == results[0]


def aggregating_handler(cluster: FakeCluster) -> ElasticECSHandler:
    return ElasticECSHandler(
        client=cluster, es_index_name="unit", aggregation_interval=3600, flush_frequency_in_sec=5
    )


def series_opened(handler: ElasticECSHandler) -> threading.Event:
    """Set once the batcher has folded something into an open series (the ledger holds it)."""
    opened = threading.Event()
    ledger = handler._worker._ledger
    hold = ledger.hold

    def noting(min_seq: int | None) -> None:
        hold(min_seq)
        if min_seq is not None:
            opened.set()

    ledger.hold = noting  # type: ignore[method-assign]
    return opened


def test_the_handler_folds_most_metrics_itself_and_counts_every_one(logger: logging.Logger) -> None:
    cluster = FakeCluster()
    handler = aggregating_handler(cluster)
    opened = series_opened(handler)
    logger.addHandler(handler)
    logger.info("t", extra=metric("db.query", 0.0, type="timer", labels={"route": "/a"}))
    assert opened.wait(10)  # the first one queued woke the batcher, which opened the series
    for i in range(1, 1000):
        logger.info("t", extra=metric("db.query", float(i), type="timer", labels={"route": "/a"}))
    logger.info("q", extra=metric("queue.depth", 7, type="gauge"))
    assert handler.flush(5)
    stats = handler.stats()
    # All but a few (those logged while the batcher's timer held the lock) fold at the call.
    assert handler._aggregator is not None and handler._aggregator.folded_now >= 900
    docs = [d["metrics"] for d in cluster.documents()]
    timers = [m for m in docs if m["name"] == "db.query"]
    assert sum(m["count"] for m in timers) == 1000
    assert sum(m["sum"] for m in timers) == sum(range(1000))
    assert stats["aggregated"] == 1001
    outcomes = ("shipped", "spooled", "dead_lettered", "invalid", "dropped", "aggregated")
    assert stats["emitted"] + stats["aggregates"] == sum(stats[k] for k in outcomes)
    assert stats["pending"] == 0
    handler.close()


def test_a_gauges_last_value_is_the_last_logged(logger: logging.Logger) -> None:
    """Folding on the calling thread never overtakes a record still queued."""
    cluster = FakeCluster()
    handler = aggregating_handler(cluster)
    logger.addHandler(handler)
    for round_ in range(5):
        for i in range(300):
            logger.info("g", extra=metric("queue.depth", round_ * 1000 + i, type="gauge"))
        handler.flush(5)
    handler.close()
    last = {d["metrics"].get("part", 0): d["metrics"]["last"] for d in cluster.documents()}
    assert last == {part: part * 1000 + 299 for part in range(5)}


def test_a_payload_changed_after_the_call_is_folded_as_it_was(logger: logging.Logger) -> None:
    cluster = FakeCluster()
    handler = aggregating_handler(cluster)
    logger.addHandler(handler)
    for i in range(11):
        payload = metric("hits", 1, type="counter", labels={"route": "/a"})
        logger.info("c", extra=payload)
        payload["metric"]["value"] = 1000
        payload["metric"]["labels"]["route"] = "/changed"
        if i == 0:
            handler.flush(5)  # the batcher opened the series: the next ten fold at the call
    handler.close()
    assert sum(d["metrics"]["sum"] for d in cluster.documents()) == 11
    assert {d["labels"]["route"] for d in cluster.documents()} == {"/a"}


def test_threads_folding_beside_the_batcher_keep_totals_exact(logger: logging.Logger) -> None:
    cluster = FakeCluster()
    handler = ElasticECSHandler(
        client=cluster, es_index_name="unit", aggregation_interval=3600, buffer_size=50
    )
    logger.addHandler(handler)
    per_thread, threads = 3000, 4

    def work(n: int) -> None:
        for i in range(per_thread):
            labels = {"route": f"/{i % 7}"}
            logger.info("t", extra=metric("db.query", float(n), type="timer", labels=labels))
            if i % 500 == 0:
                handler.flush(5)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert handler.flush(10)
    stats = handler.stats()
    handler.close()
    docs = [d["metrics"] for d in cluster.documents()]
    assert sum(m["count"] for m in docs) == per_thread * threads
    assert sum(m["sum"] for m in docs) == per_thread * sum(range(threads))
    assert stats["aggregated"] == per_thread * threads and stats["pending"] == 0


def test_the_call_folds_only_when_nothing_older_waits_in_the_queue(logger: logging.Logger) -> None:
    """Driven by hand (the worker's threads never start): a metric queued because the lock
    was busy keeps every later one of the process behind it until the queue is empty."""
    handler = aggregating_handler(FakeCluster())
    queue = handler.buffer
    woken: list[bool] = []

    def offer(entry: Any, *, wake: bool = False) -> bool:
        queue.append(entry)
        woken.append(wake)
        return True

    handler._worker.offer = offer  # type: ignore[method-assign]
    agg = handler._aggregator
    assert agg is not None
    logger.addHandler(handler)
    gauge = {"name": "queue.depth", "type": "gauge"}

    def log(value: int) -> None:
        logger.info("g", extra={"metric": dict(gauge, value=value)})

    log(1)  # no series yet: queued, and the batcher woken to open it
    assert (len(queue), woken) == (1, [True])
    fold_entries(agg, [queue.popleft()], DeliveryStats())  # the batcher's part
    with agg.lock:  # the batcher busy: the call does not wait, it queues
        log(2)
    log(3)  # the lock is free, but 2 waits: 3 must not overtake it
    assert [e.payload["value"] for e in queue] == [2, 3] and agg.folded_now == 0
    assert woken == [True, False, False]  # the lock busy: the batcher is at work already
    fold_entries(agg, [queue.popleft(), queue.popleft()], DeliveryStats())
    log(4)
    assert not queue and agg.folded_now == 1
    ((_, source),) = documents(agg.take(None)[0])
    assert (source["metrics"]["last"], source["metrics"]["count"]) == (4, 4)
    logger.removeHandler(handler)


def test_an_interval_is_due_exactly_when_take_would_take_it() -> None:
    """The batcher takes the lock for take() only when due() says so."""
    agg = seeded(TIMER, created=0.5)  # the interval [0, 1)
    for now in (0.9, 1.0, 1.24, 1.25, 1.26, 3.0, None):
        due = agg.due(now)
        probe = make_aggregator()
        fold_entries(probe, [entry(0.5, dict(TIMER, value=1.0))], DeliveryStats())
        assert due == bool(probe.take(now)[0]), now
    assert not make_aggregator().due(None)
