"""timed(): context manager and decorator, sync and async, failures, concurrency, clocks."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecs_metrics_handler._timing import METRICS_LOGGER_NAME, timed


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def payloads(self, key: str = "metric") -> list[dict[str, Any]]:
        return [getattr(record, key) for record in self.records]


def attach(logger: logging.Logger) -> Iterator[Collector]:
    collector = Collector()
    saved = (logger.level, logger.propagate)
    logger.addHandler(collector)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@pytest.fixture
def log(request: pytest.FixtureRequest) -> logging.Logger:
    """A logger of its own for each test."""
    return logging.getLogger(f"tests.timing.{request.node.name}")


@pytest.fixture
def collected(log: logging.Logger) -> Iterator[Collector]:
    yield from attach(log)


def ticking(*values: int) -> Callable[[], int]:
    """A fake monotonic clock returning the given nanosecond readings in turn."""
    readings = iter(values)
    return lambda: next(readings)


WALL = 1_700_000_000.0


def wall() -> float:
    return WALL


def test_with_block_logs_one_timer_record(log: logging.Logger, collected: Collector) -> None:
    """The payload carries name, ms value, ns duration, wall start/end, outcome and labels."""
    labels = {"route": "/pay"}
    timer = timed(
        "checkout", logger=log, labels=labels, clock=ticking(1_000, 2_501_000), wall_clock=wall
    )
    labels["route"] = "changed"
    with timer as entered:
        assert entered is timer
    assert collected.payloads() == [
        {
            "name": "checkout",
            "type": "timer",
            "value": 2.5,
            "unit": "ms",
            "duration_ns": 2_500_000,
            "start": WALL,
            "end": WALL + 0.0025,
            "outcome": "success",
            "labels": {"route": "/pay"},
        }
    ]
    record = collected.records[0]
    assert (record.levelno, record.getMessage(), record.name) == (
        logging.INFO,
        "checkout",
        log.name,
    )
    assert timer.elapsed_ns == 2_500_000


def test_a_raising_block_is_recorded_as_a_failure_and_re_raised(
    log: logging.Logger, collected: Collector
) -> None:
    """The duration is logged with outcome failure; the same exception object propagates."""
    error = KeyError("sku")
    with pytest.raises(KeyError) as caught, timed("t", logger=log, clock=ticking(0, 7_000)):
        raise error
    assert caught.value is error
    [payload] = collected.payloads()
    assert (payload["outcome"], payload["error_type"], payload["duration_ns"]) == (
        "failure",
        "KeyError",
        7_000,
    )


def test_base_exceptions_give_outcome_unknown(log: logging.Logger, collected: Collector) -> None:
    """Cancellation and KeyboardInterrupt are not the block's failure: outcome unknown."""
    with pytest.raises(KeyboardInterrupt), timed("t", logger=log):
        raise KeyboardInterrupt
    assert collected.payloads()[0]["outcome"] == "unknown"
    assert collected.payloads()[0]["error_type"] == "KeyboardInterrupt"


def test_negative_durations_are_clamped(log: logging.Logger, collected: Collector) -> None:
    """A clock that goes backwards records 0, not a negative duration."""
    with timed("t", logger=log, clock=ticking(5_000, 1_000)):
        pass
    assert collected.payloads()[0]["duration_ns"] == 0
    assert collected.payloads()[0]["value"] == 0.0


def test_level_message_and_metric_key_are_honoured(
    log: logging.Logger, collected: Collector
) -> None:
    """level, message and metric_key options shape the record."""
    with timed("t", logger=log, level=logging.DEBUG, message="timing t", metric_key="m"):
        pass
    record = collected.records[0]
    assert (record.levelno, record.getMessage()) == (logging.DEBUG, "timing t")
    assert record.m["name"] == "t"  # type: ignore[attr-defined]
    assert not hasattr(record, "metric")


def test_default_logger_is_the_documented_metrics_logger() -> None:
    """No logger given: records go to logging.getLogger(METRICS_LOGGER_NAME)."""
    for collector in attach(logging.getLogger(METRICS_LOGGER_NAME)):
        with timed("t"):
            pass
        assert [r.name for r in collector.records] == [METRICS_LOGGER_NAME]
    assert METRICS_LOGGER_NAME == "ecs_metrics_handler.metrics"


def test_a_logger_name_is_accepted(log: logging.Logger, collected: Collector) -> None:
    """logger='name' resolves through logging.getLogger."""
    with timed("t", logger=log.name):
        pass
    assert len(collected.records) == 1


def test_nothing_is_logged_when_the_level_is_disabled(
    log: logging.Logger, collected: Collector
) -> None:
    """Below the logger's level: no record, but elapsed_ns is still measured."""
    log.setLevel(logging.WARNING)
    timer = timed("t", logger=log, clock=ticking(0, 10))
    with timer:
        pass
    assert collected.records == []
    assert timer.elapsed_ns == 10


def test_the_record_points_at_the_callers_code(log: logging.Logger, collected: Collector) -> None:
    """funcName/filename are the code using timed, not the timing module."""

    @timed("decorated", logger=log)
    def work() -> None:
        pass

    with timed("block", logger=log):
        pass
    work()
    names = {(r.funcName, r.filename) for r in collected.records}
    assert names == {("test_the_record_points_at_the_callers_code", "test_timing.py")}


def test_nested_entries_of_one_instance_keep_their_own_start(
    log: logging.Logger, collected: Collector
) -> None:
    """Re-entrant: outer 0..100, inner 10..30 recorded as 100 and 20."""
    timer = timed("t", logger=log, clock=ticking(0, 10, 30, 100))
    with timer:
        with timer:
            pass
        assert timer.elapsed_ns == 20
    assert [p["duration_ns"] for p in collected.payloads()] == [20, 100]


def test_logging_failures_never_reach_the_timed_code(
    log: logging.Logger, collected: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    """extra may not overwrite a LogRecord attribute: reported on stderr, block unaffected."""
    with timed("t", logger=log, metric_key="msg"):
        result = 42
    assert result == 42
    assert collected.records == []
    assert "timed('t') could not log" in capsys.readouterr().err


def test_an_empty_name_is_refused() -> None:
    """The metric name is required."""
    with pytest.raises(ValueError, match="name"):
        timed("  ")


# ---------------------------------------------------------------------------- decorator


def test_decorator_returns_the_result_and_keeps_metadata(
    log: logging.Logger, collected: Collector
) -> None:
    """functools.wraps: name, doc, signature, __wrapped__; the call's result comes back."""

    def add(a: int, b: int = 2, *, scale: int = 1) -> int:
        """Add and scale."""
        return (a + b) * scale

    wrapped = timed("add", logger=log, clock=ticking(0, 5, 10, 40))(add)
    assert wrapped(1, scale=3) == 9
    assert wrapped(a=2, b=2) == 4
    assert (wrapped.__name__, wrapped.__doc__) == ("add", "Add and scale.")
    assert inspect.signature(wrapped) == inspect.signature(add)
    assert wrapped.__wrapped__ is add  # type: ignore[attr-defined]
    assert [p["duration_ns"] for p in collected.payloads()] == [5, 30]


def test_decorated_function_failure_is_recorded_and_re_raised(
    log: logging.Logger, collected: Collector
) -> None:
    """A raising decorated call logs failure and propagates the original exception."""

    @timed("parse", logger=log)
    def parse(text: str) -> int:
        return int(text)

    with pytest.raises(ValueError, match="invalid literal"):
        parse("x")
    assert parse("3") == 3
    assert [p["outcome"] for p in collected.payloads()] == ["failure", "success"]
    assert collected.payloads()[0]["error_type"] == "ValueError"


async def test_async_decorator(log: logging.Logger, collected: Collector) -> None:
    """async def stays a coroutine function and is timed across its awaits."""

    @timed("fetch", logger=log, clock=ticking(100, 350))
    async def fetch(sku: str) -> str:
        await asyncio.sleep(0)
        return sku.upper()

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch("ab") == "AB"
    [payload] = collected.payloads()
    assert (payload["duration_ns"], payload["outcome"]) == (250, "success")
    assert collected.records[0].funcName == "test_async_decorator"


async def test_async_decorator_failure(log: logging.Logger, collected: Collector) -> None:
    """A raising coroutine is recorded as failure and the exception propagates."""

    @timed("fetch", logger=log)
    async def fetch() -> None:
        await asyncio.sleep(0)
        raise TimeoutError("upstream")

    with pytest.raises(TimeoutError, match="upstream"):
        await fetch()
    assert collected.payloads()[0]["outcome"] == "failure"


async def test_async_with(log: logging.Logger, collected: Collector) -> None:
    """async with works like with, including failures."""
    timer = timed("t", logger=log, clock=ticking(0, 3, 10, 11))
    async with timer as entered:
        assert entered is timer
        await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        async with timer:
            raise RuntimeError("x")
    assert [(p["duration_ns"], p["outcome"]) for p in collected.payloads()] == [
        (3, "success"),
        (1, "failure"),
    ]


# ------------------------------------------------------------------------------ timestamp


def test_the_record_is_stamped_at_the_end_by_default(
    log: logging.Logger, collected: Collector
) -> None:
    """timestamp="end": created is the logging call's time, not the payload's start."""
    timer = timed("t", logger=log, clock=ticking(0, 10), wall_clock=wall)
    assert timer.timestamp == "end"
    with timer:
        pass
    [record] = collected.records
    assert record.created != WALL
    assert collected.payloads()[0]["start"] == WALL


def test_timestamp_start_stamps_the_record_with_the_start_of_the_measure(
    log: logging.Logger, collected: Collector
) -> None:
    """created, msecs and relativeCreated move to the wall_clock reading taken on entry."""
    start = WALL + 0.25
    with timed(
        "t", logger=log, clock=ticking(0, 4_000), wall_clock=lambda: start, timestamp="start"
    ):
        pass
    [record] = collected.records
    [payload] = collected.payloads()
    assert (record.created, record.msecs) == (start, 250.0)
    # relativeCreated keeps counting from logging's start: created * 1000 minus the same offset.
    unstamped = log.makeRecord(log.name, logging.INFO, __file__, 0, "m", (), None)
    assert record.relativeCreated - record.created * 1000 == pytest.approx(
        unstamped.relativeCreated - unstamped.created * 1000, abs=0.01
    )
    assert payload["start"] == start and payload["duration_ns"] == 4_000


def test_timestamp_start_changes_nothing_else_in_the_record(
    log: logging.Logger, collected: Collector
) -> None:
    """Same payload, level, message, logger and caller as timestamp="end", success and failure."""

    def run(timestamp: Any) -> list[logging.LogRecord]:
        collected.records.clear()
        timer = timed(
            "t",
            logger=log,
            level=logging.WARNING,
            message="timing t",
            labels={"a": "b"},
            clock=ticking(0, 10, 20, 50),
            wall_clock=wall,
            timestamp=timestamp,
        )
        with timer:
            pass
        with pytest.raises(KeyError), timer:
            raise KeyError("k")
        return list(collected.records)

    def shape(record: logging.LogRecord) -> tuple[Any, ...]:
        return (
            record.metric,  # type: ignore[attr-defined]
            record.levelno,
            record.getMessage(),
            record.name,
            record.pathname,
            record.lineno,
            record.funcName,
            record.exc_info,
            record.stack_info,
        )

    at_end, at_start = run("end"), run("start")
    assert [shape(r) for r in at_start] == [shape(r) for r in at_end]
    assert [r.metric["outcome"] for r in at_start] == ["success", "failure"]  # type: ignore[attr-defined]
    assert at_start[1].metric["error_type"] == "KeyError"  # type: ignore[attr-defined]
    assert {r.created for r in at_start} == {WALL}


def test_timestamp_start_records_point_at_the_callers_code(
    log: logging.Logger, collected: Collector
) -> None:
    """As with the default, funcName/filename are the code using timed."""

    @timed("decorated", logger=log, timestamp="start")
    def work() -> None:
        pass

    with timed("block", logger=log, timestamp="start"):
        pass
    work()
    names = {(r.funcName, r.filename) for r in collected.records}
    assert names == {("test_timestamp_start_records_point_at_the_callers_code", "test_timing.py")}


async def test_timestamp_start_with_async_with_and_async_decorator(
    log: logging.Logger, collected: Collector
) -> None:
    """Both async forms are stamped with their start and point at the caller."""

    @timed("fetch", logger=log, wall_clock=wall, timestamp="start")
    async def fetch() -> None:
        await asyncio.sleep(0)

    async with timed("block", logger=log, wall_clock=lambda: WALL + 1, timestamp="start"):
        await asyncio.sleep(0)
    await fetch()
    assert [r.created for r in collected.records] == [WALL + 1, WALL]
    assert {r.funcName for r in collected.records} == {
        "test_timestamp_start_with_async_with_and_async_decorator"
    }


def test_timestamp_start_logs_nothing_below_the_level(
    log: logging.Logger, collected: Collector
) -> None:
    """The level check still comes first."""
    log.setLevel(logging.WARNING)
    timer = timed("t", logger=log, clock=ticking(0, 10), timestamp="start")
    with timer:
        pass
    assert collected.records == []
    assert timer.elapsed_ns == 10


def test_timestamp_start_logging_failures_never_reach_the_timed_code(
    log: logging.Logger, collected: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    """An extra key that would overwrite a record attribute is reported, as by default."""
    with timed("t", logger=log, metric_key="msg", timestamp="start"):
        result = 42
    assert result == 42
    assert collected.records == []
    assert "timed('t') could not log" in capsys.readouterr().err


def test_an_unknown_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        timed("t", timestamp="middle")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- concurrency


class PerThreadClock:
    """Each thread (or task) reads its own start and end: start = base, end = base + own id."""

    def __init__(self, key: Callable[[], int]) -> None:
        self._key = key
        self._calls: dict[int, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def __call__(self) -> int:
        ident = self._key()
        with self._lock:
            counter = self._calls.setdefault(ident, itertools.count())
            call = next(counter)
        return 1_000_000 + call * ident


def test_one_instance_entered_concurrently_from_threads(
    log: logging.Logger, collected: Collector
) -> None:
    """All threads enter before any exits; each records its own duration."""
    count = 8
    barrier = threading.Barrier(count)
    ids: dict[int, int] = {}

    def key() -> int:
        return ids[threading.get_ident()]

    timer = timed("t", logger=log, clock=PerThreadClock(key))
    shared = timer

    def run(n: int) -> None:
        ids[threading.get_ident()] = n
        with shared:
            barrier.wait(timeout=10)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, count + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    durations = sorted(p["duration_ns"] for p in collected.payloads())
    assert durations == list(range(1, count + 1))


def test_one_decorated_function_called_concurrently_from_threads(
    log: logging.Logger, collected: Collector
) -> None:
    """Each concurrent call of a decorated function has fresh state."""
    count = 6
    barrier = threading.Barrier(count)
    ids: dict[int, int] = {}

    @timed("work", logger=log, clock=PerThreadClock(lambda: ids[threading.get_ident()]))
    def work(n: int) -> int:
        barrier.wait(timeout=10)
        return n

    def run(n: int) -> None:
        ids[threading.get_ident()] = n
        assert work(n) == n

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, count + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(p["duration_ns"] for p in collected.payloads()) == list(range(1, count + 1))


async def test_one_instance_entered_by_interleaved_tasks(
    log: logging.Logger, collected: Collector
) -> None:
    """Tasks on one thread interleave inside the same async with: no cross-talk."""
    ids: dict[asyncio.Task[Any] | None, int] = {}
    timer = timed("t", logger=log, clock=PerThreadClock(lambda: ids[asyncio.current_task()]))
    all_entered = asyncio.Event()
    entered = 0

    async def run(n: int) -> None:
        nonlocal entered
        ids[asyncio.current_task()] = n
        async with timer:
            entered += 1
            if entered == 5:
                all_entered.set()
            await all_entered.wait()

    await asyncio.gather(*(run(n) for n in range(1, 6)))
    assert sorted(p["duration_ns"] for p in collected.payloads()) == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------------------ typing


def test_decorated_functions_keep_their_signature_for_type_checkers() -> None:
    """mypy accepts tests/typing/timed_signatures.py, whose wrong calls must stay errors."""
    api = pytest.importorskip("mypy.api")
    root = Path(__file__).resolve().parents[2]
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(root / "setup.cfg"),
            "--follow-imports=silent",
            "--no-incremental",
            str(root / "tests" / "typing" / "timed_signatures.py"),
        ]
    )
    assert status == 0, stdout + stderr
