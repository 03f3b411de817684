"""Trace correlation: trace.id, span.id and transaction.id of the span active where a metric
is logged, with the OpenTelemetry SDK and the Elastic APM client in process (no APM server)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from ecs_metrics_handler import DocumentBuilder, ElasticECSHandler, metric, timed
from ecs_metrics_handler._trace import current_trace
from ecs_metrics_handler.testing import FakeCluster


def ship(logger: logging.Logger, handler_cls: type[ElasticECSHandler] = ElasticECSHandler) -> Any:
    cluster = FakeCluster()
    handler = handler_cls(client=cluster, es_index_name="trace")
    logger.addHandler(handler)
    return handler, cluster


def only_doc(handler: ElasticECSHandler, cluster: FakeCluster) -> dict[str, Any]:
    assert handler.flush(10)
    (doc,) = cluster.documents()
    return doc


@pytest.fixture
def tracer() -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider().get_tracer("tests")


def _quiet_transport() -> type:
    """An APM transport that sends nothing and starts no thread (the trace ids are all we need)."""
    from elasticapm.transport.base import Transport

    class QuietTransport(Transport):  # type: ignore[misc]
        def queue(self, event_type: Any, data: Any, flush: bool = False) -> None:
            return None

        def start_thread(self, pid: Any = None) -> None:
            return None

        def close(self) -> None:
            return None

    return QuietTransport


QuietTransport = _quiet_transport()


@pytest.fixture
def apm() -> Iterator[Any]:
    import elasticapm

    client = elasticapm.Client(
        service_name="tests",
        server_url="http://127.0.0.1:9",
        transport_class=f"{__name__}.QuietTransport",
        central_config=False,
        metrics_interval="0ms",
    )
    try:
        yield elasticapm, client
    finally:
        client.close()


def hexes(value: int, digits: int) -> str:
    return f"{value:0{digits}x}"


def test_no_active_span_no_trace_fields(logger: logging.Logger, tracer: Any) -> None:
    handler, cluster = ship(logger)
    logger.info("m", extra=metric("plain", 1))
    doc = only_doc(handler, cluster)
    assert not {"trace", "span", "transaction"} & doc.keys()


def test_without_tracing_libraries_nothing_is_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("opentelemetry.trace", "elasticapm.traces"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert current_trace() is None
    assert "opentelemetry.trace" not in sys.modules and "elasticapm.traces" not in sys.modules


def test_an_opentelemetry_span_is_on_the_metric(logger: logging.Logger, tracer: Any) -> None:
    handler, cluster = ship(logger)
    with tracer.start_as_current_span("request") as span:
        logger.info("m", extra=metric("db.query", 3.5, unit="ms"))
    context = span.get_span_context()
    doc = only_doc(handler, cluster)
    assert doc["trace"] == {"id": hexes(context.trace_id, 32)}
    assert doc["span"] == {"id": hexes(context.span_id, 16)}
    assert "transaction" not in doc


def test_timed_records_the_span_active_when_its_block_began(
    logger: logging.Logger, tracer: Any
) -> None:
    handler, cluster = ship(logger)
    timer = timed("checkout", logger=logger)
    span_scope = tracer.start_as_current_span("request")
    span = span_scope.__enter__()
    timer.__enter__()
    span_scope.__exit__(None, None, None)  # the span ends before the block does
    timer.__exit__(None, None, None)
    doc = only_doc(handler, cluster)
    assert doc["metrics"]["name"] == "checkout"
    assert doc["span"] == {"id": hexes(span.get_span_context().span_id, 16)}


def test_timed_decorator_takes_the_caller_span(logger: logging.Logger, tracer: Any) -> None:
    handler, cluster = ship(logger)

    @timed("work", logger=logger)
    def work() -> None:
        with tracer.start_as_current_span("inner"):
            pass

    with tracer.start_as_current_span("outer") as outer:
        work()
    doc = only_doc(handler, cluster)
    assert doc["span"] == {"id": hexes(outer.get_span_context().span_id, 16)}


def test_an_elastic_apm_transaction_and_span_are_on_the_metric(
    logger: logging.Logger, apm: Any
) -> None:
    elasticapm, client = apm
    handler, cluster = ship(logger)
    transaction = client.begin_transaction("request")
    try:
        logger.info("m", extra=metric("in.transaction", 1))
        with elasticapm.capture_span("db") as span:
            logger.info("m", extra=metric("in.span", 1))
    finally:
        client.end_transaction("GET /", "success")
    assert handler.flush(10)
    docs = {d["metrics"]["name"]: d for d in cluster.documents()}
    trace_id = transaction.trace_parent.trace_id
    assert docs["in.transaction"]["trace"] == {"id": trace_id}
    assert docs["in.transaction"]["transaction"] == {"id": transaction.id}
    assert "span" not in docs["in.transaction"]
    assert docs["in.span"]["span"] == {"id": span.id}
    assert docs["in.span"]["transaction"] == {"id": transaction.id}


def test_ids_given_in_the_payload_win(logger: logging.Logger, tracer: Any) -> None:
    handler, cluster = ship(logger)
    payload = {"name": "given", "value": 1, "trace_id": "a" * 32, "span_id": "b" * 16}
    with tracer.start_as_current_span("request"):
        logger.info("m", extra={"metric": payload})
    doc = only_doc(handler, cluster)
    assert doc["trace"] == {"id": "a" * 32} and doc["span"] == {"id": "b" * 16}


def test_a_tracing_library_that_raises_costs_no_metric(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        @staticmethod
        def get_current_span() -> Any:
            raise RuntimeError("tracer broken")

    monkeypatch.setitem(sys.modules, "opentelemetry.trace", Broken())
    handler, cluster = ship(logger)
    logger.info("m", extra=metric("still.here", 1))
    doc = only_doc(handler, cluster)
    assert doc["metrics"]["name"] == "still.here" and "trace" not in doc


def test_a_builder_that_reads_the_live_record_gets_the_trace_too(
    logger: logging.Logger, tracer: Any
) -> None:
    class Tagging(DocumentBuilder):
        def build(self, record: Any, message: Any, payload: Any) -> dict[str, Any]:
            doc = super().build(record, message, payload)
            doc["labels"] = {"tag": "x"}
            return doc

    class TaggingHandler(ElasticECSHandler):
        def make_document_builder(self) -> DocumentBuilder:
            return Tagging(self.options)

    handler, cluster = ship(logger, TaggingHandler)
    with tracer.start_as_current_span("request") as span:
        logger.info("m", extra=metric("tagged", 1))
    doc = only_doc(handler, cluster)
    assert doc["labels"] == {"tag": "x"}
    assert doc["trace"] == {"id": hexes(span.get_span_context().trace_id, 32)}


@pytest.mark.parametrize(
    "given",
    [
        {"trace_id": 42},
        {"trace_id": ""},
        {"trace_id": ["a"]},
        {"trace_id": "t" * 32, "span_id": 7, "transaction_id": {"x": 1}},
    ],
)
def test_trace_ids_of_the_wrong_type_are_ignored_and_the_metric_ships(
    logger: logging.Logger, given: dict[str, Any]
) -> None:
    handler, cluster = ship(logger)
    logger.info("m", extra={"metric": {"name": "typed", "value": 1, **given}})
    doc = only_doc(handler, cluster)
    assert doc["metrics"]["name"] == "typed"
    if given["trace_id"] == "t" * 32:  # a good trace id keeps; the wrong-typed others drop
        assert doc["trace"] == {"id": "t" * 32}
        assert "span" not in doc and "transaction" not in doc
    else:
        assert "trace" not in doc
