"""The batcher thread: captured entries off the handler's queue, into the ledger as batches.

:class:`Batcher` wakes when ``buffer_size`` records wait, every ``flush_frequency_in_sec``, or
on ``flush()``, takes the captured entries off the queue and builds them into batches
(:func:`~._batching.build_batch`) for the :class:`~._ledger.Ledger`. It never touches the
network or the disk, so when the sender is stuck it keeps memory bounded: batches beyond
``max_pending_bytes`` go to the spooler. With ``aggregation_interval`` it folds metrics into
the :class:`~._aggregate.Aggregator`'s series instead, and ships the documents of each interval
once it ended (it then also wakes at interval boundaries), and of every open one on ``flush()``
and when stopping; until then the ledger holds those records (:meth:`~._ledger.Ledger.hold`)
so that ``flush()`` waits for them. It takes entries off the queue and folds them in one
hold of the aggregator's lock, which the logging call only tries when it folds a metric itself
(:meth:`~._aggregate.Aggregator.fold_now`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._aggregate import CLOSE_GRACE, Aggregator
from ._batching import build_batch, describe
from ._breaker import OutageBreaker
from ._capture import Entry
from ._dead_letter import DeadLetter
from ._document import DocumentBuilder
from ._encoder import BulkEncoder
from ._index import IndexNamer
from ._ledger import Batch, Ledger
from ._report import Reporter
from ._stats import DeliveryStats
from .exceptions import InvalidMetricError

__all__ = ["Batcher", "fold_entries"]


class Batcher:
    """Builds the queued entries of one handler into ledger batches; runs on its own thread.

    ``queue`` is the handler's deque of captured entries (the handler appends, the batcher
    pops: both atomic). ``chunk_docs`` is the number of entries per batch, ``interval`` the
    longest sleep (seconds) between two rounds, ``wall_clock`` the clock (seconds since the
    epoch) aggregation intervals are cut by. ``spooling`` says whether a failure folder is
    configured; with one, a backlog spills once the queue holds 80 % of
    ``max_queue_records``. ``out_of_time`` says whether a closing handler's time to build is
    up. ``wake`` is the event the batcher sleeps on; ``halt`` and ``stopping`` are the worker's;
    ``done`` is set when the batcher has handed in its last batches.
    """

    def __init__(
        self,
        queue: deque[Entry],
        ledger: Ledger,
        breaker: OutageBreaker,
        *,
        builder: DocumentBuilder,
        namer: IndexNamer,
        id_prefix: str,
        aggregator: Aggregator | None,
        stats: DeliveryStats,
        reporter: Reporter,
        spooling: bool,
        chunk_docs: int,
        interval: float,
        max_queue_records: int,
        wall_clock: Callable[[], float],
        out_of_time: Callable[[], bool],
        wake: threading.Event,
        halt: threading.Event,
        stopping: threading.Event,
        done: threading.Event,
    ) -> None:
        self._queue = queue
        self._ledger = ledger
        self._breaker = breaker
        self._build_source = builder.build_source
        encoder = BulkEncoder(builder, namer, id_prefix)
        self._encode = encoder.encode if encoder.enabled else None
        self._namer = namer
        self._id_prefix = id_prefix
        #: with ``aggregation_interval``: the series the batcher folds entries into
        self._aggregator = aggregator
        self._stats = stats
        self._reporter = reporter
        self._spooling = spooling
        self._bulk_docs = chunk_docs
        self._interval = interval
        self._queue_high_water = max(1, int(max_queue_records * 0.8))
        self._wall_clock = wall_clock
        self._out_of_time = out_of_time
        self._wake = wake
        self._halt = halt
        self._stopping = stopping
        self._done = done
        #: flush() calls so far, and the count the batcher last shipped open series for
        self._flush_requests = 0
        self._flushes_served = 0
        #: a wake-up is asked for and not taken yet (one wake-up per batch, not per record)
        self.wake_pending = False
        #: the handler is closing: from now on a backlog goes to the spooler instead of waiting
        self.closing = False

    def wake(self) -> None:
        """Ask the batcher to take what is queued now (no lock, never blocks)."""
        self.wake_pending = True
        self._wake.set()

    def count_flush(self) -> None:
        """Note a ``flush()`` call: the next round also ships the open aggregation series."""
        self._flush_requests += 1

    def queue_head(self) -> int | None:
        """The sequence number of the oldest entry still queued, None when the queue is empty."""
        try:
            return self._queue[0].seq
        except IndexError:
            return None

    def run(self) -> None:
        """The batcher thread's loop; ends when stopping, once the queue is empty or time is up."""
        try:
            while True:
                self._wake.wait(self._wait_time())
                self._wake.clear()
                self.wake_pending = False
                # Read before draining: what a flush() waits for was queued before it asked.
                flushes = self._flush_requests
                now = self._wall_clock()
                try:
                    self._drain()
                    if self._aggregator is not None:
                        stopping = self._stopping.is_set()
                        everything = stopping or flushes != self._flushes_served
                        self._flushes_served = flushes
                        self._ship_aggregates(None if everything else now)
                        # Calls that found the lock taken queued their metrics: fold them
                        # now, so that the next calls fold on their own thread again.
                        self._drain()
                except Exception:  # pragma: no cover - a bug; never let the thread die silently
                    self._reporter.error(
                        "batcher", "ecs_metrics_handler: batcher failed", exc_info=True
                    )
                if self._stopping.is_set() and (not self._queue or self._out_of_time()):
                    if self._aggregator is not None:
                        self._ship_aggregates(None)
                    return
        finally:
            self._done.set()

    def finish_here(self) -> None:
        """Closing with no batcher thread (never started, or died): do its last round here.

        Builds what is queued and every open aggregation series on the calling thread, then
        sets ``done``. Blocks while the ledger has no room, until the closing handler's time
        to build is up.
        """
        self._drain()
        self._ship_aggregates(None)
        self._done.set()

    def _must_spill(self) -> bool:
        """Whether a backlog over ``max_pending_bytes`` goes to the spooler now.

        While the cluster is merely slow the batcher waits instead (back-pressure), leaving
        records in the queue; it spills when the cluster is down, when the handler is
        closing (so that a stuck cluster does not leave the whole queue to the last second),
        or, with a failure folder, when the queue nears ``max_queue_records``.
        """
        if self._breaker.down or self.closing:
            return True
        # Without a failure folder a spill is a drop: keep waiting, the queue's own bound
        # (and emit's short wait for room) decides instead.
        return self._spooling and len(self._queue) >= self._queue_high_water

    def _drain(self) -> None:
        queue = self._queue
        ledger = self._ledger
        aggregator = self._aggregator
        while queue and not self._out_of_time():
            ledger.wait_for_room(self._must_spill)
            ledger.building(self.queue_head())
            if aggregator is None:
                self._add_batch(self._take_entries())
                continue
            # Taken and folded in one hold of the lock: an application thread folds a metric
            # itself (Aggregator.fold_now) only with the queue empty and the lock free, so
            # nothing it folds overtakes an older record (a gauge's last value).
            with aggregator.lock:
                entries = self._take_entries()
                metrics = [e for e in entries if e.payload is not None]
                rejected = fold_entries(aggregator, metrics, self._stats)
                held = aggregator.held_min_seq()
            self._ledger.hold(held)
            self._add_batch(entries, rejected)

    def _take_entries(self) -> list[Entry]:
        """Up to ``bulk_docs`` entries from the head of the queue."""
        queue = self._queue
        entries: list[Entry] = []
        try:
            for _ in range(self._bulk_docs):
                entries.append(queue.popleft())
        except IndexError:
            pass
        return entries

    def _wait_time(self) -> float:
        """Seconds the batcher sleeps: the flush interval, or less when an interval is due."""
        aggregator = self._aggregator
        if aggregator is None:
            return self._interval
        step = aggregator.interval
        now = self._wall_clock()
        due = (now // step + 1) * step + CLOSE_GRACE - now
        return max(0.0, min(self._interval, due))

    def _add_batch(self, taken: list[Entry], rejected: list[DeadLetter] | None = None) -> None:
        """Build the entries ``taken`` from the queue into a batch for the ledger (with
        aggregation, only the plain log records: the metrics were folded); their rejects, and
        those ``rejected`` already, go to the spooler."""
        if not taken:
            self._ledger.building(None)
            return
        first_seq = min(e.seq for e in taken)
        entries = taken if self._aggregator is None else [e for e in taken if e.payload is None]
        rejected = [] if rejected is None else rejected
        batch = None
        if entries:
            batch, built_rejects = build_batch(
                entries, self._build_source, self._namer, self._id_prefix, self._encode
            )
            rejected.extend(built_rejects)
        if rejected:
            self._stats.add("invalid", len(rejected))
            self._reporter.warning(
                "invalid",
                "ecs_metrics_handler: %d record(s) could not become documents, first: %s",
                len(rejected),
                rejected[0].reason,
            )
            if self._spooling:
                self._ledger.add_letters(rejected, first_seq)
        if batch is None:
            self._ledger.building(None)
        else:
            self._ledger.add(batch, must_spill=self._must_spill, closing=self._halt.is_set())

    def _ship_aggregates(self, now: float | None) -> None:
        """The documents of the intervals ended before ``now`` (all when None) into the ledger."""
        aggregator = self._aggregator
        if aggregator is None or not aggregator.due(now):
            return  # nothing to take: leave the lock to the logging calls
        with aggregator.lock:
            items, min_seq = aggregator.take(now)
            held = aggregator.held_min_seq()
        if items and min_seq is not None:
            self._stats.add("aggregates", len(items))
            batch = Batch(items=items, min_seq=min_seq, nbytes=sum(len(i) for i in items))
            # Until hold() below, the old hold still covers these records: flush sees no gap.
            self._ledger.add(batch, must_spill=self._must_spill, closing=self._halt.is_set())
        self._ledger.hold(held)


def fold_entries(aggregator: Aggregator, entries: list[Entry], stats: Any) -> list[DeadLetter]:
    """Fold ``entries`` into ``aggregator``; return the dead letters of the invalid ones.

    Counts ``aggregated`` and ``aggregated_overflow`` in ``stats`` (a
    :class:`~._stats.DeliveryStats`); the caller counts the rejects as ``invalid``. Call with
    the aggregator's lock held.
    """
    rejected: list[DeadLetter] = []
    folded, overflowed = aggregator.folded, aggregator.overflowed
    fast, fold = aggregator.fold_fast, aggregator.fold
    for entry in entries:
        try:
            if not fast(entry):
                fold(entry)
        except InvalidMetricError as e:
            rejected.append(DeadLetter(f"invalid metric: {e.reason}", record=describe(entry)))
        except Exception as e:
            reason = f"cannot aggregate metric: {type(e).__name__}: {e}"
            rejected.append(DeadLetter(reason, record=describe(entry)))
    stats.add("aggregated", aggregator.folded - folded)
    stats.add("aggregated_overflow", aggregator.overflowed - overflowed)
    return rejected
