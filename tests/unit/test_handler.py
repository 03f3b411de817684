"""The handler's contract with stdlib logging and its delivery accounting, on FakeCluster.

Everything that depends on how Elasticsearch itself behaves is tested against real nodes in
tests/integration; these tests pin down the handler's own logic.
"""

from __future__ import annotations

import logging
import logging.config
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ecs_metrics_handler import (
    METRICS_LOGGER_NAME,
    ConfigurationError,
    ElasticECSHandler,
    metric,
    replay,
)
from ecs_metrics_handler._spool import read_items
from ecs_metrics_handler.testing import FakeCluster


def make(
    cluster: FakeCluster | None = None, **options: Any
) -> tuple[ElasticECSHandler, FakeCluster]:
    cluster = cluster or FakeCluster()
    options.setdefault("es_index_name", "unit")
    options.setdefault("flush_frequency_in_sec", 0.05)
    options.setdefault("retry_backoff_initial", 0.01)
    options.setdefault("retry_backoff_max", 0.05)
    return ElasticECSHandler(client=cluster, **options), cluster


def test_metric_record_becomes_one_document(logger: logging.Logger) -> None:
    handler, cluster = make()
    logger.addHandler(handler)
    logger.info("db query", extra=metric("db.query", 12.5, unit="ms", labels={"table": "orders"}))
    assert handler.flush(5)
    (doc,) = cluster.documents()
    assert doc["metrics"]["name"] == "db.query"
    assert doc["metrics"]["value"] == 12.5
    assert doc["labels"] == {"table": "orders"}
    assert doc["message"] == "db query"
    assert handler.stats()["shipped"] == 1


def test_payload_mutated_after_the_call_is_shipped_as_it_was(logger: logging.Logger) -> None:
    handler, cluster = make(flush_frequency_in_sec=30)
    logger.addHandler(handler)
    payload: dict[str, Any] = {"name": "m", "value": 1, "labels": {"k": "before"}}
    logger.info("x", extra={"metric": payload})
    payload["value"] = 2
    payload["labels"]["k"] = "after"
    assert handler.flush(5)
    (doc,) = cluster.documents()
    assert doc["metrics"]["value"] == 1
    assert doc["labels"] == {"k": "before"}


def test_a_payload_under_an_extra_mapping_ships_as_loguru_sends_it(logger: logging.Logger) -> None:
    """loguru's standard-handler sink puts its extras under ``record.extra``."""
    handler, cluster = make()
    logger.addHandler(handler)
    logger.info("db query", extra={"extra": {"metric": {"name": "db.query", "value": 3}}})
    logger.info("not a metric", extra={"extra": {"user": "ada"}})
    logger.info("not a mapping", extra={"extra": ["metric"]})
    own = {"name": "own", "value": 1}
    logger.info("both", extra={"metric": own, "extra": {"metric": {"name": "bound", "value": 2}}})
    assert handler.flush(5)
    assert sorted(d["metrics"]["name"] for d in cluster.documents()) == ["db.query", "own"]
    assert handler.stats()["emitted"] == 2


def test_records_without_a_metric_are_not_shipped_by_default(logger: logging.Logger) -> None:
    handler, cluster = make()
    logger.addHandler(handler)
    logger.info("plain log line")
    logger.info("m", extra=metric("m", 1))
    assert handler.flush(5)
    assert [d["metrics"]["name"] for d in cluster.documents()] == ["m"]
    assert handler.stats()["emitted"] == 1


def test_ship_log_records_ships_ordinary_records_as_log_events(logger: logging.Logger) -> None:
    handler, cluster = make(ship_log_records=True)
    logger.addHandler(handler)
    logger.warning("disk almost full")
    assert handler.flush(5)
    (doc,) = cluster.documents()
    assert doc["message"] == "disk almost full"
    assert doc["log"]["level"] == "warning"
    assert "metrics" not in doc


@pytest.mark.parametrize(
    "name",
    [
        "elastic_transport.transport",
        "elasticsearch",
        "urllib3.connectionpool",
        "requests",
        "ecs_metrics_handler",
    ],
)
def test_client_and_own_records_are_never_shipped(name: str) -> None:
    handler, cluster = make(ship_log_records=True)
    record = logging.LogRecord(name, logging.INFO, __file__, 1, "GET /_bulk", None, None)
    record.metric = {"name": "x", "value": 1}
    handler.handle(record)
    assert handler.flush(5)
    assert cluster.documents() == []
    handler.close()


def test_the_documented_metrics_logger_is_shipped() -> None:
    handler, cluster = make()
    log = logging.getLogger(METRICS_LOGGER_NAME)
    log.addHandler(handler)
    try:
        log.setLevel(logging.INFO)
        log.info("t", extra=metric("timed.thing", 1))
        assert handler.flush(5)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert [d["metrics"]["name"] for d in cluster.documents()] == ["timed.thing"]


def test_level_and_filters_apply_as_in_the_stdlib(logger: logging.Logger) -> None:
    handler, cluster = make(level="WARNING")
    handler.addFilter(lambda r: r.getMessage() != "skip me")
    logger.addHandler(handler)
    logger.info("too low", extra=metric("a", 1))
    logger.warning("skip me", extra=metric("b", 1))
    logger.warning("kept", extra=metric("c", 1))
    assert handler.flush(5)
    assert [d["metrics"]["name"] for d in cluster.documents()] == ["c"]


def test_a_bad_metric_never_raises_and_never_costs_the_others(
    logger: logging.Logger, tmp_path: Path
) -> None:
    handler, cluster = make(flush_failure_folder=str(tmp_path), flush_frequency_in_sec=30)
    logger.addHandler(handler)
    logger.info("ok", extra=metric("good.one", 1))
    logger.info("bad", extra={"metric": {"value": 3}})  # no name
    logger.info("bad", extra={"metric": {"name": "nan", "value": float("nan")}})
    logger.info("bad", extra={"metric": {"name": "str", "value": "fast"}})
    logger.info("bad", extra={"metric": "not a mapping"})
    logger.info("ok", extra=metric("good.two", 2, labels={"obj": object()}))  # type: ignore[dict-item]
    assert handler.flush(5)
    assert sorted(d["metrics"]["name"] for d in cluster.documents()) == ["good.one", "good.two"]
    stats = handler.stats()
    assert (stats["shipped"], stats["invalid"]) == (2, 4)
    (dead,) = tmp_path.glob("dead-letter-*.ndjson")
    assert len(dead.read_bytes().splitlines()) == 4


def test_buffer_size_wakes_the_worker_before_the_interval(logger: logging.Logger) -> None:
    handler, cluster = make(buffer_size=10, flush_frequency_in_sec=60)
    logger.addHandler(handler)
    for i in range(10):
        logger.info("m", extra=metric("m", i))
    deadline = time.monotonic() + 5
    while len(cluster.documents()) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cluster.documents()) == 10


def test_the_interval_ships_a_partial_buffer(logger: logging.Logger) -> None:
    handler, cluster = make(buffer_size=1000, flush_frequency_in_sec=0.05)
    logger.addHandler(handler)
    logger.info("m", extra=metric("m", 1))
    deadline = time.monotonic() + 5
    while not cluster.documents() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cluster.documents()) == 1


def test_many_threads_deliver_exactly_once(logger: logging.Logger) -> None:
    handler, cluster = make(buffer_size=100)
    logger.addHandler(handler)

    def work(t: int) -> None:
        for i in range(500):
            logger.info("m", extra=metric("m", i, labels={"t": t}))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.flush(10)
    ids = list(cluster.ids())
    assert len(ids) == 4000 == len(set(ids))
    assert handler.stats()["shipped"] == 4000


def test_unreachable_cluster_spools_everything_and_replay_delivers_it_once(
    logger: logging.Logger, tmp_path: Path
) -> None:
    cluster = FakeCluster()
    cluster.down = True
    handler, _ = make(cluster, flush_failure_folder=str(tmp_path), max_retries=1)
    logger.addHandler(handler)
    for i in range(50):
        logger.info("m", extra=metric("m", i))
    handler.flush(5)
    logger.removeHandler(handler)
    handler.close()
    stats = handler.stats()
    assert stats["spooled"] == 50 and stats["shipped"] == 0 and stats["pending"] == 0
    assert sum(len(read_items(p)) for p in tmp_path.glob("segment-*.ndjson")) == 50

    cluster.down = False
    first = replay(tmp_path, client=cluster, es_index_name="unit")
    assert (first.indexed, first.left) == (50, 0)
    assert list(tmp_path.glob("segment-*")) == []
    assert len(cluster.documents()) == 50


def test_worker_replays_the_spool_when_the_cluster_is_back(
    logger: logging.Logger, tmp_path: Path
) -> None:
    cluster = FakeCluster()
    cluster.down = True
    handler, _ = make(cluster, flush_failure_folder=str(tmp_path), max_retries=0)
    logger.addHandler(handler)
    for i in range(20):
        logger.info("m", extra=metric("m", i))
    handler.flush(5)
    assert handler.stats()["spooled"] == 20
    cluster.down = False
    logger.info("m", extra=metric("m", 99))
    deadline = time.monotonic() + 10
    while len(cluster.documents()) < 21 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(cluster.documents()) == 21
    assert handler.stats()["replayed"] == 20
    assert list(tmp_path.glob("segment-*")) == []


def test_retryable_items_are_retried_and_refused_ones_dead_lettered(
    logger: logging.Logger, tmp_path: Path
) -> None:
    cluster = FakeCluster()
    calls = {"n": 0}

    def statuses(ops: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
        calls["n"] += 1
        out = []
        for _, _, doc in ops:
            if doc["metrics"]["name"] == "conflict":
                out.append(400)
            elif doc["metrics"]["name"] == "busy" and calls["n"] == 1:
                out.append(429)
            else:
                out.append(201)
        return out

    cluster.item_statuses = statuses
    handler, _ = make(cluster, flush_failure_folder=str(tmp_path), flush_frequency_in_sec=30)
    logger.addHandler(handler)
    for name in ("ok", "busy", "conflict", "ok2"):
        logger.info("m", extra=metric(name, 1))
    assert handler.flush(5)
    assert sorted(d["metrics"]["name"] for d in cluster.documents()) == ["busy", "ok", "ok2"]
    stats = handler.stats()
    assert (stats["shipped"], stats["retried"], stats["dead_lettered"]) == (3, 1, 1)
    (dead,) = tmp_path.glob("dead-letter-*.ndjson")
    assert b'"status":400' in dead.read_bytes()


def test_without_a_failure_folder_undeliverable_metrics_are_counted_dropped(
    logger: logging.Logger,
) -> None:
    cluster = FakeCluster()
    cluster.down = True
    handler, _ = make(cluster, max_retries=0)
    logger.addHandler(handler)
    for i in range(5):
        logger.info("m", extra=metric("m", i))
    handler.flush(5)
    stats = handler.stats()
    assert stats["dropped"] == 5
    assert any("no flush_failure_folder" in reason for reason in stats["dropped_reasons"])


def test_emit_does_not_wait_on_a_hanging_cluster(logger: logging.Logger, tmp_path: Path) -> None:
    cluster = FakeCluster()
    cluster.delay = 2.0
    handler, _ = make(cluster, buffer_size=10, flush_failure_folder=str(tmp_path))
    logger.addHandler(handler)
    worst = 0.0
    for i in range(2000):
        start = time.perf_counter()
        logger.info("m", extra=metric("m", i))
        worst = max(worst, time.perf_counter() - start)
    # A generous bound: the point is that no call waits for the 2 s request.
    assert worst < 0.5


def test_close_is_bounded_idempotent_and_spools_what_is_left(
    logger: logging.Logger, tmp_path: Path
) -> None:
    cluster = FakeCluster()
    cluster.delay = 30.0
    handler, _ = make(cluster, flush_failure_folder=str(tmp_path), flush_timeout=0.5)
    logger.addHandler(handler)
    for i in range(100):
        logger.info("m", extra=metric("m", i))
    start = time.monotonic()
    logger.removeHandler(handler)
    handler.close()
    handler.close()
    assert time.monotonic() - start < 3.0
    assert handler.flush() is True  # flush after close does nothing
    assert handler.stats()["spooled"] == 100
    assert sum(len(read_items(p)) for p in tmp_path.glob("segment-*.ndjson")) == 100


def test_dictconfig_builds_the_handler_from_plain_values_and_ext_objects() -> None:
    name = f"test.dictconfig.{uuid.uuid4().hex[:8]}"
    cluster = FakeCluster()
    globals()["_DICTCONFIG_CLUSTER"] = cluster
    logging.config.dictConfig(
        {
            "version": 1,
            "incremental": False,
            "disable_existing_loggers": False,
            "handlers": {
                "es": {
                    "class": "ecs_metrics_handler.ElasticECSHandler",
                    "client": f"ext://{__name__}._DICTCONFIG_CLUSTER",
                    "es_index_name": "dictcfg",
                    "index_name_frequency": "monthly",
                    "auth_type": "no_auth",
                    "buffer_size": "10",
                    "flush_frequency_in_sec": 0.05,
                    "level": "INFO",
                }
            },
            "loggers": {name: {"handlers": ["es"], "level": "INFO", "propagate": False}},
        }
    )
    log = logging.getLogger(name)
    (handler,) = log.handlers
    assert isinstance(handler, ElasticECSHandler)
    log.info("m", extra=metric("cfg", 1))
    assert handler.flush(5)
    (index,) = cluster.indices
    assert index.startswith("dictcfg-") and len(index) == len("dictcfg-2026.11")
    log.removeHandler(handler)
    handler.close()


def test_a_wrong_option_fails_at_construction_naming_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        ElasticECSHandler(buffer_size=0)
    assert info.value.option == "buffer_size"
    assert isinstance(info.value, ValueError)


def test_records_logged_by_the_worker_thread_are_not_shipped(logger: logging.Logger) -> None:
    cluster = FakeCluster()
    handler, _ = make(cluster, ship_log_records=True)
    root_probe = logging.getLogger(f"reentrant.{uuid.uuid4().hex[:6]}")
    root_probe.addHandler(handler)
    root_probe.propagate = False

    original = cluster.bulk

    def logging_bulk(**kwargs: Any) -> Any:
        root_probe.warning("logged from inside the worker")
        return original(**kwargs)

    cluster.bulk = logging_bulk  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.info("m", extra=metric("m", 1))
    assert handler.flush(5)
    assert [d.get("message") for d in cluster.documents()] == ["m"]
    root_probe.removeHandler(handler)


def test_worker_records_relayed_by_a_queue_listener_are_not_shipped(
    logger: logging.Logger,
) -> None:
    """A QueueListener hands the worker's own records to the handler on another thread:
    they are recognised by the thread that made them, so shipping cannot feed itself."""
    import logging.handlers
    import queue

    cluster = FakeCluster()
    handler, _ = make(cluster, ship_log_records=True)
    relay: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(relay, handler)
    probe = logging.getLogger(f"relayed.{uuid.uuid4().hex[:6]}")
    probe.addHandler(logging.handlers.QueueHandler(relay))
    probe.propagate = False
    original = cluster.bulk

    def logging_bulk(**kwargs: Any) -> Any:
        probe.warning("logged from inside the worker")
        return original(**kwargs)

    cluster.bulk = logging_bulk  # type: ignore[method-assign]
    listener.start()
    try:
        probe.warning("logged by the application")
        logger.addHandler(handler)
        logger.info("m", extra=metric("m", 1))
        assert handler.flush(5)  # the bulk request logs a warning on the worker's thread
        listener.stop()  # every relayed record has been handled now
        assert handler.flush(5)
        messages = sorted(d.get("message") for d in cluster.documents())
        assert messages == ["logged by the application", "m"]
    finally:
        probe.handlers.clear()


def test_dictconfig_rerun_under_a_hanging_cluster_spools_without_waiting(tmp_path: Path) -> None:
    """dictConfig closes old handlers under logging's module lock: no wait on the worker there."""
    name = f"test.rerun.{uuid.uuid4().hex[:8]}"
    cluster = FakeCluster()
    cluster.delay = 30.0
    globals()["_RERUN_CLUSTER"] = cluster
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "es": {
                "class": "ecs_metrics_handler.ElasticECSHandler",
                "client": f"ext://{__name__}._RERUN_CLUSTER",
                "flush_failure_folder": str(tmp_path),
                "flush_frequency_in_sec": 0.05,
                "flush_timeout": 5,
            }
        },
        "loggers": {name: {"handlers": ["es"], "level": "INFO", "propagate": False}},
    }
    logging.config.dictConfig(config)
    log = logging.getLogger(name)
    (first,) = log.handlers
    assert isinstance(first, ElasticECSHandler)
    for i in range(10):
        log.info("m", extra=metric("m", i))
    time.sleep(0.3)  # the sender is now inside a request that takes 30 s
    start = time.monotonic()
    logging.config.dictConfig(config)
    took = time.monotonic() - start
    assert took < 2.0  # not flush_timeout (5 s), not the request (30 s)
    assert first.stats()["spooled"] == 10
    (second,) = log.handlers
    log.removeHandler(second)
    second.close()


def test_a_full_queue_waits_a_bounded_time_then_drops_counting(logger: logging.Logger) -> None:
    """With the worker unable to make room, a call pauses at most ~5 ms, then drops and counts."""
    cluster = FakeCluster()
    cluster.delay = 30.0
    handler, _ = make(
        cluster, buffer_size=10, max_queue_records=10, max_pending_bytes=1, flush_timeout=0.2
    )
    logger.addHandler(handler)
    for i in range(40):  # fills the outbox (one batch in flight) and then the queue
        logger.info("m", extra=metric("m", i))
    start = time.perf_counter()
    logger.info("m", extra=metric("m", 99))
    took = time.perf_counter() - start
    stats = handler.stats()
    assert stats["dropped_reasons"].get("in-memory queue full (max_queue_records)", 0) >= 1
    assert took < 0.1


def _identity_holds(stats: dict[str, Any]) -> bool:
    settled = sum(
        stats[k] for k in ("shipped", "spooled", "dead_lettered", "invalid", "dropped", "pending")
    )
    return bool(stats["emitted"] == settled)


def test_a_record_whose_message_cannot_be_formatted_still_ships_its_metric(
    logger: logging.Logger,
) -> None:
    handler, cluster = make()
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        "%d queries",
        ("not a number",),
        None,
        extra=metric("q", 1),
    )
    handler.handle(record)  # other handlers (pytest's) would report the format error
    assert handler.flush(5)
    (doc,) = cluster.documents()
    assert doc["metrics"]["name"] == "q" and doc["message"] == "%d queries"
    assert _identity_holds(handler.stats()) and handler.stats()["shipped"] == 1


def test_a_payload_no_dead_letter_can_hold_as_is_costs_no_other_metric(
    logger: logging.Logger, tmp_path: Path
) -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    handler, _ = make(flush_failure_folder=str(tmp_path), flush_frequency_in_sec=30)
    logger.addHandler(handler)
    for i in range(100):
        logger.info("ok", extra=metric("good", i))
    for bad in ({1: "x"}, {"name": "m", "value": 2**80}, {"name": "\udc80"}, BadRepr()):
        logger.info("bad", extra={"metric": bad})
    for i in range(100):
        logger.info("ok", extra=metric("good", i))
    assert handler.flush(5)
    stats = handler.stats()
    # a value over 64 bits and a lone surrogate are converted and ship; the other two are invalid
    assert (stats["shipped"], stats["invalid"]) == (202, 2), stats
    assert _identity_holds(stats)
    lines = [
        line
        for p in tmp_path.glob("dead-letter-*.ndjson")
        for line in p.read_bytes().split(b"\n")
        if line
    ]
    assert len(lines) == 2


class _NoTemplateRights(FakeCluster):
    """A writer that may index documents but not install templates: 403 on the template."""

    def __init__(self) -> None:
        super().__init__()
        self.template_calls = 0

    def perform_request(self, *args: Any, **kwargs: Any) -> Any:
        from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
        from elasticsearch import AuthorizationException

        self.template_calls += 1
        meta = ApiResponseMeta(
            status=403,
            http_version="1.1",
            headers=HttpHeaders(),
            duration=0.0,
            node=NodeConfig("http", "localhost", 9200),
        )
        raise AuthorizationException(message="security_exception", meta=meta, body={})


def test_a_refused_template_is_reported_once_and_documents_still_ship(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = _NoTemplateRights()
    handler, _ = make(cluster, install_template=True)
    logger.addHandler(handler)
    for i in range(5):
        logger.info("m", extra=metric("m", i))
    assert handler.flush(5)
    logger.info("m", extra=metric("m", 5))
    assert handler.flush(5)
    assert handler.stats()["shipped"] == 6 and handler.stats()["spooled"] == 0
    assert cluster.template_calls == 1
    assert any("template was refused (HTTP 403" in r.getMessage() for r in caplog.records)


class _EmptyAnswers(FakeCluster):
    """A proxy that answers every bulk request ``200 {}``."""

    def bulk(self, *, operations: bytes, filter_path: str | None = None, **_: Any) -> Any:
        response = super().bulk(operations=b"", filter_path=filter_path)
        response.body = {}
        return response


def test_an_empty_answer_acknowledges_nothing(logger: logging.Logger, tmp_path: Path) -> None:
    handler, _ = make(_EmptyAnswers(), flush_failure_folder=str(tmp_path), max_retries=1)
    logger.addHandler(handler)
    for i in range(10):
        logger.info("m", extra=metric("m", i))
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["shipped"], stats["spooled"]) == (0, 10), stats
    assert _identity_holds(stats)
