"""The sender thread: one batch at a time to the cluster, and the spooled segments after an outage.

:class:`Sender` takes the oldest batch from the :class:`~._ledger.Ledger`, runs
:func:`~._delivery.deliver` on it, counts and reports the outcome, and settles the batch or
hands what is left back to the ledger for the spooler. While the :class:`~._breaker.OutageBreaker`
is open, batches go straight to the spooler (one segment for many); once the cluster answers,
the sender replays the spooled segments, oldest first, through :func:`~._resend.send_items`,
the path :func:`~ecs_metrics_handler.replay` uses too.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ._breaker import OutageBreaker
from ._delivery import Delivery, RetryPolicy, deliver
from ._folder_writer import FolderWriter
from ._ledger import Batch, Ledger
from ._report import Reporter
from ._resend import send_items
from ._shipper import Shipper
from ._stats import DeliveryStats
from ._template_install import TemplateInstaller

__all__ = ["SEGMENT_BYTES", "Sender"]

#: during an outage, the batches waiting to ship go to one segment up to this size
SEGMENT_BYTES = 16 << 20


class Sender:
    """Ships batches and replays segments for one handler; runs on its own thread.

    ``halt`` set: stop sending, what is left goes to the spooler; ``stopping`` set: return
    once nothing is queued. ``chunk_docs`` is the number of documents per replayed request,
    ``interval`` the longest wait (seconds) between two looks at the ledger and the folder.
    """

    def __init__(
        self,
        ledger: Ledger,
        breaker: OutageBreaker,
        *,
        shipper_factory: Callable[[], Shipper],
        policy: RetryPolicy,
        templates: TemplateInstaller,
        folder: FolderWriter,
        stats: DeliveryStats,
        reporter: Reporter,
        chunk_docs: int,
        interval: float,
        halt: threading.Event,
        stopping: threading.Event,
    ) -> None:
        self._ledger = ledger
        self._breaker = breaker
        self._shipper_factory = shipper_factory
        self._shipper: Shipper | None = None
        self._policy = policy
        self._templates = templates
        self._folder = folder
        self._spool = folder.spool
        self._stats = stats
        self._reporter = reporter
        self._bulk_docs = chunk_docs
        self._interval = interval
        self._halt = halt
        self._stopping = stopping
        #: whether the failure folder may hold segments to replay (set by the spooler)
        self.spool_waiting = self._spool is not None

    def close_shipper(self) -> None:
        """Release the client's connections (call once the sender thread has ended)."""
        shipper, self._shipper = self._shipper, None
        if shipper is not None:
            shipper.close()

    def run(self) -> None:
        """The sender thread's loop; returns once the worker is stopping and nothing is queued.

        When the templates wait to be installed with the ``histogram`` detection (aggregation
        on), they are tried first, before any batch waits: the first interval's documents are
        then usually built knowing the answer. A cluster that does not answer yet is retried
        before the first request, as always.
        """
        if self._templates.detects_histogram:
            self._install_early()
        while True:
            batch = self._ledger.next_batch(
                self._sender_wait(),
                stop_waiting=lambda: self._stopping.is_set() or self._replay_due(),
            )
            try:
                if batch is not None:
                    self._send(batch)
                elif self._stopping.is_set():
                    return
                elif self._replay_due():
                    self._replay_one()
            except Exception:  # pragma: no cover - a bug; keep the data and the thread
                self._reporter.error("sender", "ecs_metrics_handler: sender failed", exc_info=True)
                if batch is not None:
                    self._ledger.give_up(batch, batch.unacknowledged(), "internal error")

    def _install_early(self) -> None:
        # the cluster is away (or the client cannot be built): retried before the first request
        with contextlib.suppress(Exception):
            self._templates.ensure(self._get_shipper())

    def _sender_wait(self) -> float:
        if self.spool_waiting and self._spool is not None:
            return max(0.05, min(self._interval, self._breaker.seconds_to_probe()))
        return self._interval

    def _get_shipper(self) -> Shipper:
        if self._shipper is None:
            self._shipper = self._shipper_factory()
        return self._shipper

    def _send(self, batch: Batch) -> None:
        shipper = self._get_shipper()
        delivery = deliver(
            batch.items,
            shipper,
            policy=self._policy,
            breaker=self._breaker,
            hand_over=partial(self._ledger.hand_over, batch),
            wait=self._halt.wait,
            halted=self._halt.is_set,
            before_each=partial(self._templates.ensure, shipper),
        )
        self._account(delivery)
        if delivery.taken:
            return
        if delivery.outage:
            self._ledger.give_up_outage(batch, delivery.left, delivery.reason, SEGMENT_BYTES)
        elif delivery.left:
            self._ledger.give_up(batch, delivery.left, delivery.reason)
        else:
            self._ledger.settle(batch)

    def _account(self, d: Delivery) -> None:
        """Count and report one delivery; write its dead letters (blocking disk I/O)."""
        self._stats.add("shipped", d.done)
        self._stats.add("duplicates", d.duplicates)
        self._stats.add("retried", d.retried)
        if d.recovered:
            self._reporter.info("ecs_metrics_handler: the cluster answers again")
        if d.refusal is not None:
            self._reporter.error("refused", "ecs_metrics_handler: %s", d.refusal)
        if d.gave_up is not None:
            self._reporter.warning(
                "retries",
                "ecs_metrics_handler: giving up after %d retries (%s); "
                "%d document(s) go to the failure folder",
                self._policy.max_retries,
                d.gave_up,
                len(d.left),
            )
        if d.letters:
            self._stats.add("dead_lettered", len(d.letters))
            first = d.letters[0]
            self._reporter.warning(
                "dead-letter",
                "ecs_metrics_handler: %d document(s) refused by the cluster, first: HTTP %s %s",
                len(d.letters),
                first.status,
                _reason_text(first.error),
            )
            self._folder.dead_letter(d.letters)

    def _replay_due(self) -> bool:
        if not self.spool_waiting or self._spool is None or self._halt.is_set():
            return False
        return self._breaker.allows_request()

    def _replay_one(self) -> None:
        spool = self._spool
        assert spool is not None
        spool.recover_stale_claims()
        claim = spool.claim_oldest()
        self._folder.report_unreadable()
        if claim is None:
            self.spool_waiting = False
            return
        try:
            shipper = self._get_shipper()
            outcome = send_items(
                shipper,
                claim.items,
                self._bulk_docs,
                before_each=partial(self._templates.ensure, shipper),
                halted=self._halt.is_set,
            )
        except BaseException:
            claim.release(claim.items)
            raise
        self._stats.add("replayed", outcome.done)
        self._stats.add("duplicates", outcome.duplicates)
        if outcome.letters:
            self._reporter.warning(
                "dead-letter",
                "ecs_metrics_handler: %d replayed document(s) refused by the cluster",
                len(outcome.letters),
            )
            self._folder.dead_letter(outcome.letters)
        self._folder.quarantine(outcome.refused, outcome.refused_reason)
        if outcome.stopped is not None:
            self._breaker.failed()
            self._reporter.warning(
                "replay", "ecs_metrics_handler: replay paused: %s", outcome.stopped
            )
        elif outcome.answered and self._breaker.answered():
            self._reporter.info("ecs_metrics_handler: the cluster answers again")
        if outcome.left:
            claim.release(outcome.left)
        else:
            claim.done()


def _reason_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return f"{error.get('type', '')}: {error.get('reason', '')}"
    return str(error)
