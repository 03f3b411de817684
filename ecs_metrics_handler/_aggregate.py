"""Aggregation on the worker: metrics folded into series, one document per series and interval.

With ``aggregation_interval`` set, the batcher hands every captured entry to an
:class:`Aggregator` instead of building a document for it. The aggregator keys each metric by
its series, ``(metrics.name, metrics.type, metrics.unit, labels)``, and by the interval its
record's time (``record.created``) falls in: intervals are aligned to multiples of
``aggregation_interval`` seconds since the epoch, so ``[k * interval, (k + 1) * interval)``.
At each interval's end (plus :data:`CLOSE_GRACE`), and on ``flush()``/``close()``, it ships one
document per series:

* counters: ``metrics.sum`` (the delta over the interval; an increment without ``value``
  counts 1) and ``metrics.count`` (the number of increments);
* gauges: ``metrics.last``, ``metrics.min``, ``metrics.max``, ``metrics.count``;
* timers and histograms: ``metrics.count``, ``metrics.sum``, ``metrics.min``, ``metrics.max``,
  ``metrics.p50``, ``metrics.p90``, ``metrics.p99`` from DDSketch buckets (the public
  logarithmic mapping of the ``ddsketch`` package, counted by :class:`~._sketch.BucketSketch`:
  the buckets, collapsing and quantiles of ``LogCollapsingLowestDenseDDSketch``) with a
  relative accuracy of :data:`RELATIVE_ACCURACY` (1 %): each quantile is within 1 % of a value
  whose rank is the exact quantile's. The sketch itself is kept in
  ``metrics.sketch`` (not indexed) so that intervals and processes can be merged again::

      {"gamma": 1.0202..., "index_offset": 0.0, "zero_count": 0,
       "positive": {"indexes": [...], "counts": [...]},
       "negative": {"indexes": [...], "counts": [...]}}

  A value ``v > 0`` was counted in bucket ``i`` when ``gamma ** (i - 1) < v <= gamma ** i``
  (``i = ceil(log(v) / log(gamma)) + index_offset``); negative values likewise by ``-v``.

Every aggregate document carries ``metrics.aggregated: true``, ``event.kind: "metric"``,
``@timestamp`` and ``event.start`` = the interval's start, ``event.end`` = its end,
``event.duration`` = its length in nanoseconds, plus the handler's static fields (``ecs``,
``service``, ``host``, ``agent`` with its per-process ``ephemeral_id``...) and ``process.pid``.

Parts: a ``flush()`` in the middle of an interval ships what the interval holds so far; what
arrives later for the same interval ships as another document (``metrics.part`` 1, 2, ...).
So does a record that reaches the worker more than :data:`CLOSE_GRACE` after its interval
ended (its thread was descheduled between logging and queueing it, on a loaded machine).
Summing the documents of a series always gives the exact totals.

Document ids are deterministic: the handler's per-process id prefix, the interval's start in
milliseconds, the part and a hash of the series key. A retry or a replay of the same document
therefore gets a ``409`` (counted as a duplicate), never a second copy; two processes (a forked
child gets a new prefix and an empty aggregator) never share an id.

Folding: :meth:`Aggregator.fold` validates each payload (``normalize_metric_fields``) and
builds its series key. Most payloads repeat a shape seen before with a new value;
:meth:`Aggregator.fold_fast` recognises those (:class:`~._series.PayloadShapes`) and adds the
value to the series directly, giving the same documents. Both run on the batcher thread.
:meth:`Aggregator.fold_now` is that fast path on the application's thread: it folds a metric
of a known shape into a series that exists already, without capturing or queueing it, when
the aggregator's lock is free and nothing older waits in the queue; otherwise (and for
anything it does not know) the metric is queued for the batcher as before.

Either way, adding a value to a series only appends it to the series' pending values
(:meth:`~._series.Series.add`): count, sum, last, min, max and the sketch's buckets are
folded from them in bulk, in the order added, when :data:`~._series.PENDING_LIMIT` of them
wait or the series' document is built (:meth:`~._series.Series.settle`). The numbers are
the same as folding each value at once (the same float sum, added in the same order).

``max_series`` caps the series of one interval: a metric of a new series beyond the cap is
folded into its metric name's overflow series (labels ``{"overflow": "true"}``) and counted in
``stats()["aggregated_overflow"]``. So memory holds at most ``max_series`` series plus one
overflow series per metric name (a few KiB each for timers, about 2 KiB for counters and
gauges, most of it values not settled yet).

Thread-safety: :attr:`Aggregator.lock` guards the series. The batcher holds it while it
takes entries from the queue and folds them, and while it takes intervals;
:meth:`Aggregator.fold_now` only tries it (never waits). Everything else is called by the
batcher thread alone (or by ``close()`` once it stopped).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any, Final

import orjson

from ._capture import Entry
from ._document import format_timestamp
from ._histogram import histogram_fields
from ._metric import MetricType, normalize_metric_fields
from ._serialize import bulk_pair, dumps
from ._series import Interval, PayloadShapes, Series, SeriesKey
from ._sketch import (
    RELATIVE_ACCURACY,
    BucketSketch,
    KeyCache,
    merged_quantile,
    require_ddsketch,
    sketch_fields,
    sketch_quantile,
)

__all__ = [
    "CLOSE_GRACE",
    "OVERFLOW_LABELS",
    "QUANTILES",
    "RELATIVE_ACCURACY",
    "Aggregator",
    "SeriesKey",
    "merged_quantile",
    "require_ddsketch",
    "sketch_fields",
]

#: The quantiles written, as ``(field, q)``.
QUANTILES: Final = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
#: Labels of the overflow series of a metric name.
OVERFLOW_LABELS: Final = (("overflow", "true"),)
#: Seconds after its end before an interval is shipped: records logged just before the end
#: may still be on their way into the queue (a thread descheduled between creating the
#: record and queueing it). One that arrives later still counts, as a further part.
CLOSE_GRACE: Final = 0.25


_floor: Final = math.floor  # a global: cheaper to reach than the module's attribute
#: :attr:`Aggregator._latest` when no interval is remembered: a range nothing falls in.
_NO_INTERVAL: Final[tuple[float, float, Interval | None]] = (math.inf, -math.inf, None)


class Aggregator:
    """Series of the open intervals of one handler in one process. See the module docstring.

    ``interval`` is in seconds; ``index_of(timestamp)`` names the index of a document;
    ``decorate(doc)`` adds the handler's static fields (``DocumentBuilder.decorate``);
    ``id_prefix`` identifies this handler in this process; ``pid`` goes to ``process.pid``.
    ``server_ids`` (time-series indices): send no ``_id``, the cluster derives it from the
    dimensions and ``@timestamp``. ``histogram()`` true: timer and histogram documents also
    carry ``metrics.histogram`` (see :mod:`._histogram`); read once per document.
    ``backlog``: the worker's queue of records not folded yet; :meth:`fold_now` folds only
    while it is empty, so that a metric folded at once overtakes no older record.
    """

    def __init__(
        self,
        interval: float,
        max_series: int,
        *,
        index_of: Callable[[float], str],
        decorate: Callable[[dict[str, Any]], None],
        id_prefix: str,
        dataset: str,
        pid: int,
        server_ids: bool = False,
        histogram: Callable[[], bool] | None = None,
        backlog: Collection[object] = (),
    ) -> None:
        require_ddsketch()
        self._backlog = backlog
        self._histogram = histogram
        self._server_ids = server_ids
        self.interval = interval
        self.max_series = max_series
        self._index_of = index_of
        self._decorate = decorate
        self._id_prefix = id_prefix
        self._dataset = dataset
        self._pid = pid
        self._duration_ns = round(interval * 1e9)
        self._open: dict[int, Interval] = {}
        #: the open interval folded into last, as ``(lo, hi, interval)``: every time in
        #: ``[lo, hi]`` falls in it (see :meth:`_interval_at`); :data:`_NO_INTERVAL` for none
        self._latest = _NO_INTERVAL
        #: per interval slot: the next part number (a flush shipped the earlier parts)
        self._parts: dict[int, int] = {}
        #: records folded so far, and those of them that went to overflow series
        self.folded = 0
        self.overflowed = 0
        #: records folded on application threads by fold_now (counted in ``aggregated``)
        self.folded_now = 0
        #: held by the batcher around taking entries and folding them, and around take()
        self.lock = threading.Lock()
        self._keys = KeyCache()
        self._shapes = PayloadShapes(2 * max_series + 1024)

    # -- folding ------------------------------------------------------------------------------

    def fold_now(self, payload: Any, created: float, seq: int) -> bool | None:
        """Fold a metric on the calling (application) thread, if it can be done at once.

        ``payload`` is the record's own, uncopied: it is read here and not kept. Folds, and
        returns True, only when the lock is free (it never waits), ``payload`` has a shape
        seen before, its series exists in the interval of ``created`` (epoch seconds) and
        ``seq`` is not older than that interval's records (the ledger's hold covers it).
        Otherwise folds nothing and returns None when the lock was busy (the batcher is at
        work) or older records wait in ``backlog`` (the batcher folds them first), False for
        the rest (the batcher has a series to open or a payload to validate); the caller
        then queues the metric for the batcher. Never raises.
        """
        lock = self.lock
        if self._backlog or not lock.acquire(False):
            return None
        try:
            lo, hi, interval = self._latest
            if not lo <= created <= hi:
                interval = self._interval_at(created)
            if interval is None or seq < interval.min_seq:
                return False
            series = self._shapes.series_in(interval, payload, learn=False)
            if series is None:
                return False
            series.add(payload.get("value"))
            self.folded_now += 1
            return True
        except Exception:  # an odd payload: the batcher's validating path says what is wrong
            return False
        finally:
            lock.release()

    def fold_fast(self, entry: Entry) -> bool:
        """Fold ``entry`` into its series if its payload has a shape seen before (see
        :class:`~._series.PayloadShapes`) and its series already exists in its interval.

        Returns False, folding nothing, for anything else: the caller then calls
        :meth:`fold`, which validates, creates intervals and series and handles overflow.
        Both paths give the same series, so the same documents. Call with :attr:`lock` held.
        """
        payload = entry.payload
        created = entry.created
        lo, hi, interval = self._latest
        if not lo <= created <= hi:
            interval = self._interval_at(created)
        series = self._shapes.series_in(interval, payload)  # None without an interval
        if series is None or interval is None:
            return False
        if entry.seq < interval.min_seq:  # noqa: PLR1730  (cheaper than a call)
            interval.min_seq = entry.seq
        series.add(payload.get("value"))
        self.folded += 1
        return True

    def _interval_at(self, created: float) -> Interval | None:
        """The open interval of ``created`` (epoch seconds), if any; remembered in
        :attr:`_latest` with the range of times that surely fall in it, so that the next
        metrics of the same interval need two comparisons, not a division and a lookup."""
        size = self.interval
        slot = _floor(created / size)
        interval = self._open.get(slot)
        if interval is not None:
            # The bounds as computed, moved inwards until the division maps them to the slot
            # (it is monotonic: so does everything between them).
            lo = slot * size
            while _floor(lo / size) < slot:
                lo = math.nextafter(lo, math.inf)
            hi = (slot + 1) * size
            while _floor(hi / size) > slot:
                hi = math.nextafter(hi, -math.inf)
            self._latest = (lo, hi, interval)
        return interval

    def fold(self, entry: Entry) -> None:
        """Fold one entry into its series, validating it: the reference path (see
        :meth:`fold_fast`). Raises ``InvalidMetricError`` for a bad payload."""
        (name, value, unit, kind, labels, _d, _s, _e, _o, _err) = normalize_metric_fields(
            entry.payload
        )
        slot = _floor(entry.created / self.interval)
        interval = self._open.get(slot)
        if interval is None:
            interval = self._open[slot] = Interval(
                slot * self.interval, self._parts.get(slot, 0), entry.seq
            )
        elif entry.seq < interval.min_seq:
            interval.min_seq = entry.seq
        kind_text = kind.value
        key: SeriesKey = (
            name,
            kind_text,
            unit,
            tuple(sorted(labels.items())) if labels else (),
        )
        series = interval.series.get(key)
        if series is None:
            if len(interval.series) >= self.max_series:
                key = (name, kind_text, unit, OVERFLOW_LABELS)
                series = interval.series.get(key)
                self.overflowed += 1
                interval.overflow += 1
            if series is None:
                series = interval.series[key] = self._new_series(kind, key)
        series.add(value)
        self.folded += 1

    def _new_series(self, kind: MetricType, key: SeriesKey) -> Series:
        timed = kind in (MetricType.TIMER, MetricType.HISTOGRAM)
        sketch = BucketSketch(self._keys) if timed else None
        labels = dict(key[3]) if key[3] else None
        return Series(kind is MetricType.COUNTER, sketch=sketch, labels=labels)

    # -- shipping -----------------------------------------------------------------------------

    def held_min_seq(self) -> int | None:
        """The lowest sequence number folded but not shipped yet (None: nothing held)."""
        return min((i.min_seq for i in self._open.values()), default=None)

    def series_count(self) -> int:
        """Series held in memory now, over every open interval."""
        return sum(len(i.series) for i in self._open.values())

    def due(self, now: float | None) -> bool:
        """Whether :meth:`take` would take an interval (batcher thread: it alone opens and
        takes intervals, so this needs no lock)."""
        return any(self._ended(interval, now) for interval in self._open.values())

    def _ended(self, interval: Interval, now: float | None) -> bool:
        """Whether ``interval`` ended :data:`CLOSE_GRACE` before ``now`` (always when None)."""
        return now is None or interval.start + self.interval + CLOSE_GRACE <= now

    def take(self, now: float | None) -> tuple[list[bytes], int | None]:
        """Documents of the intervals that ended at least :data:`CLOSE_GRACE` before ``now``
        (epoch seconds), or of every open interval when ``now`` is None (flush, close).

        Returns the bulk pairs and the lowest sequence number of the records they hold
        (None when there are none). The intervals taken are forgotten; a later record for one
        of them starts its next part.
        """
        slots = [slot for slot, interval in self._open.items() if self._ended(interval, now)]
        items: list[bytes] = []
        min_seq: int | None = None
        if slots:
            self._shapes.forget_series()  # they may point into the intervals taken
            self._latest = _NO_INTERVAL
        for slot in sorted(slots):
            interval = self._open.pop(slot)
            self._parts[slot] = interval.part + 1
            items.extend(self._documents(interval))
            if min_seq is None or interval.min_seq < min_seq:
                min_seq = interval.min_seq
        self._forget_old_parts(now)
        return items, min_seq

    def _forget_old_parts(self, now: float | None) -> None:
        # Part numbers are kept for intervals that may still get late records; far past ones
        # (an hour) go, so memory stays bounded in a long-running process.
        if len(self._parts) > 64 and now is not None:
            horizon = math.floor((now - 3600) / self.interval)
            for slot in [s for s in self._parts if s < horizon]:
                del self._parts[slot]

    def _documents(self, interval: Interval) -> Iterator[bytes]:
        start = interval.start
        end = start + self.interval
        index = self._index_of(start)
        start_text = format_timestamp(start)
        end_text = format_timestamp(end)
        millis = round(start * 1000)
        anonymous = b'{"create":{"_index":' + orjson.dumps(index) + b"}}\n"
        for key, series in interval.series.items():
            try:
                doc = self.document(key, series, start_text, end_text, interval.part)
            except Exception:  # a sketch that cannot be read: ship the exact numbers alone
                doc = self.document(key, series, start_text, end_text, interval.part, False)
            if self._server_ids:
                yield anonymous + dumps(doc) + b"\n"
                continue
            digest = hashlib.blake2b(repr(key).encode(), digest_size=9).hexdigest()
            doc_id = f"{self._id_prefix}~{millis:x}.{interval.part}.{digest}"
            yield bulk_pair(index, doc_id, dumps(doc))

    def document(
        self,
        key: SeriesKey,
        series: Series,
        start: str,
        end: str,
        part: int,
        quantiles: bool = True,
    ) -> dict[str, Any]:
        """The aggregate document of one series (see the module docstring for its fields);
        without the sketch's fields (quantiles, ``sketch``, ``histogram``) when ``quantiles``
        is false."""
        name, kind, unit, _labels = key
        series.settle()
        metrics: dict[str, Any] = {"name": name, "type": kind}
        if unit is not None:
            metrics["unit"] = unit
        metrics["aggregated"] = True
        metrics["count"] = series.count
        if kind == "counter":
            metrics["sum"] = series.total
        elif series.last is not None:
            if kind == "gauge":
                metrics["last"] = series.last
            else:
                metrics["sum"] = series.total
            metrics["min"] = series.minimum
            metrics["max"] = series.maximum
            sketch = series.sketch
            if quantiles and sketch is not None and sketch.count:
                for field_name, q in QUANTILES:
                    quantile = sketch_quantile(sketch, q)
                    assert quantile is not None  # the sketch holds values
                    metrics[field_name] = _clamp(quantile, series.minimum, series.maximum)
                metrics["sketch"] = sketch_fields(sketch)
                if self._histogram is not None and self._histogram():
                    metrics["histogram"] = histogram_fields(metrics["sketch"])
        if part:
            metrics["part"] = part
        doc: dict[str, Any] = {
            "@timestamp": start,
            "event": {
                "kind": "metric",
                "dataset": self._dataset,
                "start": start,
                "end": end,
                "duration": self._duration_ns,
            },
            "metrics": metrics,
        }
        if series.labels:
            doc["labels"] = dict(series.labels)
        doc["process"] = {"pid": self._pid}
        self._decorate(doc)
        return doc


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
