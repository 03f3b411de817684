"""The ``metrics.histogram`` field of an aggregate document, derived from its ``metrics.sketch``.

Elasticsearch's ``histogram`` field type (x-pack analytics) takes two arrays of the same length,
``values`` in ascending order and their ``counts``, and answers ``percentiles`` aggregations on
them. :func:`histogram_fields` turns the mergeable sketch written by
:func:`~._aggregate.sketch_fields` into that form: the negative buckets (most negative value
first), the zero bucket, then the positive buckets, each bucket as its representative value
``2 * gamma ** (i - index_offset) / (1 + gamma)`` (mirrored for negative buckets), the value
:func:`~._aggregate.merged_quantile` returns for it. Fractional counts (a merged or collapsed
sketch) are rounded to whole numbers, as the field type requires; buckets rounded to zero are
left out. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._sketch import bucket_value as _value_of

__all__ = ["histogram_fields"]


def _buckets(store: Mapping[str, Any]) -> dict[int, float]:
    merged: dict[int, float] = {}
    for i, c in zip(store.get("indexes", ()), store.get("counts", ()), strict=True):
        merged[int(i)] = merged.get(int(i), 0.0) + float(c)
    return merged


def histogram_fields(sketch: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{"values": [...], "counts": [...]}`` of one ``metrics.sketch`` object.

    ``values`` are strictly ascending floats, ``counts`` positive integers summing to the
    sketch's count (rounded when the sketch holds fractional counts).
    """
    gamma = float(sketch["gamma"])
    offset = float(sketch.get("index_offset", 0.0))
    values: list[float] = []
    counts: list[int] = []

    def append(value: float, count: float) -> None:
        whole = round(count)
        if whole > 0:
            values.append(value)
            counts.append(whole)

    negative = _buckets(sketch.get("negative", {}))
    for index in sorted(negative, reverse=True):
        append(-_value_of(index, gamma, offset), negative[index])
    append(0.0, float(sketch.get("zero_count", 0)))
    positive = _buckets(sketch.get("positive", {}))
    for index in sorted(positive):
        append(_value_of(index, gamma, offset), positive[index])
    return {"values": values, "counts": counts}
