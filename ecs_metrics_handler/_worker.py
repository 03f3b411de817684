"""The background half of the handler: three threads around one ledger.

Started on first use, daemon threads:

``batcher``
    :class:`~._batcher.Batcher`: wakes when ``buffer_size`` records wait, every
    ``flush_frequency_in_sec``, or on ``flush()``, and builds the captured entries into
    batches for the :class:`~._ledger.Ledger` (with ``aggregation_interval``, folds into
    series the metrics that the logging call did not fold itself, see
    :meth:`~._aggregate.Aggregator.fold_now`, and ships each interval's documents once it
    ended). It never touches the
    network or the disk, so when the sender is stuck it keeps memory bounded: batches beyond
    ``max_pending_bytes`` go to the spooler.

``sender``
    :class:`~._sender.Sender`: ships one batch at a time with :func:`~._delivery.deliver`
    (judge, retry, back off), then settles it in the ledger or hands what is left to the
    spooler. While the :class:`~._breaker.OutageBreaker` is open, batches go straight to the
    spooler and one request now and then probes the cluster; once it answers, the sender
    replays the spooled segments, oldest first, through :func:`~._resend.send_items` (the
    path ``replay()`` uses).

``spooler``
    Writes what the ledger hands it (a backlog, an outage's batches, dead letters) with the
    :class:`~._folder_writer.FolderWriter`, many jobs to a segment (one fsync) up to 16 MiB,
    so that neither the batcher nor the sender waits on the disk.

Where a batch's fate is decided: only in :class:`~._ledger.Ledger` (its states and claims).
No lock an application thread needs is ever held while waiting on the network or the disk.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ._aggregate import Aggregator
from ._backoff import backoff_delay
from ._batcher import Batcher
from ._breaker import OutageBreaker
from ._capture import Entry
from ._delivery import CLOSING, RetryPolicy
from ._document import DocumentBuilder
from ._folder_writer import FolderWriter
from ._index import IndexNamer
from ._ledger import Ledger, SpillJob
from ._report import Reporter
from ._sender import SEGMENT_BYTES, Sender
from ._shipper import Shipper
from ._spool import Spool
from ._stats import DeliveryStats
from ._template_install import TemplateInstaller

__all__ = ["Worker"]

_MIN_BULK_DOCS = 500
#: When the queue is full, offer() waits at most this many steps of this many seconds before
#: refusing an entry: 10 ms without a failure folder, 1 s with one (where a drop would break
#: the promise that nothing is lost, and the disk sets the pace).
_ROOM_WAIT_STEPS = 10
_ROOM_WAIT_STEPS_SPOOLING = 1000
_ROOM_WAIT_STEP = 0.001
#: ``stop()`` returns within its timeout plus this grace (seconds) ...
_JOIN_GRACE = 1.0
#: ... of which this much is kept for writing the last documents (and one fsync)
_FINAL_WRITE_RESERVE = 0.6


class Worker:
    """Owns the batcher, sender and spooler threads of one handler. See the module docstring.

    ``queue`` is the handler's deque of captured entries (the handler appends, the batcher
    pops: both atomic). ``clock`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        queue: deque[Entry],
        *,
        builder: DocumentBuilder,
        namer: IndexNamer,
        shipper_factory: Callable[[], Shipper],
        spool: Spool | None,
        stats: DeliveryStats,
        reporter: Reporter,
        id_prefix: str,
        buffer_size: int,
        flush_interval: float,
        max_pending_bytes: int,
        max_queue_records: int,
        max_retries: int,
        backoff_initial: float,
        backoff_max: float,
        templates: Mapping[str, Any] | None = None,
        aggregation_interval: float | None = None,
        max_series: int = 10_000,
        server_ids: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._folder = FolderWriter(spool, stats, reporter)
        self._reporter = reporter
        bulk_docs = max(buffer_size, _MIN_BULK_DOCS)
        self._interval = flush_interval
        self._max_queue = max_queue_records
        self._wake_at = buffer_size
        self._room_wait_steps = _ROOM_WAIT_STEPS if spool is None else _ROOM_WAIT_STEPS_SPOOLING
        self._clock = clock
        # With aggregation, the installer detects whether the cluster maps ``histogram``; the
        # sender installs the templates as soon as it starts (see Sender.run), and aggregate
        # documents built once that is known carry ``metrics.histogram``.
        installer = TemplateInstaller(
            templates, reporter, histogram=aggregation_interval is not None
        )
        aggregator = (
            None
            if aggregation_interval is None
            else Aggregator(
                aggregation_interval,
                max_series,
                index_of=namer,
                decorate=builder.decorate,
                id_prefix=id_prefix,
                dataset=builder.options.resolved_event_dataset,
                pid=builder.pid,
                server_ids=server_ids,
                histogram=installer.histogram_mapped.is_set,
                backlog=queue,
            )
        )
        #: with ``aggregation_interval``: the series (the logging call folds into them through
        #: :meth:`~._aggregate.Aggregator.fold_now`, which folds only while ``queue`` is empty)
        self.aggregator = aggregator
        if aggregator is not None:
            stats.add_source("aggregated", lambda: aggregator.folded_now)

        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._halt = threading.Event()  # stop sending now: what is left goes to the spool
        self._batcher_done = threading.Event()  # the spooler's last jobs are handed in
        #: while closing, the clock time after which nothing more is built or waited for
        self._out_of_time_at = float("inf")
        # ``max_pending_bytes`` bounds both halves of what waits in memory as documents:
        # batches waiting for the sender, and jobs handed to the spooler but not written yet.
        self._ledger = Ledger(
            outbox_max=max(1, max_pending_bytes - max_pending_bytes // 2),
            backlog_max=max(1, max_pending_bytes // 2),
            halted=self._out_of_time,
        )
        self._breaker = OutageBreaker(backoff_initial, backoff_max, clock)
        self._sender = Sender(
            self._ledger,
            self._breaker,
            shipper_factory=shipper_factory,
            policy=RetryPolicy(
                max_retries, partial(backoff_delay, initial=backoff_initial, maximum=backoff_max)
            ),
            templates=installer,
            folder=self._folder,
            stats=stats,
            reporter=reporter,
            chunk_docs=bulk_docs,
            interval=flush_interval,
            halt=self._halt,
            stopping=self._stopping,
        )
        self._batcher = Batcher(
            queue,
            self._ledger,
            self._breaker,
            builder=builder,
            namer=namer,
            id_prefix=id_prefix,
            aggregator=aggregator,
            stats=stats,
            reporter=reporter,
            spooling=spool is not None,
            chunk_docs=bulk_docs,
            interval=flush_interval,
            max_queue_records=max_queue_records,
            wall_clock=wall_clock,
            out_of_time=self._out_of_time,
            wake=self._wake,
            halt=self._halt,
            stopping=self._stopping,
            done=self._batcher_done,
        )
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        #: the idents of this worker's threads once started (a new frozenset then, never
        #: changed in place). Records made on them are never shipped: the handler checks the
        #: record's ``thread``, which also catches a worker record that reaches the handler
        #: through another thread (a ``QueueListener``).
        self.thread_ids: frozenset[int] = frozenset()
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads (idempotent, thread-safe)."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
            self._threads = [
                threading.Thread(target=run, name=f"ecs-metrics-{name}", daemon=True)
                for name, run in (
                    ("batcher", self._batcher.run),
                    ("sender", self._sender.run),
                    ("spooler", self._run_spooler),
                )
            ]
            for thread in self._threads:
                thread.start()
            self.thread_ids = frozenset(t.ident for t in self._threads if t.ident is not None)

    def offer(self, entry: Entry, *, wake: bool = False) -> bool:
        """Queue ``entry`` for shipping (called by the handler on the application's thread).

        No lock, no I/O. When ``max_queue_records`` entries wait already, first gives the
        worker the CPU for a bounded time (1 ms steps, at most 10 ms, or 1 s with a failure
        folder) and returns False, queueing nothing, if the queue is still full. Starts the
        threads on the first entry; wakes the batcher when ``buffer_size`` entries wait, or
        at once with ``wake``.
        """
        queue = self._queue
        if len(queue) >= self._max_queue and not self._wait_for_room():
            return False
        queue.append(entry)
        if not self._started:
            self.start()
        if (wake or len(queue) >= self._wake_at) and not self._batcher.wake_pending:
            self.wake()
        return True

    def wake(self) -> None:
        """Ask the batcher to take what is queued now."""
        self._batcher.wake()

    def _wait_for_room(self) -> bool:
        """Overload: the application logs faster than the worker builds documents. Wait a little.

        A short, bounded pause throttles the application to the worker's pace instead of
        losing metrics; returns whether room appeared.
        """
        if not self._batcher.wake_pending:
            self.wake()
        queue = self._queue
        for _ in range(self._room_wait_steps):
            time.sleep(_ROOM_WAIT_STEP)
            if len(queue) < self._max_queue:
                return True
        return False

    def flush(self, target_seq: int, timeout: float) -> bool:
        """Wait until every record with a sequence number up to ``target_seq`` is settled.

        Settled means acknowledged, spooled, dead-lettered, invalid or dropped. Returns whether
        that happened within ``timeout`` seconds. Blocks the caller; holds no lock the
        application needs while waiting.
        """
        if not self._started:
            if not self._queue:
                return True
            self.start()
        self._batcher.count_flush()  # the batcher then ships the open aggregation series too
        self.wake()
        deadline = self._clock() + timeout
        ledger = self._ledger
        with ledger.cond:
            while not ledger.settled_through(target_seq, self._batcher.queue_head):
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return False
                ledger.cond.wait(min(remaining, 0.1))
                head = self._batcher.queue_head()
                if head is not None and head <= target_seq:
                    self._wake.set()
        return True

    def stop(self, timeout: float, target_seq: int, *, wait_for_delivery: bool = True) -> None:
        """Stop the threads, spooling (or counting as dropped) whatever is not delivered.

        With ``wait_for_delivery`` the worker first gets up to ``timeout`` seconds to ship what
        is queued. Returns within ``timeout`` plus one second of grace whatever the queue
        holds: what cannot be built and written in that time is counted dropped and reported.
        Idempotent.
        """
        start = self._clock()
        self._batcher.closing = True  # from now on a backlog goes to the spooler instead of waiting
        if wait_for_delivery and self._started:
            self.flush(target_seq, timeout)
        end = start + timeout + _JOIN_GRACE
        self._out_of_time_at = end - _FINAL_WRITE_RESERVE
        self._stopping.set()
        self._halt.set()
        self._wake.set()
        with self._ledger.cond:
            self._ledger.cond.notify_all()
        batcher, sender, spooler = self._threads if self._threads else (None, None, None)
        self._join(batcher, self._out_of_time_at)
        if batcher is None or not batcher.is_alive():
            self._batcher.finish_here()  # never started, or died: build what is queued here
        self._join(spooler, self._out_of_time_at)
        self._write_all(CLOSING)
        self._drop_unbuilt()
        self._join(sender, min(end - _FINAL_WRITE_RESERVE / 2, self._clock() + 0.2))
        self._write_all(CLOSING)  # what a send gave up meanwhile
        if sender is None or not sender.is_alive():
            self._sender.close_shipper()

    def pending(self) -> int:
        """Records accepted but not settled yet (approximate while threads run)."""
        return len(self._queue) + self._ledger.pending_items()

    def _join(self, thread: threading.Thread | None, until: float) -> None:
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, until - self._clock()))

    def _out_of_time(self) -> bool:
        return self._clock() >= self._out_of_time_at

    # -- spooler ----------------------------------------------------------------------------

    def _run_spooler(self) -> None:
        while True:
            jobs = self._ledger.take_jobs(
                SEGMENT_BYTES, self._interval, stop_waiting=self._stopping.is_set
            )
            if not jobs and self._stopping.is_set() and self._batcher_done.is_set():
                return
            try:
                self._write(jobs)
            except Exception:  # pragma: no cover - a bug; never let the thread die silently
                self._reporter.error(
                    "spooler", "ecs_metrics_handler: spooler failed", exc_info=True
                )
            if self._stopping.is_set() and self._out_of_time():
                return

    def _write(self, jobs: list[SpillJob]) -> None:
        """Write ``jobs`` (one segment, one dead-letter file) and settle their batches."""
        try:
            letters = [letter for job in jobs for letter in job.letters or ()]
            self._folder.dead_letter(letters)
            items = [item for job in jobs for item in job.items]
            if items and self._folder.spill(items, jobs[0].reason):
                self._sender.spool_waiting = True
        finally:
            self._ledger.spill_done(jobs)

    def _write_all(self, reason: str) -> None:
        """Closing: every job and unsettled batch goes to the folder now, from this thread."""
        jobs = self._ledger.take_all(reason)
        while jobs:
            size = 0
            segment: list[SpillJob] = []
            while jobs and size < SEGMENT_BYTES:
                segment.append(jobs.pop(0))
                size += segment[-1].nbytes
            self._write(segment)

    def _drop_unbuilt(self) -> None:
        """Closing, out of time: records still queued cannot be built and written in time."""
        count = 0
        try:
            while True:
                self._queue.popleft()
                count += 1
        except IndexError:
            pass
        self._folder.drop(
            count,
            "handler closed with no time left to build and spool them (flush_timeout)",
        )
