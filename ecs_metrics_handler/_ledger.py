"""The ledger: every batch between the batcher and its fate, and the one place that decides it.

A :class:`Batch` of serialised documents goes through these states, and only the
:class:`Ledger`'s methods move it, under the ledger's lock:

``QUEUED``
    built, waiting in the outbox for the sender;
``SENDING``
    taken by the sender; :meth:`Ledger.hand_over` records which items are still
    unacknowledged after each answer;
``SPILLING``
    claimed for the failure folder (or for a counted drop) by :meth:`Ledger.give_up`,
    :meth:`Ledger.spill_overflow`, :meth:`Ledger.give_up_outage` or :meth:`Ledger.take_all`,
    with exactly the items not acknowledged; a job for the spooler thread holds them;
``SETTLED``
    final: acknowledged (:meth:`Ledger.settle`), or its spill job written
    (:meth:`Ledger.spill_done`).

A claim succeeds once: whoever claims a batch first (the sender giving up, the batcher
spilling a backlog, ``close()``) owns its unacknowledged items, and every other attempt sees
the claim and does nothing. That is how a record is settled exactly once, whatever races.

``flush()`` waits on the same lock (:meth:`Ledger.wait_settled`). Thread-safe; no method
waits on the network or the disk.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ._dead_letter import DeadLetter

__all__ = ["Batch", "BatchState", "Ledger", "SpillJob"]


class BatchState(enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"
    SPILLING = "spilling"
    SETTLED = "settled"


@dataclass(eq=False, slots=True)
class Batch:
    """Serialised documents (bulk pairs) on their way to the cluster.

    ``min_seq`` is the lowest sequence number of their records; ``nbytes`` their size.
    """

    items: list[bytes]
    min_seq: int
    nbytes: int
    state: BatchState = BatchState.QUEUED
    #: the items not acknowledged yet once the sender started on it (None: all of ``items``)
    current: list[bytes] | None = None

    def unacknowledged(self) -> list[bytes]:
        return self.items if self.current is None else self.current


@dataclass(eq=False, slots=True)
class SpillJob:
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


class Ledger:
    """The outbox, the spooler's backlog and every unsettled batch of one handler.

    ``outbox_max`` bounds the bytes of batches waiting for the sender; ``backlog_max`` the
    bytes handed to the spooler but not written yet. ``halted()`` says whether the handler is
    closing (then nothing waits for room any more).
    """

    def __init__(self, outbox_max: int, backlog_max: int, halted: Callable[[], bool]) -> None:
        self.cond = threading.Condition(threading.Lock())
        self._outbox_max = outbox_max
        self._backlog_max = backlog_max
        self._halted = halted
        self._outbox: deque[Batch] = deque()
        self._outbox_bytes = 0
        self._jobs: deque[SpillJob] = deque()
        self._backlog_bytes = 0
        self._letters_unwritten: set[SpillJob] = set()
        self._unsettled: set[Batch] = set()
        #: the lowest sequence number of records taken off the queue but not in a batch yet
        self._building: int | None = None
        #: the lowest sequence number of records folded into open aggregation series
        self._held: int | None = None

    # -- batcher side -------------------------------------------------------------------------

    def wait_for_room(self, must_spill: Callable[[], bool], step: float = 0.05) -> None:
        """Block while the outbox is full (unless backlogs go to disk now) or the backlog is."""
        with self.cond:
            while (self._outbox_bytes > self._outbox_max and not must_spill()) or (
                self._backlog_bytes > self._backlog_max and not self._halted()
            ):
                self.cond.wait(step)

    def building(self, min_seq: int | None) -> None:
        """Records from ``min_seq`` on are being built (None: done); flush waits on them."""
        with self.cond:
            self._building = min_seq

    def hold(self, min_seq: int | None) -> None:
        """Records from ``min_seq`` on are folded into open aggregation series (None: none).

        They are not settled until the series' documents are: flush waits on them.
        """
        with self.cond:
            self._held = min_seq
            self.cond.notify_all()

    def add(self, batch: Batch, *, must_spill: Callable[[], bool], closing: bool) -> None:
        """A new batch: into the outbox, spilling the oldest ones while it is over its bound.

        When ``closing``, the batch goes straight to the spooler. The bound is only enforced
        by spilling when ``must_spill()`` (an outage, or the queue near its own bound);
        otherwise the batcher waits for room before its next batch (back-pressure).
        """
        with self.cond:
            self._building = None
            self._unsettled.add(batch)
            if closing:
                self._claim_into_job([(batch, batch.items)], "handler closed before delivery")
            else:
                self._outbox.append(batch)
                self._outbox_bytes += batch.nbytes
                while self._outbox_bytes > self._outbox_max and len(self._outbox) > 1:
                    if not must_spill():
                        break
                    old = self._outbox.popleft()
                    self._outbox_bytes -= old.nbytes
                    self._claim_into_job(
                        [(old, old.unacknowledged())], "backlog over max_pending_bytes"
                    )
            self.cond.notify_all()

    def add_letters(self, letters: list[DeadLetter], min_seq: int) -> None:
        """Dead letters of records that could not become documents, for the spooler."""
        with self.cond:
            self._building = None
            self._push(SpillJob([], "invalid", [], letters=letters, min_seq=min_seq))
            self.cond.notify_all()

    # -- sender side --------------------------------------------------------------------------

    def next_batch(self, timeout: float, *, stop_waiting: Callable[[], bool]) -> Batch | None:
        """The oldest queued batch, now ``SENDING``; None after ``timeout`` s or stop_waiting()."""
        with self.cond:
            if not self._outbox and not stop_waiting():
                self.cond.wait(timeout)
            if not self._outbox:
                return None
            batch = self._outbox.popleft()
            self._outbox_bytes -= batch.nbytes
            batch.state = BatchState.SENDING
            self.cond.notify_all()  # room for a batcher waiting on back-pressure
            return batch

    def hand_over(self, batch: Batch, unacknowledged: list[bytes]) -> bool:
        """Record what is still unacknowledged; False when the batch was claimed meanwhile."""
        with self.cond:
            if batch.state is not BatchState.SENDING:
                return False
            batch.current = unacknowledged
            return True

    def settle(self, batch: Batch) -> None:
        """Every item of ``batch`` is acknowledged or dead-lettered."""
        with self.cond:
            if batch.state is BatchState.SENDING:
                self._settle(batch)
            self.cond.notify_all()

    def give_up(self, batch: Batch, items: list[bytes], reason: str) -> bool:
        """Claim ``batch`` for the failure folder with ``items``; False if claimed already.

        Waits (the sender may; the batcher never calls this) while the spooler's backlog is
        over its bound, unless the handler is closing.
        """
        with self.cond:
            self._wait_backlog()
            if batch.state is not BatchState.SENDING:
                return False
            self._claim_into_job([(batch, items)], reason)
            self.cond.notify_all()
            return True

    def give_up_outage(self, batch: Batch, items: list[bytes], reason: str, limit: int) -> None:
        """Claim ``batch`` and the queued batches behind it, up to ``limit`` bytes, as one job.

        During an outage one segment (one fsync) for many batches keeps spooling ahead of the
        application.
        """
        with self.cond:
            self._wait_backlog()
            if batch.state is not BatchState.SENDING:
                return
            taken = [(batch, items)]
            size = sum(len(i) for i in items)
            while self._outbox and size < limit:
                more = self._outbox.popleft()
                self._outbox_bytes -= more.nbytes
                taken.append((more, more.unacknowledged()))
                size += more.nbytes
            self._claim_into_job(taken, reason)
            self.cond.notify_all()

    # -- spooler side -------------------------------------------------------------------------

    def take_jobs(
        self, limit: int, timeout: float, *, stop_waiting: Callable[[], bool]
    ) -> list[SpillJob]:
        """Jobs for one segment, oldest first, up to ``limit`` bytes; waits ``timeout`` s."""
        with self.cond:
            if not self._jobs and not stop_waiting():
                self.cond.wait(timeout)
            jobs: list[SpillJob] = []
            size = 0
            while self._jobs and size < limit:
                job = self._jobs.popleft()
                jobs.append(job)
                size += job.nbytes
            return jobs

    def spill_done(self, jobs: Iterable[SpillJob]) -> None:
        """``jobs`` are written (or counted dropped): their batches are settled."""
        with self.cond:
            for job in jobs:
                self._backlog_bytes -= job.nbytes
                self._letters_unwritten.discard(job)
                for batch in job.batches:
                    self._settle(batch)
            self.cond.notify_all()

    # -- close ------------------------------------------------------------------------------

    def take_all(self, reason: str) -> list[SpillJob]:
        """Closing: every job not written yet, and every unsettled batch claimed as a job."""
        with self.cond:
            jobs = list(self._jobs)
            self._jobs.clear()
            candidates = list(self._outbox)
            self._outbox.clear()
            self._outbox_bytes = 0
            # The in-flight batch and those a retry loop holds are among the unsettled ones.
            candidates.extend(b for b in self._unsettled if b not in candidates)
            for batch in candidates:
                if batch.state in (BatchState.QUEUED, BatchState.SENDING):
                    self._claim_into_job([(batch, batch.unacknowledged())], reason)
            jobs.extend(self._jobs)
            self._jobs.clear()
            return jobs

    # -- flush ------------------------------------------------------------------------------

    def settled_through(self, target: int, queue_head: Callable[[], int | None]) -> bool:
        """Whether every record up to sequence ``target`` is settled (call with ``cond`` held).

        ``queue_head()`` is the sequence number at the head of the handler's queue, or None.
        """
        if self._building is not None and self._building <= target:
            return False
        if self._held is not None and self._held <= target:
            return False
        head = queue_head()
        if head is not None and head <= target:
            return False
        if any(job.min_seq <= target for job in self._letters_unwritten):
            return False
        return all(b.min_seq > target for b in self._unsettled)

    def pending_items(self) -> int:
        """Documents in batches not settled yet."""
        with self.cond:
            return sum(len(b.unacknowledged()) for b in self._unsettled)

    # -- internals (call with ``cond`` held) --------------------------------------------------

    def _wait_backlog(self) -> None:
        while self._backlog_bytes > self._backlog_max and not self._halted():
            self.cond.wait(0.05)

    def _claim_into_job(self, taken: list[tuple[Batch, list[bytes]]], reason: str) -> None:
        for batch, _ in taken:
            batch.state = BatchState.SPILLING
        self._push(
            SpillJob([item for _, part in taken for item in part], reason, [b for b, _ in taken])
        )

    def _push(self, job: SpillJob) -> None:
        self._backlog_bytes += job.nbytes
        if job.letters:
            self._letters_unwritten.add(job)
        self._jobs.append(job)

    def _settle(self, batch: Batch) -> None:
        batch.state = BatchState.SETTLED
        self._unsettled.discard(batch)
