"""Sketches for the report: raw values put into a ``metrics.sketch`` object, and many merged.

:mod:`ecs_metrics_handler._aggregate` writes each aggregated document's DDSketch as a
``metrics.sketch`` object and reads them with :func:`~ecs_metrics_handler._sketch.merged_quantile`.
The report merges the stored sketches of a metric once (:func:`merge_sketches`) and, when the
metric also has raw documents, adds their values as a sketch of the same mapping
(:func:`values_sketch`), so that one error bound (the sketch's relative accuracy) covers all.
Pure and thread-safe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["merge_sketches", "values_sketch"]


def values_sketch(values: Iterable[float], gamma: float, index_offset: float) -> dict[str, Any]:
    """Raw values as a ``metrics.sketch`` object of the given mapping, so that
    :func:`merged_quantile` merges them with stored sketches: ``v > 0`` counts in bucket
    ``ceil(log(v) / log(gamma)) + index_offset``, negative values likewise by ``-v``, zero in
    ``zero_count``."""
    stores: tuple[dict[int, int], dict[int, int]] = ({}, {})
    zero = 0
    log_gamma = math.log(gamma)
    for value in values:
        if value == 0 or not math.isfinite(value):
            zero += value == 0
            continue
        store = stores[0] if value > 0 else stores[1]
        index = math.ceil(math.log(abs(value)) / log_gamma + index_offset)
        store[index] = store.get(index, 0) + 1

    def fields(store: dict[int, int]) -> dict[str, list[int]]:
        indexes = sorted(store)
        return {"indexes": indexes, "counts": [store[i] for i in indexes]}

    return {
        "gamma": gamma,
        "index_offset": index_offset,
        "zero_count": zero,
        "positive": fields(stores[0]),
        "negative": fields(stores[1]),
    }


def merge_sketches(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One ``metrics.sketch`` object holding the bucket counts of ``parts`` added up (the mapping
    of the first; all share it: the handler writes one accuracy). :func:`merged_quantile` of
    the result equals that of ``parts``."""
    stores: tuple[dict[int, float], dict[int, float]] = ({}, {})
    zero = 0.0
    for part in parts:
        zero += float(part.get("zero_count", 0))
        for target, sign in zip(stores, ("positive", "negative"), strict=True):
            store = part[sign]
            for i, c in zip(store["indexes"], store["counts"], strict=True):
                target[int(i)] = target.get(int(i), 0.0) + float(c)

    def fields(store: dict[int, float]) -> dict[str, list[Any]]:
        indexes = sorted(store)
        return {"indexes": indexes, "counts": [store[i] for i in indexes]}

    first = parts[0]
    return {
        "gamma": first["gamma"],
        "index_offset": first.get("index_offset", 0.0),
        "zero_count": zero,
        "positive": fields(stores[0]),
        "negative": fields(stores[1]),
    }
