"""Index naming: which index (or data stream) a document goes to.

The date in an index name comes from the *event's* timestamp (``record.created``), never from
the clock at flush time, so a record logged at 23:59:59.999 lands in that day's index even when
it is shipped after midnight. Dates are UTC by default; :attr:`IndexTimezone.LOCAL` uses the
process's local time (``time.localtime``, so ``TZ``), as the original library did.

========= ============================================ ==========================
frequency name                                         example (2024-12-31 10:00)
========= ============================================ ==========================
DAILY     ``{prefix}-%Y.%m.%d``                        ``metrics-2024.12.31``
WEEKLY    ``{prefix}-%Y.%m.%d`` of the week's Monday   ``metrics-2024.12.30``
MONTHLY   ``{prefix}-%Y.%m``                           ``metrics-2024.12``
YEARLY    ``{prefix}-%Y``                              ``metrics-2024``
NEVER     ``{prefix}``                                 ``metrics``
========= ============================================ ==========================

Timestamps are rounded to the microsecond and then floored to the millisecond, the same rule
``@timestamp`` follows, so a document's index date always matches its ``@timestamp`` date.
"""

from __future__ import annotations

import datetime
import time
from typing import Final

from ._config import IndexNameFrequency, IndexTimezone

__all__ = ["IndexNamer", "epoch_millis"]

_SECONDS_PER_DAY: Final = 86_400


def epoch_millis(timestamp: float) -> int:
    """Whole milliseconds since the epoch: ``timestamp`` (seconds) rounded to the microsecond
    first, so that binary noise (``.123`` stored as ``.12299999``) does not lose a millisecond,
    then floored."""
    return round(timestamp * 1_000_000) // 1000


def _suffix(frequency: IndexNameFrequency, day: datetime.date) -> str:
    if frequency is IndexNameFrequency.DAILY:
        return f"{day.year:04d}.{day.month:02d}.{day.day:02d}"
    if frequency is IndexNameFrequency.WEEKLY:
        monday = day - datetime.timedelta(days=day.weekday())
        return f"{monday.year:04d}.{monday.month:02d}.{monday.day:02d}"
    if frequency is IndexNameFrequency.MONTHLY:
        return f"{day.year:04d}.{day.month:02d}"
    return f"{day.year:04d}"


def _name(prefix: str, frequency: IndexNameFrequency, day: datetime.date) -> str:
    if frequency is IndexNameFrequency.NEVER:
        return prefix
    return f"{prefix}-{_suffix(frequency, day)}"


def _day_bounds(seconds: int, tz: IndexTimezone) -> tuple[datetime.date, int, int]:
    """The calendar day holding ``seconds`` and that day's ``[start, end)`` in epoch seconds."""
    if tz is IndexTimezone.UTC:
        start = seconds - seconds % _SECONDS_PER_DAY
        day = datetime.date(1970, 1, 1) + datetime.timedelta(days=start // _SECONDS_PER_DAY)
        return day, start, start + _SECONDS_PER_DAY
    local = time.localtime(seconds)
    day = datetime.date(local.tm_year, local.tm_mon, local.tm_mday)
    # mktime knows the zone's daylight-saving rules: a local day can last 23 or 25 hours.
    start = int(time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1)))
    end = int(time.mktime((day.year, day.month, day.day + 1, 0, 0, 0, 0, 0, -1)))
    if not start <= seconds < end:  # a zone where midnight does not exist that day
        start, end = seconds, seconds + 1
    return day, start, end


class IndexNamer:
    """``namer(timestamp) -> index name``, caching the current day.

    Names by the table above; a call within the day of the previous one costs two
    comparisons. With ``data_stream`` set every call returns that name. The cache is one tuple
    replaced atomically, so sharing a namer between threads is safe (at worst both compute).
    Subclass and override :meth:`__call__` for another naming scheme::

        class PerTenantNamer(IndexNamer):
            def __call__(self, timestamp: float) -> str:
                return super().__call__(timestamp) + "-tenant-a"
    """

    __slots__ = ("_cache", "data_stream", "frequency", "prefix", "tz")

    def __init__(
        self,
        prefix: str,
        frequency: IndexNameFrequency,
        tz: IndexTimezone = IndexTimezone.UTC,
        data_stream: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.frequency = frequency
        self.tz = tz
        self.data_stream = data_stream
        # (first second of the cached day, first second of the next day, name)
        self._cache: tuple[int, int, str] = (0, 0, "")

    @property
    def index_patterns(self) -> list[str]:
        """The index patterns matching every name this namer returns (for templates)."""
        if self.data_stream is not None:
            return [self.data_stream]
        if self.frequency is IndexNameFrequency.NEVER:
            return [self.prefix]
        return [f"{self.prefix}-*"]

    def __call__(self, timestamp: float) -> str:
        """The index or data stream for an event at ``timestamp`` (epoch seconds)."""
        if self.data_stream is not None:
            return self.data_stream
        if self.frequency is IndexNameFrequency.NEVER:
            return self.prefix
        seconds = epoch_millis(timestamp) // 1000
        start, end, name = self._cache
        if start <= seconds < end:
            return name
        day, start, end = _day_bounds(seconds, self.tz)
        name = _name(self.prefix, self.frequency, day)
        self._cache = (start, end, name)
        return name

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.prefix!r}, {self.frequency}, {self.tz}, "
            f"data_stream={self.data_stream!r})"
        )
