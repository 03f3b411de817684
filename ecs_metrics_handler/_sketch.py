"""DDSketch bucket counts of a series' values, and the mergeable ``metrics.sketch`` form.

A :class:`BucketSketch` counts values in the buckets of ``ddsketch``'s logarithmic mapping
(``ddsketch.mapping.LogarithmicMapping(RELATIVE_ACCURACY)``: its public ``key``, ``value``,
``gamma`` and ``min_possible``; for values added in bulk its ``_multiplier``, checked against
``key`` first, see :func:`_bulk_multiplier`), the same buckets, collapsing and quantiles as
``ddsketch.LogCollapsingLowestDenseDDSketch(relative_accuracy=RELATIVE_ACCURACY,
bin_limit=BIN_LIMIT)``:

* a value ``v > min_possible`` counts in the positive bucket ``key(v)``, ``v < -min_possible``
  in the negative bucket ``key(-v)``, anything between in ``zero_count``; a magnitude beyond
  ``max_possible`` (about ``1.76e308``, where ``ddsketch`` itself refuses the value) counts in
  the bucket of ``max_possible``, so a quantile stays a finite float;
* when the buckets of one sign span more than :data:`BIN_LIMIT` indexes, the lowest ones are
  merged into the lowest index kept (``max - BIN_LIMIT + 1``); the result does not depend on
  the order of the values;
* quantile ``q``: the bucket holding rank ``q * (count - 1)``, its value ``value(index)``
  (``0`` for the zero bucket).

The bucket of a value is remembered in a dict shared by the sketches of one aggregator
(:class:`KeyCache`), so adding a value seen before costs no logarithm: a dict lookup and a
count. Values added together (:meth:`BucketSketch.add_all`) that are all positive, as timings
are, have their buckets computed in one pass of C-level ``map`` calls and counted by
``Counter.update``. Memory per sketch: its buckets, at most ``BIN_LIMIT`` per sign (usually a
few dozen).

Not thread-safe: the sketches of an aggregator are used only under its lock (by the batcher,
or by an application thread folding a metric at once).
"""

from __future__ import annotations

import math
import operator
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, Final

from .exceptions import ConfigurationError

__all__ = [
    "BIN_LIMIT",
    "INDEX_OFFSET",
    "RELATIVE_ACCURACY",
    "BucketSketch",
    "KeyCache",
    "bucket_value",
    "merged_quantile",
    "require_ddsketch",
    "sketch_fields",
    "sketch_quantile",
]

#: The sketch's relative accuracy: a quantile is within 1 % of a value of the exact rank.
RELATIVE_ACCURACY: Final = 0.01
#: Buckets a sketch keeps per sign; beyond that the lowest ones are merged (a range of
#: about 1e17 between the smallest and the largest value at 1 %).
BIN_LIMIT: Final = 2048
#: ``metrics.sketch.index_offset``: the mapping is built with no offset.
INDEX_OFFSET: Final = 0.0
#: Values whose bucket a :class:`KeyCache` remembers before it starts over.
_KEY_CACHE_LIMIT: Final = 8192


class KeyCache:
    """The bucket of a value, remembered: one per aggregator, shared by its sketches.

    ``buckets`` maps a value to its bucket index (the index of ``-value`` for a negative
    one), or to None for the zero bucket. Bounded: it starts over after
    :data:`_KEY_CACHE_LIMIT` values.
    """

    __slots__ = (
        "_key",
        "_multiplier",
        "_top",
        "buckets",
        "gamma",
        "mapping",
        "max_possible",
        "min_possible",
    )

    def __init__(self) -> None:
        from ddsketch.mapping import LogarithmicMapping

        self.mapping = LogarithmicMapping(RELATIVE_ACCURACY, offset=INDEX_OFFSET)
        self.gamma: float = self.mapping.gamma
        self.min_possible: float = self.mapping.min_possible
        self.max_possible: float = self.mapping.max_possible
        self._key = self.mapping.key
        self._top = int(self._key(self.max_possible))
        self._multiplier = _bulk_multiplier(self.mapping)
        self.buckets: dict[float, int | None] = {}

    def bucket(self, value: float) -> int | None:
        """The bucket index of ``value`` (computed, then remembered)."""
        magnitude = abs(value)
        if magnitude > self.max_possible:
            found: int | None = self._top
        elif magnitude > self.min_possible:
            found = int(self._key(magnitude))
        else:
            found = None
        buckets = self.buckets
        if len(buckets) >= _KEY_CACHE_LIMIT:
            buckets.clear()
        buckets[value] = found
        return found

    def positive_buckets(self, values: Sequence[float]) -> list[int]:
        """The bucket indexes of ``values``, each in ``(min_possible, max_possible]``: the
        same as :meth:`bucket`, the remembered ones looked up, else all computed in one pass
        (and remembered)."""
        buckets = self.buckets
        found: list[Any] = list(map(buckets.get, values))
        if None not in found:
            return found
        multiplier = self._multiplier
        if multiplier is None:
            return [int(self._key(value)) for value in values]
        logs = map(operator.truediv, map(math.log, values), repeat(_LN2))
        computed = list(map(math.ceil, map(operator.mul, logs, repeat(multiplier))))
        if len(buckets) >= _KEY_CACHE_LIMIT:
            buckets.clear()
        buckets.update(zip(values, computed, strict=True))
        return computed


_MISSING: Final = object()
_LN2: Final = math.log(2.0)
#: Values whose buckets :func:`_bulk_multiplier` checks against the mapping's ``key``.
_PROBES: Final = (1e-300, 1e-9, 0.001, 0.5, 1.0, 1.01, 1.5, 2.0, 10.0, 12345.678, 1e300)


def _bulk_multiplier(mapping: Any) -> float | None:
    """The multiplier ``m`` for which ``ceil(log(v) / log(2) * m)`` is ``mapping.key(v)``.

    ``LogarithmicMapping.key(v)`` is ``int(ceil(log(v, 2) * multiplier) + offset)``, and
    ``math.log(v, 2)`` is ``log(v) / log(2)``; with no offset (:data:`INDEX_OFFSET`) that is
    the formula. The multiplier is the mapping's own (not public), so it is checked on a few
    values first: None (buckets computed one by one) when it is missing or disagrees.
    """
    multiplier = getattr(mapping, "_multiplier", None)
    if type(multiplier) is not float or INDEX_OFFSET != 0.0:
        return None
    for value in _PROBES:
        if math.ceil(math.log(value) / _LN2 * multiplier) != int(mapping.key(value)):
            return None
    return multiplier


def bucket_value(index: int, gamma: float, offset: float = 0.0) -> float:
    """The representative value ``2 * gamma ** (index - offset) / (1 + gamma)`` of a bucket
    read back from a ``metrics.sketch``, at most the largest float (no overflow for the top
    buckets, nor for an index out of any real sketch's range)."""
    try:
        power: float = gamma ** (index - offset)
    except OverflowError:
        return sys.float_info.max
    value = 2 * power / (1 + gamma)
    if value == math.inf:  # 2 * power overflowed: the same value, divided first
        value = power * (2 / (1 + gamma))
    return min(value, sys.float_info.max)


class BucketSketch:
    """Bucket counts of one series' values (see the module docstring). ``add_all`` is the
    hot path: per value, a dict lookup of its bucket and a count."""

    __slots__ = ("_cached", "_keys", "negative", "positive", "zero_count")

    def __init__(self, keys: KeyCache) -> None:
        self._keys = keys
        self._cached = keys.buckets
        self.positive: Counter[int] = Counter()
        self.negative: dict[int, int] = {}
        self.zero_count = 0

    def add(self, value: float) -> None:
        """Count one value (finite; as :meth:`add_all`)."""
        self.add_all((value,))

    def add_all(
        self, values: Sequence[float], low: float | None = None, high: float | None = None
    ) -> None:
        """Count each of ``values`` (finite): its bucket's count plus one.

        ``low`` and ``high``: ``min(values)`` and ``max(values)``, when the caller has them
        already (else computed here); they only choose the path, not the buckets.
        """
        if not values:
            return
        keys = self._keys
        if low is None:
            low = min(values)
        if high is None:
            high = max(values)
        if low > keys.min_possible and high <= keys.max_possible:
            positive = self.positive
            positive.update(keys.positive_buckets(values))
            if len(positive) > BIN_LIMIT:
                _collapse_lowest(positive)
            return
        cached = self._cached
        positive, negative = self.positive, self.negative
        for value in values:
            index: Any = cached.get(value, _MISSING)
            if index is _MISSING:
                index = keys.bucket(value)
            if index is None:
                self.zero_count += 1
                continue
            store = positive if value > 0 else negative
            seen = store.get(index)
            if seen is None:
                store[index] = 1
                if len(store) > BIN_LIMIT:
                    _collapse_lowest(store)
            else:
                store[index] = seen + 1

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.positive.values()) + sum(self.negative.values())

    @property
    def gamma(self) -> float:
        return self._keys.gamma

    def settle(self) -> None:
        """Collapse the lowest buckets of each sign beyond :data:`BIN_LIMIT` indexes."""
        _collapse_lowest(self.positive)
        _collapse_lowest(self.negative)

    def value_of(self, index: int) -> float:
        """The representative value of positive bucket ``index``."""
        return float(self._keys.mapping.value(index))


def _collapse_lowest(store: dict[int, int]) -> None:
    if len(store) < 2:
        return
    top = max(store)
    low = top - BIN_LIMIT + 1
    if min(store) >= low:
        return
    merged = 0
    for index in [i for i in store if i < low]:
        merged += store.pop(index)
    store[low] = store.get(low, 0) + merged


def _key_at_rank(store: dict[int, int], rank: float, lower: bool) -> int:
    running = 0
    for index in sorted(store):
        running += store[index]
        if (lower and running > rank) or (not lower and running >= rank + 1):
            return index
    return max(store)


def sketch_quantile(sketch: BucketSketch, q: float) -> float | None:
    """Quantile ``q`` (0..1) as ``ddsketch``'s ``get_quantile_value``; None when empty."""
    sketch.settle()
    count = sketch.count
    if q < 0 or q > 1 or count == 0:
        return None
    rank = q * (count - 1)
    negative_count = sum(sketch.negative.values())
    if rank < negative_count:
        index = _key_at_rank(sketch.negative, negative_count - rank - 1, lower=False)
        return -sketch.value_of(index)
    if rank < sketch.zero_count + negative_count:
        return 0
    index = _key_at_rank(sketch.positive, rank - sketch.zero_count - negative_count, lower=True)
    return sketch.value_of(index)


def _store_fields(store: dict[int, int]) -> dict[str, list[int]]:
    indexes = sorted(i for i, c in store.items() if c)
    return {"indexes": indexes, "counts": [store[i] for i in indexes]}


def sketch_fields(sketch: BucketSketch) -> dict[str, Any]:
    """The mergeable form of a sketch written to ``metrics.sketch``::

    {"gamma": 1.0202..., "index_offset": 0.0, "zero_count": 0,
     "positive": {"indexes": [...], "counts": [...]},
     "negative": {"indexes": [...], "counts": [...]}}

    Indexes ascending, counts exact integers.
    """
    sketch.settle()
    return {
        "gamma": sketch.gamma,
        "index_offset": INDEX_OFFSET,
        "zero_count": sketch.zero_count,
        "positive": _store_fields(sketch.positive),
        "negative": _store_fields(sketch.negative),
    }


def merged_quantile(sketches: Mapping[str, Any] | list[Mapping[str, Any]], q: float) -> float:
    """Quantile ``q`` of one or more ``metrics.sketch`` objects merged (bucket counts added).

    The inverse of :func:`sketch_fields`, for readers of the documents (and the tests): the
    value returned is the bucket's representative ``2 * gamma ** i / (1 + gamma)``, within the
    sketch's relative accuracy of a value of that rank. Raises ``ValueError`` when empty.
    """
    parts = [sketches] if isinstance(sketches, Mapping) else list(sketches)
    if not parts:
        raise ValueError("no sketch")
    gamma = float(parts[0]["gamma"])
    offset = float(parts[0].get("index_offset", 0.0))
    positive: dict[int, float] = {}
    negative: dict[int, float] = {}
    zero = 0.0
    for part in parts:
        zero += float(part.get("zero_count", 0))
        for target, store in ((positive, part["positive"]), (negative, part["negative"])):
            for i, c in zip(store["indexes"], store["counts"], strict=True):
                target[int(i)] = target.get(int(i), 0.0) + float(c)
    total = zero + sum(positive.values()) + sum(negative.values())
    if total <= 0:
        raise ValueError("empty sketch")
    rank = q * (total - 1)

    def value_of(index: int) -> float:
        return bucket_value(index, gamma, offset)

    seen = 0.0
    for index in sorted(negative, reverse=True):
        seen += negative[index]
        if seen > rank:
            return -value_of(index)
    seen += zero
    if seen > rank:
        return 0.0
    for index in sorted(positive):
        seen += positive[index]
        if seen > rank:
            return value_of(index)
    return value_of(max(positive)) if positive else 0.0


def require_ddsketch(option: str = "aggregation_interval") -> None:
    """Raise :class:`ConfigurationError` naming what to install when ``ddsketch`` is missing."""
    try:
        import ddsketch  # noqa: F401
    except ImportError as e:
        raise ConfigurationError(
            option,
            "the ddsketch package installed (pip install 'ecs-metrics-handler[aggregation]')",
            "aggregation without ddsketch",
        ) from e
