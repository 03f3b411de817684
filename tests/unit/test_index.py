"""Index naming from the event's timestamp: frequencies, calendar boundaries, local time."""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Iterator

import pytest

from ecs_metrics_handler._config import IndexNameFrequency, IndexTimezone
from ecs_metrics_handler._index import IndexNamer, epoch_millis

DAILY = IndexNameFrequency.DAILY
WEEKLY = IndexNameFrequency.WEEKLY
MONTHLY = IndexNameFrequency.MONTHLY
YEARLY = IndexNameFrequency.YEARLY
NEVER = IndexNameFrequency.NEVER
LOCAL = IndexTimezone.LOCAL
# POSIX TZ rules: no dependency on the system's zoneinfo files.
NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"
TOKYO = "JST-9"
PARIS = "CET-1CEST,M3.5.0,M10.5.0/3"


def index_name(
    prefix: str,
    frequency: IndexNameFrequency,
    timestamp: float,
    *,
    tz: IndexTimezone = IndexTimezone.UTC,
) -> str:
    """The name a fresh namer gives (no cache): the reference for the caching one."""
    return IndexNamer(prefix, frequency, tz)(timestamp)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: float = 0
) -> float:
    """Epoch seconds of a UTC wall time."""
    whole = int(second)
    return calendar.timegm((year, month, day, hour, minute, whole, 0, 0, 0)) + (second - whole)


@pytest.fixture
def tz_restored() -> Iterator[None]:
    """Restore TZ and the C library's zone after a test that changes them."""
    saved = os.environ.get("TZ")
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def set_tz(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        (DAILY, "app-2024.03.14"),
        (WEEKLY, "app-2024.03.11"),
        (MONTHLY, "app-2024.03"),
        (YEARLY, "app-2024"),
        (NEVER, "app"),
    ],
)
def test_each_frequency_names_the_index(frequency: IndexNameFrequency, expected: str) -> None:
    """Thursday 2024-03-14 12:00 UTC, per frequency (weekly: Monday the 11th)."""
    assert index_name("app", frequency, utc(2024, 3, 14, 12)) == expected
    assert IndexNamer("app", frequency)(utc(2024, 3, 14, 12)) == expected


@pytest.mark.parametrize(
    ("frequency", "before", "after"),
    [
        (DAILY, "m-2023.12.31", "m-2024.01.01"),
        (WEEKLY, "m-2023.12.25", "m-2024.01.01"),
        (MONTHLY, "m-2023.12", "m-2024.01"),
        (YEARLY, "m-2023", "m-2024"),
        (NEVER, "m", "m"),
    ],
)
def test_the_last_millisecond_of_a_year_stays_in_it(
    frequency: IndexNameFrequency, before: str, after: str
) -> None:
    """23:59:59.999 on Dec 31 vs 00:00:00.000 on Jan 1 (a Monday in 2024)."""
    namer = IndexNamer("m", frequency)
    last = utc(2023, 12, 31, 23, 59, 59.999)
    first = utc(2024, 1, 1)
    assert index_name("m", frequency, last) == before
    assert index_name("m", frequency, first) == after
    assert (namer(last), namer(first), namer(last)) == (before, after, before)


def test_day_boundary() -> None:
    """A record at 23:59:59.999 belongs to its own day, 00:00:00 to the next."""
    namer = IndexNamer("m", DAILY)
    assert namer(utc(2024, 2, 28, 23, 59, 59.999)) == "m-2024.02.28"
    assert namer(utc(2024, 2, 29)) == "m-2024.02.29"
    assert namer(utc(2024, 2, 29, 23, 59, 59.999)) == "m-2024.02.29"
    assert namer(utc(2024, 3, 1)) == "m-2024.03.01"


def test_month_boundary() -> None:
    """April 30 23:59:59.999 -> April, May 1 00:00 -> May."""
    assert index_name("m", MONTHLY, utc(2024, 4, 30, 23, 59, 59.999)) == "m-2024.04"
    assert index_name("m", MONTHLY, utc(2024, 5, 1)) == "m-2024.05"


def test_a_week_crossing_a_month_is_named_after_its_monday() -> None:
    """Mon 2024-04-29 .. Sun 2024-05-05 is one week: m-2024.04.29; the next Monday starts anew."""
    namer = IndexNamer("m", WEEKLY)
    for day in (29, 30):
        assert namer(utc(2024, 4, day, 8)) == "m-2024.04.29"
    for day in range(1, 6):
        assert namer(utc(2024, 5, day, 8)) == "m-2024.04.29"
    assert namer(utc(2024, 5, 5, 23, 59, 59.999)) == "m-2024.04.29"
    assert namer(utc(2024, 5, 6)) == "m-2024.05.06"


def test_a_week_crossing_a_year_is_named_after_its_monday() -> None:
    """Mon 2024-12-30 .. Sun 2025-01-05: m-2024.12.30, even in January 2025."""
    namer = IndexNamer("m", WEEKLY)
    assert namer(utc(2024, 12, 29, 23, 59, 59.999)) == "m-2024.12.23"
    assert namer(utc(2024, 12, 30)) == "m-2024.12.30"
    assert namer(utc(2025, 1, 1, 12)) == "m-2024.12.30"
    assert namer(utc(2025, 1, 5, 23, 59, 59.999)) == "m-2024.12.30"
    assert namer(utc(2025, 1, 6)) == "m-2025.01.06"


def test_binary_noise_does_not_move_a_timestamp_into_the_previous_millisecond() -> None:
    """.999 stored as .99899999 still rounds to the right millisecond (and the right day)."""
    ts = utc(2024, 1, 1) - 0.001
    assert epoch_millis(ts) == int(utc(2024, 1, 1)) * 1000 - 1
    assert epoch_millis(1_700_000_000.123) == 1_700_000_000_123


def test_the_namer_caches_within_a_day_and_recomputes_across() -> None:
    """Repeated calls in one day return the same string object; a new day a new name."""
    namer = IndexNamer("m", DAILY)
    first = namer(utc(2024, 6, 1, 0, 0, 1))
    assert namer(utc(2024, 6, 1, 23, 0)) is first
    assert namer(utc(2024, 6, 2, 0, 0)) == "m-2024.06.02"
    assert namer(utc(2024, 5, 31, 23, 59, 59.999)) == "m-2024.05.31"


def test_a_data_stream_receives_everything() -> None:
    """With data_stream set, the date does not matter."""
    namer = IndexNamer("python_metrics", DAILY, data_stream="metrics-app-default")
    assert namer(utc(2024, 1, 1)) == "metrics-app-default"
    assert namer(utc(2030, 7, 4)) == "metrics-app-default"
    assert namer.index_patterns == ["metrics-app-default"]


def test_namer_names_and_patterns() -> None:
    """A monthly namer names by month; its pattern matches every name it gives."""
    namer = IndexNamer("shop", IndexNameFrequency.MONTHLY)
    assert namer(utc(2024, 8, 9)) == "shop-2024.08"
    assert namer.index_patterns == ["shop-*"]
    assert IndexNamer("shop", NEVER).index_patterns == ["shop"]


@pytest.mark.usefixtures("tz_restored")
def test_local_time_uses_the_process_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOCAL with TZ=America/New_York: 2024-01-01 03:00 UTC is still Dec 31 there."""
    set_tz(monkeypatch, NEW_YORK)
    ts = utc(2024, 1, 1, 3)
    assert index_name("m", DAILY, ts) == "m-2024.01.01"
    assert index_name("m", DAILY, ts, tz=LOCAL) == "m-2023.12.31"
    assert index_name("m", YEARLY, ts, tz=LOCAL) == "m-2023"
    namer = IndexNamer("m", DAILY, LOCAL)
    assert namer(ts) == "m-2023.12.31"
    # New York midnight is 05:00 UTC in winter.
    assert namer(utc(2024, 1, 1, 4, 59, 59.999)) == "m-2023.12.31"
    assert namer(utc(2024, 1, 1, 5)) == "m-2024.01.01"


@pytest.mark.usefixtures("tz_restored")
def test_local_time_east_of_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """TZ=Asia/Tokyo (+09:00): 2024-12-31 15:00 UTC is already 2025 there."""
    set_tz(monkeypatch, TOKYO)
    namer = IndexNamer("m", WEEKLY, LOCAL)
    assert namer(utc(2024, 12, 29, 14, 59, 59.999)) == "m-2024.12.23"
    assert namer(utc(2024, 12, 29, 15)) == "m-2024.12.30"
    assert index_name("m", YEARLY, utc(2024, 12, 31, 15), tz=LOCAL) == "m-2025"


@pytest.mark.usefixtures("tz_restored")
def test_local_days_of_23_and_25_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Daylight-saving days: the cached local day ends at the real local midnight."""
    set_tz(monkeypatch, PARIS)
    namer = IndexNamer("m", DAILY, LOCAL)
    # 2024-03-31 has 23 hours in Paris; local midnight of April 1 is 22:00 UTC on March 31.
    assert namer(utc(2024, 3, 31, 0)) == "m-2024.03.31"
    assert namer(utc(2024, 3, 31, 21, 59, 59.999)) == "m-2024.03.31"
    assert namer(utc(2024, 3, 31, 22)) == "m-2024.04.01"
    # 2024-10-27 has 25 hours; local midnight of October 28 is 23:00 UTC on October 27.
    assert namer(utc(2024, 10, 26, 22)) == "m-2024.10.27"
    assert namer(utc(2024, 10, 27, 22, 59, 59.999)) == "m-2024.10.27"
    assert namer(utc(2024, 10, 27, 23)) == "m-2024.10.28"


@pytest.mark.usefixtures("tz_restored")
def test_utc_names_ignore_the_process_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default is UTC whatever TZ says."""
    set_tz(monkeypatch, "LINT-14")  # Kiritimati, +14:00
    assert IndexNamer("m", DAILY)(utc(2024, 1, 1, 11)) == "m-2024.01.01"


def test_local_time_can_be_faked_through_time_localtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOCAL reads time.localtime, so a test can fake the zone without touching TZ."""
    shift = 10 * 3600

    def localtime(seconds: float | None = None) -> time.struct_time:
        return time.gmtime((time.time() if seconds is None else seconds) + shift)

    def mktime(fields: tuple[int, ...]) -> float:
        return calendar.timegm((*fields[:6], 0, 0, 0)) - shift

    monkeypatch.setattr(time, "localtime", localtime)
    monkeypatch.setattr(time, "mktime", mktime)
    namer = IndexNamer("m", DAILY, LOCAL)
    assert namer(utc(2024, 5, 31, 13, 59, 59)) == "m-2024.05.31"
    assert namer(utc(2024, 5, 31, 14)) == "m-2024.06.01"
