"""The pure parts of ``python -m ecs_metrics_handler report``: time ranges, numbers, spark lines.

Nothing here talks to a cluster: :mod:`ecs_metrics_handler._metrics_report` queries it and
hands :class:`MetricRow` objects to :func:`render_table` or :func:`render_json`. All functions
are pure and thread-safe.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from .exceptions import ConfigurationError

__all__ = [
    "BLOCKS",
    "PERCENTS",
    "MetricRow",
    "TimeRange",
    "format_number",
    "parse_duration",
    "parse_time",
    "render_json",
    "render_table",
    "spark_line",
    "time_range",
]

#: The spark line's characters, lowest first: an empty bucket is the first, the fullest the last.
BLOCKS: Final = "▁▂▃▄▅▆▇█"
#: The percentiles reported, in percent.
PERCENTS: Final = (50.0, 95.0, 99.0)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(option: str, text: str) -> timedelta:
    """``"15m"``, ``"90s"``, ``"1h30m"``, ``"2d"`` as a :class:`timedelta` (units ms, s, m, h,
    d, w; a bare number is seconds). Raises :class:`ConfigurationError` naming ``option`` for
    anything else, zero or negative."""
    cleaned = text.strip().lower()
    seconds = 0.0
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif cleaned and re.fullmatch(f"(?:{_DURATION.pattern})+", cleaned):
        seconds = sum(float(n) * _SECONDS[u] for n, u in _DURATION.findall(cleaned))
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(option, "a positive duration such as 15m, 90s, 1h30m or 2d", text)
    return timedelta(seconds=seconds)


def parse_time(option: str, text: str) -> datetime:
    """An ISO 8601 time (``2026-12-03T14:00:00Z``, ``2026-12-03 14:00+01:00``, ``2026-12-03``)
    as an aware :class:`datetime`; one without an offset is UTC. Raises
    :class:`ConfigurationError` naming ``option`` otherwise."""
    try:
        cleaned = text.strip()
        if cleaned[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat knows no "Z"
            cleaned = cleaned[:-1] + "+00:00"
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        expected = "an ISO 8601 time such as 2026-12-03T14:00:00Z"
        raise ConfigurationError(option, expected, text) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclasses.dataclass(frozen=True, slots=True)
class TimeRange:
    """``[start, end)``, aware datetimes, ``start < end``."""

    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return math.floor(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return math.floor(self.end.timestamp() * 1000)

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000

    def bucket_ms(self, buckets: int) -> int:
        """Width of each of ``buckets`` equal buckets covering the range, whole milliseconds
        rounded up (so the last bucket may reach past ``end``)."""
        return max(1, -(-(self.end_ms - self.start_ms) // buckets))


def time_range(
    *, since: str | None, start: str | None, end: str | None, now: datetime
) -> TimeRange:
    """The range the options describe: ``--from``/``--to`` (ISO) or ``--since`` before
    ``--to`` (default ``now``); neither ``--from`` nor ``--since``: the last 15 minutes."""
    if since is not None and start is not None:
        raise ConfigurationError("--since", "either --since or --from, not both", since)
    stop = parse_time("--to", end) if end is not None else now
    if start is not None:
        begin = parse_time("--from", start)
    else:
        begin = stop - parse_duration("--since", since if since is not None else "15m")
    if begin >= stop:
        raise ConfigurationError("--from", f"a time before --to ({stop.isoformat()})", start)
    return TimeRange(begin.astimezone(timezone.utc), stop.astimezone(timezone.utc))


def spark_line(values: Sequence[float]) -> str:
    """One block character per value, scaled to the largest: 0 (and anything not positive) is
    ``▁``, the largest ``█``, any positive value at least ``▂``. Monotonic in the value."""
    top = max((v for v in values if v > 0), default=0.0)
    if top <= 0:
        return BLOCKS[0] * len(values)
    steps = len(BLOCKS) - 1
    return "".join(
        BLOCKS[0] if v <= 0 else BLOCKS[min(steps, max(1, math.ceil(v / top * steps)))]
        for v in values
    )


def format_number(value: float | None) -> str:
    """A number for the table: ``-`` for none, whole numbers as integers, else 4 significant
    digits (at least one decimal from 100 up, exponent form beyond 1e7 or below 1e-3)."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if 1e-3 <= abs(value) < 100:
        return f"{value:.4g}"
    if 100 <= abs(value) < 1e7:
        return f"{value:.1f}"
    return f"{value:.3e}"


@dataclasses.dataclass(slots=True)
class MetricRow:
    """What the report says of one ``(metrics.name, metrics.type, metrics.unit)``.

    ``count``: events (a raw document is one, an aggregated one ``metrics.count``);
    ``valued``/``total``: the events whose value is summed and that sum (counters: the
    increments, 1 for one without value; aggregated gauges carry no sum); ``average`` is
    ``total / valued`` when every event's value is known, else None. ``percentiles`` maps
    50/95/99 to values or is empty; ``percentile_method`` says how they were computed
    (``"tdigest"``: the cluster's approximation over raw values; ``"ddsketch"``: the stored
    sketches merged, within 1 %); ``capped``: the documents fetched for them hit the limit.
    ``buckets``: events per time bucket, for the spark line.
    """

    name: str
    type: str
    unit: str | None
    count: int = 0
    raw_count: int = 0
    aggregated_count: int = 0
    valued: int = 0
    total: float = 0.0
    complete_values: bool = True
    minimum: float | None = None
    maximum: float | None = None
    percentiles: dict[float, float] = dataclasses.field(default_factory=dict)
    percentile_method: str | None = None
    capped: bool = False
    buckets: list[int] = dataclasses.field(default_factory=list)

    @property
    def known_sum(self) -> float | None:
        """``total`` when every event's value is in it, else None."""
        return self.total if self.complete_values else None

    @property
    def average(self) -> float | None:
        return self.total / self.valued if self.valued and self.complete_values else None

    def rate(self, seconds: float) -> float:
        """Events per second over ``seconds``."""
        return self.count / seconds if seconds > 0 else 0.0

    @property
    def shape(self) -> str:
        if self.raw_count and self.aggregated_count:
            return "raw+agg"
        return "agg" if self.aggregated_count else "raw"


def _iso(moment: datetime) -> str:
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.astimezone(timezone.utc).isoformat(timespec=spec).replace("+00:00", "Z")


def _describe_range(window: TimeRange, buckets: int) -> str:
    width = window.bucket_ms(buckets) / 1000
    return (
        f"{_iso(window.start)} to "
        f"{_iso(window.end)} "
        f"({format_number(window.seconds)} s; spark line: {buckets} buckets of "
        f"{format_number(width)} s)"
    )


def render_table(rows: Sequence[MetricRow], target: str, window: TimeRange, buckets: int) -> str:
    """The report as aligned text lines, with the notes its rows need."""
    lines = [f"report: {target} from {_describe_range(window, buckets)}"]
    if not rows:
        lines.append("report: no metrics in that range")
        return "\n".join(lines)
    header = ["name", "type", "unit", "from", "count", "rate/s", "sum", "avg"]
    header += [f"p{p:g}" for p in PERCENTS] + ["rate over time"]
    table = [header]
    for row in rows:
        mark = "*" if row.capped else ""
        table.append(
            [row.name, row.type or "-", row.unit or "-", row.shape, str(row.count)]
            + [format_number(row.rate(window.seconds)), format_number(row.known_sum)]
            + [format_number(row.average)]
            + [format_number(row.percentiles.get(p)) + mark for p in PERCENTS]
            + [spark_line(row.buckets)]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    numeric = range(4, len(header) - 1)
    for r in table:
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    methods = {row.percentile_method for row in rows}
    if "tdigest" in methods:
        lines.append("percentiles of raw documents: the cluster's TDigest estimate (approximate)")
    if "ddsketch" in methods:
        lines.append(
            "percentiles of aggregated documents (and raw+agg): their sketches merged, "
            "within 1 % of a value of that rank"
        )
    if any(row.capped for row in rows):
        lines.append("*: more documents than the fetch limit; percentiles from those fetched")
    if any(not row.complete_values for row in rows):
        lines.append("sum, avg -: aggregated gauges keep no sum, so neither is known")
    return "\n".join(lines)


def render_json(rows: Sequence[MetricRow], target: str, window: TimeRange, buckets: int) -> str:
    """The report as one JSON object (``metrics``: one object per row)."""
    body: dict[str, Any] = {
        "target": target,
        "from": _iso(window.start),
        "to": _iso(window.end),
        "seconds": window.seconds,
        "bucket_seconds": window.bucket_ms(buckets) / 1000,
        "metrics": [
            {
                "name": row.name,
                "type": row.type,
                "unit": row.unit,
                "from": row.shape,
                "count": row.count,
                "raw_count": row.raw_count,
                "aggregated_count": row.aggregated_count,
                "rate": row.rate(window.seconds),
                "sum": row.known_sum,
                "avg": row.average,
                "min": row.minimum,
                "max": row.maximum,
                **{f"p{p:g}": row.percentiles.get(p) for p in PERCENTS},
                "percentile_method": row.percentile_method,
                "capped": row.capped,
                "buckets": row.buckets,
                "spark": spark_line(row.buckets),
            }
            for row in rows
        ],
    }
    return json.dumps(body, indent=2)
