"""The original library's API (``ElasticECSMetricsLogger``): its timer records what timed() does.

The timer's clocks are injected by replacing ``original_api.timed`` with a ``timed`` bound to
fake clocks, so nothing here reads the real time or waits.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import ecs_metrics_handler
from ecs_metrics_handler import (
    DocumentBuilder,
    ElasticECSMetricsLogger,
    NaiveDatetimeError,
    now,
    original_api,
)
from ecs_metrics_handler._document import format_timestamp
from ecs_metrics_handler._timing import timed, timer_payload
from ecs_metrics_handler.testing import FakeCluster

WALL = 1_700_000_000.125


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def ticking(*values: int) -> Callable[[], int]:
    """A fake monotonic clock returning the given nanosecond readings in turn."""
    readings = iter(values)
    return lambda: next(readings)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def metrics_logger(cluster: FakeCluster) -> Iterator[ElasticECSMetricsLogger]:
    """An original-API logger on an in-memory cluster; closed after the test."""
    logger = ElasticECSMetricsLogger(client=cluster, es_index_name="original-api")
    yield logger
    logger.close()


@pytest.fixture
def collected(metrics_logger: ElasticECSMetricsLogger) -> Iterator[Collector]:
    """The records the original-API logger hands to its handler."""
    collector = Collector()
    metrics_logger._logger.addHandler(collector)
    yield collector
    metrics_logger._logger.removeHandler(collector)


@pytest.fixture
def reference(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, Collector]]:
    """A logger of its own, for the records timed() gives on its own."""
    log = logging.getLogger(f"tests.original_api.{request.node.name}")
    collector = Collector()
    log.addHandler(collector)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log, collector
    log.removeHandler(collector)


def fake_clocks(monkeypatch: pytest.MonkeyPatch, *readings: int) -> None:
    """Make the original API's timer read ``readings`` (ns) and start at ``WALL``."""
    monkeypatch.setattr(
        original_api,
        "timed",
        functools.partial(timed, clock=ticking(*readings), wall_clock=lambda: WALL),
    )


def document(metrics_logger: ElasticECSMetricsLogger, record: logging.LogRecord) -> dict[str, Any]:
    """The ECS document the handler builds for ``record``."""
    builder = DocumentBuilder(metrics_logger.handler.options)
    return builder.build(record, record.getMessage(), record.metric)  # type: ignore[attr-defined]


def outcome_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """Everything of a timer document but @timestamp and where the record was logged."""
    return {key: doc.get(key) for key in ("event", "metrics", "labels", "error", "message")}


def run_original(metrics_logger: ElasticECSMetricsLogger, error: BaseException | None) -> None:
    with metrics_logger.log_time_metric_timer("checkout"):
        if error is not None:
            raise error


def run_timed(log: logging.Logger, error: BaseException | None) -> None:
    with timed("checkout", logger=log, clock=ticking(1_000, 2_501_000), wall_clock=lambda: WALL):
        if error is not None:
            raise error


@pytest.mark.parametrize(
    ("error", "outcome", "error_type"),
    [
        (None, "success", None),
        (ValueError("bad sku"), "failure", "ValueError"),
        (KeyboardInterrupt(), "unknown", "KeyboardInterrupt"),
    ],
    ids=["success", "exception", "base-exception"],
)
def test_the_timer_records_what_timed_records(
    metrics_logger: ElasticECSMetricsLogger,
    collected: Collector,
    reference: tuple[logging.Logger, Collector],
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException | None,
    outcome: str,
    error_type: str | None,
) -> None:
    """Same payload and same ECS outcome fields as timed(), for a block that ends or raises."""
    log, timed_records = reference
    fake_clocks(monkeypatch, 1_000, 2_501_000)
    runs: list[Callable[[], None]] = [
        lambda: run_original(metrics_logger, error),
        lambda: run_timed(log, error),
    ]
    for run in runs:
        if error is None:
            run()
        else:
            with pytest.raises(type(error)) as caught:
                run()
            assert caught.value is error  # propagated unchanged
    [original] = collected.records
    [reference_record] = timed_records.records
    payload: dict[str, Any] = original.metric  # type: ignore[attr-defined]
    assert payload == reference_record.metric  # type: ignore[attr-defined]
    assert (payload["outcome"], payload.get("error_type")) == (outcome, error_type)
    original_doc = document(metrics_logger, original)
    reference_doc = document(metrics_logger, reference_record)
    assert outcome_fields(original_doc) == outcome_fields(reference_doc)
    assert original_doc["event"]["outcome"] == outcome
    assert original_doc.get("error") == (None if error_type is None else {"type": error_type})
    assert original_doc["metrics"]["duration"] == {"us": 2_500}
    assert original_doc["metrics"]["name"] == "checkout"


def test_the_timer_stamps_the_document_with_the_start_of_the_measure(
    metrics_logger: ElasticECSMetricsLogger, collected: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """@timestamp is the start (as in the original), for a block that ends and one that raises."""
    fake_clocks(monkeypatch, 0, 3_000_000, 10, 20)
    run_original(metrics_logger, None)
    with pytest.raises(RuntimeError):
        run_original(metrics_logger, RuntimeError("down"))
    assert [r.created for r in collected.records] == [WALL, WALL]
    for record in collected.records:
        doc = document(metrics_logger, record)
        assert doc["@timestamp"] == doc["event"]["start"] == format_timestamp(WALL)
    assert document(metrics_logger, collected.records[0])["event"]["end"] == format_timestamp(
        WALL + 0.003
    )


def test_the_timer_is_a_timed_on_the_instances_logger(
    metrics_logger: ElasticECSMetricsLogger, collected: Collector
) -> None:
    """A timed (usable as with, async with or decorator) whose record points at the caller."""
    timer = metrics_logger.log_time_metric_timer("t")
    assert isinstance(timer, timed)
    assert (timer.logger, timer.timestamp, timer.metric_key) == (
        metrics_logger._logger,
        "start",
        metrics_logger.handler.options.metric_key,
    )
    with timer:
        pass
    [record] = collected.records
    assert (record.levelno, record.getMessage(), record.funcName, record.filename) == (
        logging.INFO,
        "t",
        "test_the_timer_is_a_timed_on_the_instances_logger",
        "test_original_api.py",
    )
    assert record.name.startswith(f"{ecs_metrics_handler.METRICS_LOGGER_NAME}.original_api.")


def test_log_time_metric_records_a_successful_timer_stamped_with_its_start(
    metrics_logger: ElasticECSMetricsLogger, collected: Collector
) -> None:
    """time_us in µs; the payload is timed()'s for a success; @timestamp is start_datetime."""
    start = datetime.datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=datetime.timezone.utc)
    metrics_logger.log_time_metric("explicit", start, 1500)
    [record] = collected.records
    assert record.metric == timer_payload("explicit", 1_500_000, start.timestamp())  # type: ignore[attr-defined]
    assert record.created == start.timestamp()
    assert (record.funcName, record.filename) == (
        "test_log_time_metric_records_a_successful_timer_stamped_with_its_start",
        "test_original_api.py",
    )
    doc = document(metrics_logger, record)
    assert doc["@timestamp"] == "2024-05-01T12:00:00.250Z" == doc["event"]["start"]
    assert (doc["metrics"]["duration"], doc["event"]["outcome"]) == ({"us": 1500}, "success")


def test_log_time_metric_refuses_a_naive_datetime(
    metrics_logger: ElasticECSMetricsLogger, collected: Collector
) -> None:
    """Like the original: NaiveDatetimeError (a ValueError), and nothing is logged."""
    with pytest.raises(NaiveDatetimeError):
        metrics_logger.log_time_metric("t", datetime.datetime(2024, 5, 1), 10)
    assert issubclass(NaiveDatetimeError, ValueError)
    assert collected.records == []
    assert now().tzinfo is not None


def test_documents_reach_the_cluster_stamped_with_their_start(
    metrics_logger: ElasticECSMetricsLogger, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the handler: a raising block's document has outcome failure and error.type."""
    fake_clocks(monkeypatch, 0, 5_000)
    with pytest.raises(KeyError):
        run_original(metrics_logger, KeyError("sku"))
    assert metrics_logger.flush(timeout=10)
    [doc] = cluster.documents()
    assert doc["@timestamp"] == format_timestamp(WALL)
    assert (doc["event"]["outcome"], doc["error"]["type"]) == ("failure", "KeyError")


def test_the_package_exports_the_original_api_module_names() -> None:
    """``from ecs_metrics_handler import ElasticECSMetricsLogger, now`` keeps working."""
    for name in original_api.__all__:
        assert getattr(ecs_metrics_handler, name) is getattr(original_api, name)
