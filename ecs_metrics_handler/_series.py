"""The numbers of an aggregation series, and the shapes of payloads folded without validation.

:class:`Series` holds what one series accumulates in one interval (see ``_aggregate``'s
module docstring for the documents made of it). :class:`PayloadShapes` is the aggregator's
fast path: most payloads repeat a few ``(name, type, unit, labels)`` combinations with a new
``value``, so once one such payload was validated (``normalize_metric_fields``) and found to
normalise to itself, later ones of the same shape skip the validation and the series key's
construction (sorting the labels).

Not thread-safe: used with the aggregator's lock held (see ``_aggregate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from ._metric import MetricType, normalize_metric_fields
from ._sketch import BucketSketch
from .exceptions import InvalidMetricError

__all__ = ["PENDING_LIMIT", "Interval", "PayloadShapes", "Series", "SeriesKey", "Shape"]

#: (name, type, unit, sorted label pairs)
SeriesKey: TypeAlias = "tuple[str, str, str | None, tuple[tuple[str, Any], ...]]"

#: Payload keys that ``normalize_metric_fields`` checks and a series does not use: a payload
#: with any of them takes the validating path.
_VALIDATED_KEYS: Final = frozenset({"duration_ns", "start", "end", "outcome", "error_type"})
#: Label value types whose normal form depends on the type and value alone.
_LABEL_TYPES: Final = frozenset({str, int, float, bool, type(None)})
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
#: Values a series holds unsettled at most (see :meth:`Series.settle`): bounds its memory
#: (about 2 KiB: the list and the values it keeps alive), and what settling in bulk saves
#: over folding each value is already there.
PENDING_LIMIT: Final = 64


@dataclass(slots=True)
class Series:
    """The numbers of one series in one interval (and part).

    :meth:`add` only appends a value to :attr:`pending` (the hot path, also on application
    threads); :meth:`settle` folds what is pending into the numbers, in the order added (so
    ``total`` is the same sum as adding one by one), at most :data:`PENDING_LIMIT` values
    later. Read the numbers only after :meth:`settle`.
    """

    counter: bool = False
    count: int = 0
    total: float = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    last: float | None = None
    sketch: BucketSketch | None = None
    labels: dict[str, Any] | None = None
    #: values added and not settled yet, oldest first
    pending: list[float] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        """Add one metric's value (None: a counter's increment of 1; else counted only)."""
        if value is None:
            if not self.counter:
                self.count += 1
                return
            value = 1
        pending = self.pending
        pending.append(value)
        if len(pending) >= PENDING_LIMIT:
            self.settle()

    def settle(self) -> None:
        """Fold the pending values into count, total, last, min, max and the sketch."""
        values = self.pending
        if not values:
            return
        self.count += len(values)
        self.total = sum(values, self.total)
        if not self.counter:
            self.last = values[-1]
            low, high = min(values), max(values)
            if low < self.minimum:  # noqa: PLR1730  (two bounds, one reading)
                self.minimum = low
            if high > self.maximum:  # noqa: PLR1730
                self.maximum = high
            if self.sketch is not None:
                self.sketch.add_all(values, low, high)
        values.clear()


@dataclass(slots=True)
class Interval:
    """The series of one interval (and part) still open."""

    start: float
    part: int
    min_seq: int
    series: dict[SeriesKey, Series] = field(default_factory=dict)
    overflow: int = 0


@dataclass(slots=True)
class Shape:
    """What is known of a payload shape: its series key, the types of its label values
    (None: all str), and its series in the interval it last folded into (both None after
    :meth:`PayloadShapes.forget_series`)."""

    key: SeriesKey
    label_types: tuple[type, ...] | None
    interval: Interval | None = None
    series: Series | None = None


class PayloadShapes:
    """Valid payload shapes seen, by ``(name, type, unit, label items)``; at most ``limit``
    (then it starts over).

    :meth:`series_in` answers a payload that has the shape of one seen before: a dict of
    ``name`` (str), ``value`` (a finite float, an int of 64 bits or None), ``unit`` (str or
    None), ``type`` (str, :class:`MetricType` or None) and ``labels`` (a dict or None) and
    no key that ``normalize_metric_fields`` would check (``duration_ns``, ``start``,
    ``end``, ``outcome``, ``error_type``), equal to a payload validated before whose label
    keys were str and label values of the same types, each str, int, float, bool or None.
    Such a payload is valid and normalises to the same series key, so validating it again
    would change nothing. Anything else gets None (and, when valid and of a reusable form,
    is remembered for next time).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._shapes: dict[tuple[Any, ...], Shape] = {}

    def series_in(
        self, interval: Interval | None, payload: Any, *, learn: bool = True
    ) -> Series | None:
        """The series of ``payload`` in ``interval`` if its shape was seen before (see the
        class docstring) and the series exists there, else None (always for no interval).

        ``learn``: remember a new valid shape (it validates the payload: the batcher's work,
        not the application thread's).
        """
        if type(payload) is not dict or not _VALIDATED_KEYS.isdisjoint(payload):
            return None
        get = payload.get
        name = get("name")
        unit = get("unit")
        raw_type = get("type")
        if type(name) is not str or (unit is not None and type(unit) is not str):
            return None
        if raw_type is not None and type(raw_type) is not str and type(raw_type) is not MetricType:
            return None
        value: Any = get("value")
        value_type = type(value)
        if value_type is float:
            if value - value != 0.0:  # inf or nan
                return None
        elif value_type is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                return None
        elif value is not None:
            return None
        raw_labels: Any = get("labels")
        if raw_labels:
            if type(raw_labels) is not dict:
                return None
            items: tuple[Any, ...] = tuple(raw_labels.items())
        elif raw_labels is None or type(raw_labels) is dict:
            items = ()
        else:
            return None
        shape_key = (name, raw_type, unit, items)
        try:
            shape = self._shapes.get(shape_key)
        except TypeError:  # an unhashable type or label value
            return None
        if shape is None:
            if learn:
                self._learn(payload, shape_key)
            return None
        label_types = shape.label_types
        if label_types is not None and tuple(map(type, raw_labels.values())) != label_types:
            return None
        series = shape.series
        if interval is not shape.interval or series is None:
            if interval is None:
                return None
            series = interval.series.get(shape.key)
            if series is None:
                return None
            shape.interval = interval
            shape.series = series
        return series

    def _learn(self, payload: dict[str, Any], shape_key: tuple[Any, ...]) -> None:
        try:
            (name, _v, unit, kind, labels, *_rest) = normalize_metric_fields(payload)
        except InvalidMetricError:
            return  # the validating path rejects it, with its reason
        raw_labels = payload.get("labels") or {}
        if any(type(k) is not str for k in raw_labels):
            return
        value_types = tuple(map(type, raw_labels.values()))
        if not _LABEL_TYPES.issuperset(value_types):
            return
        if len(self._shapes) >= self._limit:
            self._shapes.clear()
        key: SeriesKey = (name, kind.value, unit, tuple(sorted(labels.items())) if labels else ())
        all_str = all(t is str for t in value_types)
        self._shapes[shape_key] = Shape(key, None if all_str else value_types)

    def forget_series(self) -> None:
        """Drop every shape's reference to an interval and its series (intervals shipped)."""
        for shape in self._shapes.values():
            shape.interval = shape.series = None

    def __len__(self) -> int:
        return len(self._shapes)
