"""Delivery counters: what happened to every metric the handler accepted.

Accounting (per handler, per process): every record the handler accepts for shipping gets a
sequence number and is counted in ``emitted``. It then ends in exactly one of

* ``shipped``: acknowledged by the cluster on the live path (``duplicates`` counts the part
  of it that the cluster already held, a ``409`` on ``create``);
* ``spooled``: written to the failure folder (``replayed`` later counts the spooled
  documents that a replay got acknowledged: a subset of ``spooled``, not an outcome of its own);
* ``dead_lettered``: refused by the cluster for a reason a retry cannot fix (a mapping
  conflict...), written to the dead-letter file with that reason when a folder is set;
* ``invalid``: a payload that cannot become a document (no name, a value that is not a
  finite number...);
* ``dropped``: lost on purpose, with the reason counted in ``dropped_reasons`` and reported
  through the ``ecs_metrics_handler`` logger (no failure folder, the folder is full, the
  in-memory queue is full);

or it is still ``pending``. So ``emitted == shipped + spooled + dead_lettered + invalid +
dropped + pending`` at any time.

With ``aggregation_interval`` a valid metric's outcome is ``aggregated``: folded into a series
(``aggregated_overflow`` counts the part of it folded into an overflow series beyond
``max_series``). The documents built from the series are counted in ``aggregates`` and then,
like any document, end in ``shipped``, ``spooled``, ``dead_lettered`` or ``dropped``; so then
``emitted + aggregates == shipped + spooled + dead_lettered + invalid + dropped + aggregated +
pending``: a folded record counts in ``aggregated`` at once, and ``pending`` counts the
queued records and the aggregate documents not settled yet.

``untrusted`` stands outside that identity: documents found in the failure folder that this
handler does not write (another action, index or id form; see ``_segment_file.ReplayPolicy``),
quarantined and never sent.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["DeliveryStats"]

_FIELDS = (
    "shipped",
    "duplicates",
    "retried",
    "spooled",
    "replayed",
    "dead_lettered",
    "invalid",
    "dropped",
    "untrusted",
    "aggregated",
    "aggregated_overflow",
    "aggregates",
)


class DeliveryStats:
    """Thread-safe counters of one handler.

    Written by the worker threads (and, for drops, by application threads) under this
    object's own lock; ``emitted`` is the handler's sequence counter, passed to
    :meth:`snapshot`.
    Reading with :meth:`snapshot` is consistent enough for monitoring; exact accounting
    holds once the handler is flushed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.shipped = 0
        self.duplicates = 0
        self.retried = 0
        self.spooled = 0
        self.replayed = 0
        self.dead_lettered = 0
        self.invalid = 0
        self.dropped = 0
        self.untrusted = 0
        self.aggregated = 0
        self.aggregated_overflow = 0
        self.aggregates = 0
        self.dropped_reasons: Counter[str] = Counter()
        self._sources: list[tuple[str, Callable[[], int]]] = []

    def add_source(self, field: str, read: Callable[[], int]) -> None:
        """Count in ``field`` also what ``read()`` returns at each snapshot: a counter kept
        elsewhere, where taking this lock would cost too much (the aggregator's count of the
        metrics folded on application threads)."""
        self._sources.append((field, read))

    def add(self, field: str, n: int = 1) -> None:
        """Add ``n`` to ``field`` (one of the counter names)."""
        if n:
            with self._lock:
                setattr(self, field, getattr(self, field) + n)

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` documents dropped for ``reason``."""
        if n:
            with self._lock:
                self.dropped += n
                self.dropped_reasons[reason] += n

    def snapshot(self, emitted: int, pending: int) -> dict[str, Any]:
        """Return the counters as a plain dict, with ``emitted``, ``pending`` and the reasons."""
        with self._lock:
            out: dict[str, Any] = {"emitted": emitted}
            out.update((name, getattr(self, name)) for name in _FIELDS)
            out["dropped_reasons"] = dict(self.dropped_reasons)
        for field, read in self._sources:
            out[field] += read()
        out["pending"] = pending
        return out
