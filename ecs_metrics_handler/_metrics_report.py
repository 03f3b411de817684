"""``python -m ecs_metrics_handler report``: per metric over a time range, from the cluster.

:func:`metrics_report` asks the handler's indices (``{es_index_name}-*``, or the data stream)
for the documents whose ``@timestamp`` lies in ``[start, end)`` and returns one
:class:`~ecs_metrics_handler._report_format.MetricRow` per ``(metrics.name, metrics.type,
metrics.unit)``. Raw documents and aggregated ones (``metrics.aggregated: true``, see
``_aggregate.py``) count alike; an aggregated document counts in the range by its interval's
start.

One search with server-side aggregations gives what is exact for both shapes: events (a raw
document is one, an aggregated one ``metrics.count``), sums (a raw counter without a value
counts 1; an aggregated counter's ``metrics.sum`` is its delta), minimum, maximum and events
per time bucket (a ``date_histogram`` aligned to ``start``) for the spark line. Aggregated
gauges keep no sum, so a name that has them gets no average.

Percentiles (50, 95, 99; none for counters):

* raw documents only: the cluster's ``percentiles`` aggregation on ``metrics.value``, a
  TDigest estimate (approximate; close to exact for small counts);
* any aggregated documents: their ``metrics.sketch`` objects are fetched (at most
  ``fetch_limit`` documents per row) and merged with
  :func:`~ecs_metrics_handler._sketch.merged_quantile`, within 1 % of a value of that
  rank. When the same row also has raw documents, their values (at most ``fetch_limit``) are
  put into a sketch of the same accuracy and merged too, so the percentiles cover every value
  with one error bound. Past the limit the row is marked ``capped`` and its percentiles come
  from the documents fetched;
* aggregated documents without a sketch (gauges): no percentiles.

Blocking: one search, plus one or two per row that needs sketches, each bounded by the client's
``request_timeout``. Works with elasticsearch-py 8/9 and opensearch-py (the handler's own
client, see ``_shipper.py``). Not thread-safe only in that it uses one client; call it from one
thread.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Final

from ._check import _reason, _Requests
from ._config import HandlerOptions
from ._report_format import PERCENTS, MetricRow, TimeRange
from ._report_sketch import merge_sketches, values_sketch
from ._shipper import ElasticsearchShipper, OpenSearchShipper, make_shipper
from ._sketch import merged_quantile
from .exceptions import EcsMetricsHandlerError

__all__ = [
    "DEFAULT_FETCH_LIMIT",
    "AggregatedPart",
    "RawPart",
    "ReportError",
    "combine",
    "metrics_report",
    "report_target",
]

#: Documents fetched per row for merging sketches (the default ``index.max_result_window``).
DEFAULT_FETCH_LIMIT: Final = 10_000
#: Rows (metric names) asked for at most.
MAX_NAMES: Final = 1_000

_RAW: Final = {"bool": {"must_not": [{"term": {"metrics.aggregated": True}}]}}
_AGGREGATED: Final = {"term": {"metrics.aggregated": True}}


class ReportError(EcsMetricsHandlerError):
    """The cluster refused the report's search (the message says why, redacted)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RawPart:
    """The raw documents of one row: ``count`` documents, ``valued`` of them summed into
    ``total``, their smallest and largest value and the cluster's percentile estimates."""

    count: int = 0
    valued: int = 0
    total: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    percentiles: dict[float, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class AggregatedPart:
    """The aggregated documents of one row: ``documents`` of them holding ``count`` events,
    ``summed`` of those events in documents with a ``metrics.sum`` adding up to ``total``,
    and ``sketched`` documents carrying a sketch."""

    documents: int = 0
    count: int = 0
    summed: int = 0
    total: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    sketched: int = 0


def _extreme(pick: Any, *values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return pick(present) if present else None


def combine(
    name: str, kind: str, unit: str | None, raw: RawPart, agg: AggregatedPart, buckets: list[int]
) -> MetricRow:
    """One row from its raw and aggregated parts: events, sums, minimum and maximum add up;
    the average is over every summed value and only when each aggregated event was summed;
    percentiles are the raw part's estimate when there is no aggregated document (sketches
    are merged later, see :func:`metrics_report`)."""
    row = MetricRow(name=name, type=kind, unit=unit, buckets=list(buckets))
    row.raw_count, row.aggregated_count = raw.count, agg.count
    row.count = raw.count + agg.count
    row.valued = raw.valued + agg.summed
    row.total = raw.total + agg.total
    row.complete_values = agg.summed == agg.count
    row.minimum = _extreme(min, raw.minimum, agg.minimum)
    row.maximum = _extreme(max, raw.maximum, agg.maximum)
    if kind != "counter" and agg.documents == 0 and raw.percentiles:
        row.percentiles = dict(raw.percentiles)
        row.percentile_method = "tdigest"
    return row


def report_target(options: HandlerOptions) -> str:
    """What the report searches: the data stream, else ``{es_index_name}-*``."""
    return options.data_stream or f"{options.es_index_name}-*"


def _name_filter(names: Sequence[str]) -> list[dict[str, Any]]:
    if not names:
        return []
    wanted = [
        {"wildcard": {"metrics.name": n}} if "*" in n or "?" in n else {"term": {"metrics.name": n}}
        for n in names
    ]
    return [{"bool": {"should": wanted, "minimum_should_match": 1}}]


def _range_filter(window: TimeRange) -> dict[str, Any]:
    bounds = {"gte": window.start_ms, "lt": window.end_ms, "format": "epoch_millis"}
    return {"range": {"@timestamp": bounds}}


def _stats(field: str, **extra: Any) -> dict[str, Any]:
    return {
        "min": {"min": {"field": field}},
        "max": {"max": {"field": field}},
        **extra,
    }


def search_body(window: TimeRange, names: Sequence[str], buckets: int) -> dict[str, Any]:
    """The one search that gives every row's exact numbers (see the module docstring)."""
    width = window.bucket_ms(buckets)
    value = {"field": "metrics.value"}
    raw_aggs = _stats(
        "metrics.value",
        sum={"sum": value},
        sum_or_one={"sum": {**value, "missing": 1}},
        valued={"value_count": value},
        percentiles={"percentiles": {**value, "percents": list(PERCENTS), "keyed": False}},
    )
    count = {"sum": {"field": "metrics.count"}}
    summed = {"count": count, "sum": {"sum": {"field": "metrics.sum"}}}
    aggregated_aggs = _stats(
        "metrics.min",
        count=count,
        summed={"filter": {"exists": {"field": "metrics.sum"}}, "aggs": summed},
        # metrics.sketch is not indexed; a document has p50 exactly when it has a sketch
        sketched={"filter": {"exists": {"field": "metrics.p50"}}},
    )
    aggregated_aggs["max"] = {"max": {"field": "metrics.max"}}
    histogram = {
        "field": "@timestamp",
        "fixed_interval": f"{width}ms",
        "offset": f"{window.start_ms % width}ms",
        "min_doc_count": 0,
        "extended_bounds": {"min": window.start_ms, "max": window.end_ms - 1},
    }
    per_row = {
        "raw": {"filter": _RAW, "aggs": raw_aggs},
        "aggregated": {"filter": _AGGREGATED, "aggs": aggregated_aggs},
        "time": {
            "date_histogram": histogram,
            "aggs": {"aggregated": {"filter": _AGGREGATED, "aggs": {"count": count}}},
        },
    }
    units = {"terms": {"field": "metrics.unit", "size": 20, "missing": ""}, "aggs": per_row}
    types = {
        "terms": {"field": "metrics.type", "size": 10, "missing": ""},
        "aggs": {"units": units},
    }
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": [_range_filter(window), *_name_filter(names)]}},
        "aggs": {
            "names": {
                "terms": {"field": "metrics.name", "size": MAX_NAMES, "order": {"_key": "asc"}},
                "aggs": {"types": types},
            }
        },
    }


def _number(agg: Any, key: str = "value") -> float | None:
    value = (agg or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _parts(kind: str, bucket: dict[str, Any]) -> tuple[RawPart, AggregatedPart]:
    raw = bucket["raw"]
    raw_count = int(raw["doc_count"])
    percentiles = {
        float(p["key"]): float(p["value"])
        for p in (raw.get("percentiles") or {}).get("values", [])
        if isinstance(p.get("value"), (int, float))
    }
    total_key = "sum_or_one" if kind == "counter" else "sum"
    raw_part = RawPart(
        count=raw_count,
        valued=raw_count if kind == "counter" else int(raw["valued"]["value"]),
        total=_number(raw[total_key]) or 0.0,
        minimum=_number(raw["min"]) if raw_count else None,
        maximum=_number(raw["max"]) if raw_count else None,
        percentiles=percentiles if raw_count else {},
    )
    agg = bucket["aggregated"]
    documents = int(agg["doc_count"])
    agg_part = AggregatedPart(
        documents=documents,
        count=int(_number(agg["count"]) or 0),
        summed=int(_number(agg["summed"]["count"]) or 0),
        total=_number(agg["summed"]["sum"]) or 0.0,
        minimum=_number(agg["min"]) if documents else None,
        maximum=_number(agg["max"]) if documents else None,
        sketched=int(agg["sketched"]["doc_count"]),
    )
    return raw_part, agg_part


def _buckets(bucket: dict[str, Any], window: TimeRange, buckets: int) -> list[int]:
    width = window.bucket_ms(buckets)
    counts = [0] * buckets
    for entry in bucket["time"]["buckets"]:
        index = (int(entry["key"]) - window.start_ms) // width
        if 0 <= index < buckets:
            aggregated = entry["aggregated"]
            counts[index] += int(entry["doc_count"]) - int(aggregated["doc_count"])
            counts[index] += int(_number(aggregated["count"]) or 0)
    return counts


def _search(request: _Requests, target: str, body: dict[str, Any]) -> dict[str, Any]:
    path = f"/{target}/_search?ignore_unavailable=true&allow_no_indices=true"
    status, answer = request("POST", path, body)
    if status >= 400 or not isinstance(answer, dict):
        raise ReportError(f"the search on {target} answered HTTP {status}: {_reason(answer)}")
    return answer


def _row_filter(row: MetricRow, window: TimeRange, shape: Any) -> dict[str, Any]:
    unit: dict[str, Any] = (
        {"term": {"metrics.unit": row.unit}}
        if row.unit
        else {"bool": {"must_not": [{"exists": {"field": "metrics.unit"}}]}}
    )
    kind: dict[str, Any] = (
        {"term": {"metrics.type": row.type}}
        if row.type
        else {"bool": {"must_not": [{"exists": {"field": "metrics.type"}}]}}
    )
    name = {"term": {"metrics.name": row.name}}
    return {"bool": {"filter": [_range_filter(window), name, kind, unit, shape]}}


def _fetch(
    request: _Requests, target: str, query: dict[str, Any], field: str, limit: int
) -> tuple[list[Any], bool]:
    """The ``field`` of up to ``limit`` matching documents, and whether more matched."""
    body = {"size": limit, "query": query, "_source": [field], "track_total_hits": True}
    answer = _search(request, target, body)
    hits = answer["hits"]["hits"]
    total = answer["hits"]["total"]
    matched = int(total["value"] if isinstance(total, dict) else total)
    values: list[Any] = []
    for hit in hits:
        found: Any = hit.get("_source") or {}
        for part in field.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found is not None:
            values.append(found)
    return values, matched > len(hits)


def _merge_sketches(
    request: _Requests, target: str, row: MetricRow, window: TimeRange, limit: int
) -> None:
    sketched = {"bool": {"filter": [_AGGREGATED, {"exists": {"field": "metrics.p50"}}]}}
    query = _row_filter(row, window, sketched)
    sketches, capped = _fetch(request, target, query, "metrics.sketch", limit)
    if not sketches:
        return
    parts = list(sketches)
    if row.raw_count:
        valued = {"bool": {"filter": [_RAW, {"exists": {"field": "metrics.value"}}]}}
        query = _row_filter(row, window, valued)
        values, more = _fetch(request, target, query, "metrics.value", limit)
        capped = capped or more
        first = parts[0]
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        gamma, offset = float(first["gamma"]), float(first.get("index_offset", 0.0))
        parts.append(values_sketch(numbers, gamma, offset))
    merged = merge_sketches(parts)  # once, not once per percentile
    row.percentiles = {p: merged_quantile(merged, p / 100) for p in PERCENTS}
    row.percentile_method = "ddsketch"
    row.capped = capped


def metrics_report(
    options: HandlerOptions,
    window: TimeRange,
    *,
    names: Sequence[str] = (),
    buckets: int = 30,
    fetch_limit: int = DEFAULT_FETCH_LIMIT,
    refresh: bool = False,
    client: Any = None,
) -> list[MetricRow]:
    """The report's rows, sorted by name, type and unit (see the module docstring).

    ``names``: metric names to keep (``*`` and ``?`` are wildcards; empty: all).
    ``buckets``: time buckets of the spark line. ``fetch_limit``: documents fetched per row for
    merging sketches. ``refresh``: refresh the target first (documents just indexed become
    searchable). ``client``: an Elasticsearch or OpenSearch client to use instead of
    building one from ``options`` (it is not closed). Raises :class:`ReportError` when the
    cluster refuses the search, the client's error when it cannot be reached.
    """
    shipper = make_shipper(options, client)
    assert isinstance(shipper, (ElasticsearchShipper, OpenSearchShipper))
    target = report_target(options)
    try:
        request = _Requests(shipper.client(), options.backend)
        if refresh:
            request("POST", f"/{target}/_refresh?ignore_unavailable=true&allow_no_indices=true")
        answer = _search(request, target, search_body(window, names, buckets))
        rows: list[MetricRow] = []
        for name_bucket in answer.get("aggregations", {}).get("names", {}).get("buckets", []):
            for type_bucket in name_bucket["types"]["buckets"]:
                kind = str(type_bucket["key"])
                for unit_bucket in type_bucket["units"]["buckets"]:
                    raw, agg = _parts(kind, unit_bucket)
                    counts = _buckets(unit_bucket, window, buckets)
                    unit = str(unit_bucket["key"]) or None
                    row = combine(str(name_bucket["key"]), kind, unit, raw, agg, counts)
                    if kind != "counter" and agg.documents and agg.sketched == agg.documents:
                        _merge_sketches(request, target, row, window, fetch_limit)
                    rows.append(row)
    finally:
        if client is None:
            shipper.close()
    return rows
