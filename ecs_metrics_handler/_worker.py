"""The background half of the handler: build, serialise, ship, judge, retry, spool, replay.

Two daemon threads per handler, started on first use:

``batcher``
    Wakes when ``buffer_size`` records wait, every ``flush_frequency_in_sec``, or on
    ``flush()``. Takes the captured records off the handler's queue, builds their ECS
    documents, names their index from the event's time, gives each a document id, serialises
    them into bulk ``create`` pairs and hands the batch to the sender. It never touches the
    network, so when the sender is stuck on a slow or frozen cluster it keeps memory bounded:
    batches beyond ``max_pending_bytes`` go to the failure folder.

``spooler``
    Writes to the failure folder what the other two hand it (batches over the backlog, an
    outage's batches, dead letters), so that neither the batcher, which must keep draining the
    application's queue, nor the sender waits on the disk. Consecutive jobs go to one segment
    (one fsync) up to 16 MiB.

``sender``
    Ships one batch at a time, judges every item, retries the retryable subset with capped
    exponential backoff and jitter, writes refused documents to the dead-letter file, and
    spools what it could not deliver. After an outage it stops trying every batch (they go
    straight to the spool) and probes the cluster at growing intervals; once the cluster
    answers, it replays the spooled segments, oldest first.

No lock an application thread needs is ever held while waiting on the network or the disk:
the handler's queue is a ``deque`` (append and popleft are atomic), and the worker's own
condition guards only in-memory bookkeeping.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._backoff import backoff_delay
from ._capture import Entry
from ._document import DocumentBuilder
from ._index import IndexNamer
from ._report import Reporter
from ._resend import send_items
from ._serialize import bulk_pair
from ._shipper import BulkResult, ShipError, Shipper
from ._spool import DeadLetter, Spool, plain, safe_repr
from ._stats import DeliveryStats
from .exceptions import InvalidMetricError

__all__ = ["Batch", "Worker"]


_MIN_BULK_DOCS = 500
#: during an outage, batches waiting to ship are spooled together, up to this size a segment
_OUTAGE_SEGMENT_BYTES = 16 << 20
_JOIN_GRACE = 1.0


@dataclass(eq=False, slots=True)
class _SpillJob:
    """Documents (or dead letters) for the spooler thread, and the batches they settle."""

    items: list[bytes]
    reason: str
    batches: list[Batch]
    letters: list[DeadLetter] | None = None
    #: for dead letters: the lowest sequence number among their records (flush waits on it)
    min_seq: int = 0
    nbytes: int = -1  # computed from ``items`` once

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            self.nbytes = sum(len(i) for i in self.items)


@dataclass(eq=False, slots=True)
class Batch:
    """Serialised documents on their way to the cluster."""

    items: list[bytes]
    min_seq: int
    nbytes: int
    settled: bool = False
    #: taken for its final disposition (spool or drop) by whoever set it, under the worker's lock
    claimed: bool = False
    #: the items not yet acknowledged once the sender started on it (None: all of ``items``)
    current: list[bytes] | None = None

    def unacknowledged(self) -> list[bytes]:
        return self.items if self.current is None else self.current


class Worker:
    """Owns the batcher and sender threads of one handler. See the module docstring."""

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
    ) -> None:
        self._queue = queue
        self._builder = builder
        self._namer = namer
        self._shipper_factory = shipper_factory
        self._shipper: Shipper | None = None
        self._spool = spool
        self._stats = stats
        self._reporter = reporter
        self._id_prefix = id_prefix
        self._bulk_docs = max(buffer_size, _MIN_BULK_DOCS)
        self._interval = flush_interval
        # ``max_pending_bytes`` bounds both halves of what waits in memory as documents:
        #: batches waiting for the sender (back-pressure or spill beyond it) ...
        self._outbox_max = max(1, max_pending_bytes - max_pending_bytes // 2)
        #: ... and documents handed to the spooler thread but not written yet; past it the
        #: batcher waits, and so, after its bounded pause, does a logging call
        self._spill_backlog_max = max(1, max_pending_bytes // 2)
        self._queue_high_water = max(1, int(max_queue_records * 0.8))
        self._max_retries = max_retries
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._templates = templates

        self._wake = threading.Event()
        #: set by the handler before it sets ``_wake``: one wake-up per batch, not per record
        self.wake_pending = False
        self._cond = threading.Condition(threading.Lock())
        self._outbox: deque[Batch] = deque()
        self._outbox_bytes = 0
        self._spill_jobs: deque[_SpillJob] = deque()
        self._spill_bytes = 0
        self._letters_unwritten: set[_SpillJob] = set()
        self._unsettled: set[Batch] = set()
        self._building: int | None = None
        self._stopping = threading.Event()
        self._halt = threading.Event()  # stop sending now: what is left goes to the spool
        self._threads: list[threading.Thread] = []
        self.thread_ids: frozenset[int] = frozenset()
        self._start_lock = threading.Lock()
        self.started = False

        # Outage state, sender thread only.
        self._down = False
        self._next_probe = 0.0
        self._probe_interval = backoff_initial
        self._spool_waiting = spool is not None
        self._unreadable_reported = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads (idempotent, thread-safe)."""
        with self._start_lock:
            if self.started:
                return
            self.started = True
            batcher = threading.Thread(
                target=self._run_batcher, name="ecs-metrics-batcher", daemon=True
            )
            sender = threading.Thread(
                target=self._run_sender, name="ecs-metrics-sender", daemon=True
            )
            spooler = threading.Thread(
                target=self._run_spooler, name="ecs-metrics-spooler", daemon=True
            )
            self._threads = [batcher, sender, spooler]
            for thread in self._threads:
                thread.start()
            self.thread_ids = frozenset(t.ident for t in self._threads if t.ident is not None)

    def wake(self) -> None:
        """Ask the batcher to take what is queued now."""
        self.wake_pending = True
        self._wake.set()

    def flush(self, target_seq: int, timeout: float) -> bool:
        """Wait until every record with a sequence number up to ``target_seq`` is settled.

        Settled means acknowledged, spooled, dead-lettered, invalid or dropped. Returns whether
        that happened within ``timeout`` seconds. Blocks the caller; holds no lock the
        application needs while waiting.
        """
        if not self.started:
            if not self._queue:
                return True
            self.start()
        self.wake()
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._settled_through(target_seq):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
                if not self._queue_head_settled(target_seq):
                    self._wake.set()
        return True

    def stop(self, timeout: float, target_seq: int, *, wait_for_delivery: bool = True) -> None:
        """Stop the threads, spooling (or counting as dropped) whatever is not delivered.

        With ``wait_for_delivery`` the worker first gets up to ``timeout`` seconds to ship what
        is queued; the total time spent here is about ``timeout`` plus one second of grace.
        Idempotent.
        """
        deadline = time.monotonic() + timeout
        if wait_for_delivery and self.started:
            self.flush(target_seq, timeout)
        self._stopping.set()
        self._halt.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        batcher = self._threads[0] if self._threads else None
        if batcher is not None and batcher is not threading.current_thread():
            batcher.join(max(0.0, min(_JOIN_GRACE, deadline - time.monotonic() + _JOIN_GRACE)))
        self._spill_everything("handler closed before delivery")
        sender = self._threads[1] if len(self._threads) > 1 else None
        if sender is not None and sender is not threading.current_thread():
            sender.join(0.2)
        spooler = self._threads[2] if len(self._threads) > 2 else None
        if spooler is not None and spooler is not threading.current_thread():
            spooler.join(max(0.0, min(_JOIN_GRACE, deadline - time.monotonic() + _JOIN_GRACE)))
        self._spill_everything("handler closed before delivery")  # what a send gave up meanwhile
        shipper, self._shipper = self._shipper, None
        if shipper is not None and (sender is None or not sender.is_alive()):
            shipper.close()

    def pending(self) -> int:
        """Records accepted but not settled yet (approximate while threads run)."""
        with self._cond:
            in_batches = sum(len(b.unacknowledged()) for b in self._unsettled)
        return len(self._queue) + in_batches

    # -- flush bookkeeping (call with self._cond held) --------------------------------------

    def _queue_head_settled(self, target: int) -> bool:
        try:
            head = self._queue[0].seq
        except IndexError:
            return True
        return head > target

    def _settled_through(self, target: int) -> bool:
        if self._building is not None and self._building <= target:
            return False
        if not self._queue_head_settled(target):
            return False
        if any(job.min_seq <= target for job in self._letters_unwritten):
            return False
        return all(b.min_seq > target for b in self._unsettled)

    # -- batcher ----------------------------------------------------------------------------

    def _run_batcher(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.wake_pending = False
            try:
                self._drain()
            except Exception:  # pragma: no cover - a bug; never let the thread die silently
                self._reporter.error(
                    "batcher", "ecs_metrics_handler: batcher failed", exc_info=True
                )
            if self._stopping.is_set() and not self._queue:
                return

    def _must_spill(self) -> bool:
        """Whether a backlog over ``max_pending_bytes`` goes to disk now (call with the lock held).

        While the cluster is merely slow the batcher waits instead (back-pressure), leaving
        records in the queue; it spills when the cluster is down, when the handler is
        closing, or, with a failure folder, when the queue nears ``max_queue_records``.
        """
        if self._down or self._halt.is_set():
            return True
        # Without a failure folder a spill is a drop: keep waiting, the queue's own bound
        # (and emit's short wait for room) decides instead.
        return self._spool is not None and len(self._queue) >= self._queue_high_water

    def _wait_for_room(self) -> None:
        with self._cond:
            while (self._outbox_bytes > self._outbox_max and not self._must_spill()) or (
                self._spill_bytes > self._spill_backlog_max and not self._halt.is_set()
            ):
                self._cond.wait(0.05)

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            self._wait_for_room()
            entries: list[Entry] = []
            with self._cond:
                try:
                    self._building = queue[0].seq
                except IndexError:
                    self._building = None
                    return
            try:
                for _ in range(self._bulk_docs):
                    entries.append(queue.popleft())
            except IndexError:
                pass
            batch = self._build(entries) if entries else None
            overflow: list[Batch] = []
            with self._cond:
                self._building = None
                if batch is not None and self._halt.is_set():
                    self._unsettled.add(batch)
                    batch.claimed = True
                    overflow.append(batch)  # closing: straight to the spool
                elif batch is not None:
                    self._unsettled.add(batch)
                    self._outbox.append(batch)
                    self._outbox_bytes += batch.nbytes
                    while (
                        self._outbox_bytes > self._outbox_max
                        and len(self._outbox) > 1
                        and self._must_spill()
                    ):
                        old = self._outbox.popleft()
                        self._outbox_bytes -= old.nbytes
                        old.claimed = True
                        overflow.append(old)
                for old in overflow:
                    reason = (
                        "handler closed before delivery"
                        if old is batch
                        else "backlog over max_pending_bytes"
                    )
                    self._enqueue_spill(_SpillJob(old.items, reason, [old]))
                self._cond.notify_all()

    def _build(self, entries: list[Entry]) -> Batch | None:
        build = self._builder.build_source
        namer = self._namer
        prefix = self._id_prefix
        items: list[bytes] = []
        rejected: list[DeadLetter] = []
        nbytes = 0
        for entry in entries:
            try:
                source = build(entry.source, entry.message, entry.payload)
                item = bulk_pair(namer(entry.created), f"{prefix}{entry.seq:x}", source)
            except InvalidMetricError as e:
                rejected.append(DeadLetter(f"invalid metric: {e.reason}", record=_describe(entry)))
                continue
            except Exception as e:
                rejected.append(
                    DeadLetter(
                        f"cannot build document: {type(e).__name__}: {e}",
                        record=_describe(entry),
                    )
                )
                continue
            items.append(item)
            nbytes += len(item)
        if rejected:
            self._stats.add("invalid", len(rejected))
            self._reporter.warning(
                "invalid",
                "ecs_metrics_handler: %d record(s) could not become documents, first: %s",
                len(rejected),
                rejected[0].reason,
            )
            if self._spool is not None:
                with self._cond:
                    self._enqueue_spill(
                        _SpillJob([], "invalid", [], letters=rejected, min_seq=entries[0].seq)
                    )
                    self._cond.notify_all()
        if not items:
            return None
        return Batch(items=items, min_seq=entries[0].seq, nbytes=nbytes)

    # -- sender -----------------------------------------------------------------------------

    def _run_sender(self) -> None:
        while True:
            batch: Batch | None = None
            with self._cond:
                while not self._outbox and not self._stopping.is_set():
                    if self._replay_due():
                        break
                    self._cond.wait(self._sender_wait())
                if self._outbox:
                    batch = self._outbox.popleft()
                    self._outbox_bytes -= batch.nbytes
                    self._cond.notify_all()  # room for a batcher waiting on back-pressure
                elif self._stopping.is_set():
                    return
            try:
                if batch is not None:
                    self._send(batch)
                elif self._replay_due():
                    self._replay_one()
            except Exception:  # pragma: no cover - a bug; keep the data and the thread
                self._reporter.error("sender", "ecs_metrics_handler: sender failed", exc_info=True)
                if batch is not None:
                    self._give_up(batch, batch.unacknowledged(), "internal error")

    def _sender_wait(self) -> float:
        if self._spool_waiting and self._spool is not None:
            return max(0.05, min(self._interval, self._next_probe - time.monotonic()))
        return self._interval

    def _get_shipper(self) -> Shipper:
        if self._shipper is None:
            self._shipper = self._shipper_factory()
        return self._shipper

    def _ensure_templates(self, shipper: Shipper) -> None:
        if self._templates is None:
            return
        try:
            shipper.put_templates(self._templates)
        except Exception as e:
            status = _http_status(e)
            if status is None or status == 429 or status >= 500:
                raise ShipError(f"cannot install the index template: {e}", retryable=True) from e
            # The cluster answered and refused (401/403: a writer without the template
            # privilege; 400: a template it does not accept): not an outage. Documents still
            # ship, into whatever mapping the cluster gives them.
            self._templates = None
            self._reporter.error(
                "template",
                "ecs_metrics_handler: the index template was refused (HTTP %s: %s); documents "
                "are shipped without it. Install it once as an administrator "
                "(handler.install_template() or 'python -m ecs_metrics_handler "
                "install-template'), then set install_template=False",
                status,
                str(e)[:300],
            )
            return
        self._templates = None
        self._reporter.info("ecs_metrics_handler: index template installed")

    def _send(self, batch: Batch) -> None:
        remaining = batch.items
        attempt = 0
        probing = self._down  # after an outage a batch is one probe: no retry cycle
        while True:
            if self._halt.is_set():
                self._give_up(batch, remaining, "handler closed before delivery")
                return
            if self._down and time.monotonic() < self._next_probe:
                self._spool_outage(batch, remaining)
                return
            if not self._hand_over(batch, remaining):
                return
            shipper = self._get_shipper()
            failure: ShipError | None = None
            try:
                self._ensure_templates(shipper)
                result = shipper.bulk(b"".join(remaining), len(remaining))
            except ShipError as e:
                failure = e
                retry = remaining
            else:
                self._mark_up()
                retry = [remaining[pos] for pos in result.retry]
                # Atomically with close(): either it has taken the whole batch to the spool
                # (then this answer is not counted: the spool holds every item), or from now
                # on it can only take what is still unacknowledged.
                if not self._hand_over(batch, retry):
                    return
                self._account(result, remaining)
            if not retry:
                self._settle(batch)
                return
            if failure is not None and not failure.retryable:
                self._reporter.error("refused", "ecs_metrics_handler: %s", failure.reason)
                self._mark_down()
                self._give_up(batch, retry, "refused")
                return
            attempt += 1
            if failure is not None and probing:
                self._mark_down()
                self._give_up(batch, retry, "cluster unavailable")
                return
            if attempt > self._max_retries:
                reason = (
                    failure.reason if failure else f"{len(retry)} item(s) still rejected (429/5xx)"
                )
                self._reporter.warning(
                    "retries",
                    "ecs_metrics_handler: giving up after %d retries (%s); "
                    "%d document(s) go to the failure folder",
                    self._max_retries,
                    reason,
                    len(retry),
                )
                if failure is not None:
                    self._mark_down()
                self._give_up(batch, retry, "cluster unavailable")
                return
            self._stats.add("retried", len(retry))
            remaining = retry
            if self._halt.wait(self._backoff(attempt)):
                continue  # closing: the loop's first check spools what is left

    def _hand_over(self, batch: Batch, unacknowledged: list[bytes]) -> bool:
        """Record what is still unacknowledged; False when close() has claimed the batch."""
        with self._cond:
            if batch.claimed:
                return False
            batch.current = unacknowledged
            return True

    def _account(self, result: BulkResult, sent: list[bytes]) -> list[bytes]:
        """Count a bulk result; dead-letter the refused items; return those to retry.

        Blocking disk I/O when there are dead letters.
        """
        self._stats.add("shipped", result.done)
        if result.duplicates:
            self._stats.add("duplicates", result.duplicates)
        if result.dead:
            letters = [
                DeadLetter("refused by the cluster", status=status, error=error, item=sent[pos])
                for pos, status, error in result.dead
            ]
            self._stats.add("dead_lettered", len(letters))
            first = result.dead[0]
            self._reporter.warning(
                "dead-letter",
                "ecs_metrics_handler: %d document(s) refused by the cluster, first: HTTP %s %s",
                len(letters),
                first[1],
                _reason_text(first[2]),
            )
            self._dead_letter(letters)
        return [sent[pos] for pos in result.retry]

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self._backoff_initial, self._backoff_max)

    def _mark_up(self) -> None:
        if self._down:
            self._reporter.info("ecs_metrics_handler: the cluster answers again")
        self._down = False
        self._probe_interval = self._backoff_initial

    def _mark_down(self) -> None:
        if self._down:
            self._probe_interval = min(self._backoff_max, self._probe_interval * 2)
        self._down = True
        self._next_probe = time.monotonic() + self._probe_interval

    # -- spool and replay -------------------------------------------------------------------

    def _replay_due(self) -> bool:
        if not self._spool_waiting or self._spool is None or self._halt.is_set():
            return False
        return not self._down or time.monotonic() >= self._next_probe

    def _replay_one(self) -> None:
        spool = self._spool
        assert spool is not None
        spool.recover_stale_claims()
        claim = spool.claim_oldest()
        self._report_unreadable(spool)
        if claim is None:
            self._spool_waiting = False
            return
        try:
            shipper = self._get_shipper()
            outcome = send_items(
                shipper,
                claim.items,
                self._bulk_docs,
                before_each=lambda: self._ensure_templates(shipper),
                halted=self._halt.is_set,
            )
        except BaseException:
            claim.release(claim.items)
            raise
        self._stats.add("replayed", outcome.done)
        if outcome.duplicates:
            self._stats.add("duplicates", outcome.duplicates)
        if outcome.letters:
            self._reporter.warning(
                "dead-letter",
                "ecs_metrics_handler: %d replayed document(s) refused by the cluster",
                len(outcome.letters),
            )
            self._dead_letter(outcome.letters)
        if outcome.refused:
            path = spool.quarantine(outcome.refused, outcome.refused_reason)
            self._reporter.error(
                "quarantine",
                "ecs_metrics_handler: %d spooled document(s) refused as a whole request (%s); "
                "kept in %s, not retried",
                len(outcome.refused),
                outcome.refused_reason,
                path,
            )
        if outcome.answered and outcome.stopped is None:
            self._mark_up()
        elif outcome.stopped is not None:
            self._mark_down()
            self._reporter.warning(
                "replay", "ecs_metrics_handler: replay paused: %s", outcome.stopped
            )
        if outcome.left:
            claim.release(outcome.left)
        else:
            claim.done()

    def _report_unreadable(self, spool: Spool) -> None:
        for name in list(spool.unreadable)[self._unreadable_reported :]:
            self._reporter.error(
                "unreadable",
                "ecs_metrics_handler: skipping %s in %s: %s",
                name,
                spool.folder,
                spool.unreadable[name],
            )
        self._unreadable_reported = len(spool.unreadable)

    def _spill(self, items: list[bytes], reason: str) -> None:
        """Put ``items`` in the failure folder, or count them dropped. Blocking disk I/O."""
        if not items:
            return
        if self._spool is None:
            self._stats.drop(f"{reason}, no flush_failure_folder", len(items))
            self._reporter.warning(
                "dropped",
                "ecs_metrics_handler: %d document(s) dropped: %s, no flush_failure_folder set",
                len(items),
                reason,
            )
            return
        try:
            written = self._spool.write_segment(items)
        except OSError as e:
            self._stats.drop("failure folder unwritable", len(items))
            self._reporter.error(
                "spool-error",
                "ecs_metrics_handler: %d document(s) dropped: cannot write to %s: %s",
                len(items),
                self._spool.folder,
                e,
            )
            return
        if written:
            self._stats.add("spooled", len(items))
            self._spool_waiting = True
        else:
            self._stats.drop("failure folder full", len(items))
            self._reporter.error(
                "spool-full",
                "ecs_metrics_handler: %d document(s) dropped: %s is over its %d-byte cap",
                len(items),
                self._spool.folder,
                self._spool.max_bytes,
            )

    def _spool_outage(self, batch: Batch, items: list[bytes]) -> None:
        """During an outage: this batch and those waiting behind it go to one segment.

        One file (one fsync) for many batches keeps spooling ahead of the application.
        """
        with self._cond:
            if batch.claimed or batch.settled:
                return
            batch.claimed = True
            taken = [(batch, items)]
            size = sum(len(i) for i in items)
            while self._outbox and size < _OUTAGE_SEGMENT_BYTES:
                more = self._outbox.popleft()
                self._outbox_bytes -= more.nbytes
                if more.claimed or more.settled:
                    continue
                more.claimed = True
                taken.append((more, more.unacknowledged()))
                size += more.nbytes
            self._enqueue_spill(
                _SpillJob(
                    [item for _, part in taken for item in part],
                    "cluster unavailable",
                    [b for b, _ in taken],
                ),
                wait=True,
            )
            self._cond.notify_all()

    def _give_up(self, batch: Batch, items: list[bytes], reason: str) -> None:
        """Spool (or drop) ``items`` of ``batch`` unless close() has claimed it first."""
        with self._cond:
            if batch.claimed or batch.settled:
                return
            batch.claimed = True
            self._enqueue_spill(_SpillJob(items, reason, [batch]), wait=True)
            self._cond.notify_all()

    # -- spooler ----------------------------------------------------------------------------

    def _enqueue_spill(self, job: _SpillJob, *, wait: bool = False) -> None:
        """Hand ``job`` to the spooler thread (call with the lock held).

        With ``wait`` (the sender), first waits while the backlog is over its bound: the
        sender may wait on the disk, the batcher must not (it waits in ``_wait_for_room``
        before building instead).
        """
        while wait and self._spill_bytes > self._spill_backlog_max and not self._halt.is_set():
            self._cond.wait(0.05)
        self._spill_bytes += job.nbytes
        if job.letters:
            self._letters_unwritten.add(job)
        self._spill_jobs.append(job)

    def _take_spill_jobs(self) -> list[_SpillJob]:
        """Jobs for one segment, oldest first (call with the lock held)."""
        jobs: list[_SpillJob] = []
        size = 0
        while self._spill_jobs and size < _OUTAGE_SEGMENT_BYTES:
            job = self._spill_jobs.popleft()
            jobs.append(job)
            size += job.nbytes
        return jobs

    def _run_spooler(self) -> None:
        while True:
            with self._cond:
                while not self._spill_jobs and not self._stopping.is_set():
                    self._cond.wait(self._interval)
                jobs = self._take_spill_jobs()
                if not jobs and self._stopping.is_set():
                    return
            try:
                self._write_spill_jobs(jobs)
            except Exception:  # pragma: no cover - a bug; never let the thread die silently
                self._reporter.error(
                    "spooler", "ecs_metrics_handler: spooler failed", exc_info=True
                )

    def _write_spill_jobs(self, jobs: list[_SpillJob]) -> None:
        """Write ``jobs`` (one segment, one dead-letter file) and settle their batches."""
        letters = [letter for job in jobs for letter in job.letters or ()]
        if letters:
            self._dead_letter(letters)
        items = [item for job in jobs for item in job.items]
        try:
            if items:
                self._spill(items, jobs[0].reason)
        finally:
            with self._cond:
                for job in jobs:
                    self._spill_bytes -= job.nbytes
                    self._letters_unwritten.discard(job)
                    for b in job.batches:
                        self._mark_settled(b)
                self._cond.notify_all()

    def _settle(self, batch: Batch) -> None:
        with self._cond:
            self._mark_settled(batch)
            self._cond.notify_all()

    def _mark_settled(self, batch: Batch) -> None:
        """``batch`` has its final disposition (call with the lock held)."""
        batch.settled = True
        self._unsettled.discard(batch)

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        if self._spool is None or not letters:
            return
        try:
            written = self._spool.write_dead_letters(letters)
        except OSError as e:
            self._reporter.error(
                "spool-error",
                "ecs_metrics_handler: cannot write dead letters to %s: %s",
                self._spool.folder,
                e,
            )
            return
        if not written:
            self._reporter.error(
                "spool-full",
                "ecs_metrics_handler: %d dead letter(s) not written: %s is over its %d-byte cap",
                len(letters),
                self._spool.folder,
                self._spool.max_bytes,
            )

    def _spill_everything(self, reason: str) -> None:
        """On stop: everything still in memory goes to the spool (or is counted dropped)."""
        with self._cond:
            jobs = list(self._spill_jobs)
            self._spill_jobs.clear()
        for job in jobs:
            self._write_spill_jobs([job])
        with self._cond:
            candidates = list(self._outbox)
            self._outbox.clear()
            self._outbox_bytes = 0
            # The in-flight batch and those a retry loop holds are among the unsettled ones.
            candidates.extend(b for b in self._unsettled if b not in candidates)
            taken: list[tuple[Batch, list[bytes]]] = []
            for b in candidates:
                if not b.claimed and not b.settled:
                    b.claimed = True
                    taken.append((b, b.unacknowledged()))
        for b, items in taken:
            self._spill(items, reason)
            self._settle(b)
        entries: list[Entry] = []
        try:
            while True:
                entries.append(self._queue.popleft())
        except IndexError:
            pass
        if entries:
            for start in range(0, len(entries), self._bulk_docs):
                leftover = self._build(entries[start : start + self._bulk_docs])
                if leftover is not None:
                    self._spill(leftover.items, reason)
        with self._cond:
            jobs = list(self._spill_jobs)  # the dead letters of those last records
            self._spill_jobs.clear()
        for job in jobs:
            self._write_spill_jobs([job])


def _describe(entry: Entry) -> dict[str, Any]:
    """What a dead letter keeps of a record that could not become a document. Never raises."""
    message = entry.message
    try:
        text = message if isinstance(message, str) else str(message)
    except Exception:
        text = safe_repr(message)
    return {
        "logger": plain(entry.name),
        "level": plain(entry.levelname),
        "created": plain(entry.created),
        "message": plain(text),
        "payload": plain(entry.payload),
        "pid": os.getpid(),
    }


def _http_status(error: BaseException) -> int | None:
    """The HTTP status of a client error (elasticsearch-py or opensearch-py), if it has one."""
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "meta", None), "status", None)
    return status if isinstance(status, int) else None


def _reason_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return f"{error.get('type', '')}: {error.get('reason', '')}"
    return str(error)
