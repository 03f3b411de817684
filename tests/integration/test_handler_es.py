"""ElasticECSHandler against a real Elasticsearch node: documents, indices, templates, options.

The node's major follows the installed client (client 9 -> ES 9.x, client 8 -> ES 8.19.x), so
the suite run twice covers both.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import logging.config
import uuid
from pathlib import Path
from typing import Any

import pytest

from ecs_metrics_handler import (
    METRICS_LOGGER_NAME,
    ElasticECSHandler,
    ElasticECSMetricsLogger,
    metric,
    now,
    replay,
    timed,
)
from ecs_metrics_handler._spool import read_items


def _ts(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: float = 0.0
) -> float:
    return calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0)) + second


def _search(es_client: Any, pattern: str, size: int = 1000, **query: Any) -> list[dict[str, Any]]:
    es_client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    resp = es_client.search(index=pattern, size=size, sort=["@timestamp:asc"], **query)
    return [hit for hit in resp["hits"]["hits"]]


def _handler(es_server: Any, prefix: str, **options: Any) -> ElasticECSHandler:
    options.setdefault("flush_frequency_in_sec", 0.2)
    return ElasticECSHandler(hosts=[es_server.url], es_index_name=prefix, **options)


def test_dictconfig_end_to_end_ships_metrics_with_ecs_fields_and_types(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """A handler set up by dictConfig ships logger.info metrics; the template maps their types."""
    name = f"app.{unique_name}"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "metrics": {
                    "class": "ecs_metrics_handler.ElasticECSHandler",
                    "hosts": [es_server.url],
                    "es_index_name": unique_name,
                    "index_name_frequency": "daily",
                    "install_template": True,
                    "service_name": "checkout",
                    "flush_frequency_in_sec": 0.2,
                }
            },
            "loggers": {name: {"handlers": ["metrics"], "level": "INFO", "propagate": False}},
        }
    )
    log = logging.getLogger(name)
    (handler,) = log.handlers
    try:
        log.info("db query", extra=metric("db.query", 12.5, unit="ms", labels={"table": "orders"}))
        log.info("queue depth", extra=metric("queue.depth", 7, type="gauge"))
        assert handler.flush(30)  # type: ignore[call-arg]
    finally:
        log.removeHandler(handler)
        handler.close()
    hits = _search(es_client, f"{unique_name}-*")
    assert [h["_source"]["metrics"]["name"] for h in hits] == ["db.query", "queue.depth"]
    src = hits[0]["_source"]
    assert src["event"]["kind"] == "metric"
    assert src["ecs"]["version"]
    assert src["service"]["name"] == "checkout"
    assert src["log"] == {**src["log"], "level": "info", "logger": name}
    assert src["labels"] == {"table": "orders"}
    assert src["@timestamp"].endswith("Z")
    mapping = es_client.indices.get_mapping(index=hits[0]["_index"])[hits[0]["_index"]]["mappings"]
    props = mapping["properties"]
    assert props["metrics"]["properties"]["value"]["type"] == "double"
    assert props["metrics"]["properties"]["name"]["type"] == "keyword"
    assert props["@timestamp"]["type"] == "date"
    # A typed range query only works on a numeric mapping.
    found = _search(es_client, f"{unique_name}-*", query={"range": {"metrics.value": {"gte": 10}}})
    assert [h["_source"]["metrics"]["name"] for h in found] == ["db.query"]


def test_timed_sync_async_and_raising_blocks_are_searchable(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger
) -> None:
    """timed() as decorator (sync, async) and context manager records durations, also on failure."""
    handler = _handler(es_server, unique_name, install_template=True)
    logger.addHandler(handler)

    @timed("sync.call", logger=logger)
    def sync_call() -> int:
        return 1

    @timed("async.call", logger=logger)
    async def async_call() -> int:
        await asyncio.sleep(0.01)
        return 2

    assert sync_call() == 1
    assert asyncio.run(async_call()) == 2
    with pytest.raises(KeyError), timed("raising.block", logger=logger):
        raise KeyError("boom")
    assert handler.flush(30)
    docs = {
        h["_source"]["metrics"]["name"]: h["_source"]
        for h in _search(es_client, f"{unique_name}-*")
    }
    assert set(docs) == {"sync.call", "async.call", "raising.block"}
    slow = docs["async.call"]
    assert slow["event"]["duration"] >= 10_000_000  # ns
    assert slow["metrics"]["duration"]["us"] == slow["event"]["duration"] // 1000
    assert slow["metrics"]["type"] == "timer"
    assert slow["event"]["outcome"] == "success"
    assert docs["raising.block"]["event"]["outcome"] == "failure"
    assert docs["raising.block"]["event"]["start"] <= docs["raising.block"]["event"]["end"]


def test_default_metrics_logger_of_timed_is_shipped(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """timed() without a logger uses the documented metrics logger, which the guard lets through."""
    handler = _handler(es_server, unique_name)
    metrics_logger = logging.getLogger(METRICS_LOGGER_NAME)
    metrics_logger.addHandler(handler)
    previous = metrics_logger.level
    metrics_logger.setLevel(logging.INFO)
    try:
        with timed("default.logger"):
            pass
        assert handler.flush(30)
    finally:
        metrics_logger.setLevel(previous)
        metrics_logger.removeHandler(handler)
        handler.close()
    assert [h["_source"]["metrics"]["name"] for h in _search(es_client, f"{unique_name}-*")] == [
        "default.logger"
    ]


@pytest.mark.parametrize(
    ("frequency", "expected"),
    [
        ("daily", ["2026.12.31", "2027.01.01"]),
        ("weekly", ["2026.12.28"]),  # both days fall in the week of Monday 28 December
        ("monthly", ["2026.12", "2027.01"]),
        ("yearly", ["2026", "2027"]),
        ("never", [""]),
    ],
)
def test_index_name_follows_the_event_time_across_boundaries(
    es_server: Any,
    es_client: Any,
    unique_name: str,
    logger: logging.Logger,
    frequency: str,
    expected: list[str],
) -> None:
    """Records on both sides of midnight on 31 December land in the index of their own time."""
    handler = _handler(es_server, unique_name, index_name_frequency=frequency)
    logger.addHandler(handler)
    for created in (_ts(2026, 12, 31, 23, 59, 59.999), _ts(2027, 1, 1)):
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, "m", (), None, extra=metric("m", 1)
        )
        record.created = created
        record.msecs = (created % 1) * 1000
        logger.handle(record)
    assert handler.flush(30)
    hits = _search(es_client, f"{unique_name}*")
    assert len(hits) == 2
    names = sorted({h["_index"] for h in hits})
    assert names == sorted(f"{unique_name}-{s}" if s else unique_name for s in expected)
    assert [h["_source"]["@timestamp"] for h in hits] == [
        "2026-12-31T23:59:59.999Z",
        "2027-01-01T00:00:00.000Z",
    ]


def test_week_boundary_uses_the_monday_of_each_event(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger
) -> None:
    """Sunday 23:59 and Monday 00:00 belong to two weekly indices."""
    handler = _handler(es_server, unique_name, index_name_frequency="WEEKLY")
    logger.addHandler(handler)
    for created in (_ts(2026, 11, 29, 23, 59, 59.5), _ts(2026, 11, 30)):  # Sunday, Monday
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, "m", (), None, extra=metric("m", 1)
        )
        record.created = created
        logger.handle(record)
    assert handler.flush(30)
    names = sorted({h["_index"] for h in _search(es_client, f"{unique_name}-*")})
    assert names == [f"{unique_name}-2026.11.23", f"{unique_name}-2026.11.30"]


def test_additional_fields_and_environment_fields_per_document(
    es_server: Any,
    es_client: Any,
    unique_name: str,
    logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Env fields are read per document; a missing variable falls back to es_additional_fields."""
    var = f"ECSMH_IT_{uuid.uuid4().hex[:6].upper()}"
    missing = f"ECSMH_IT_MISSING_{uuid.uuid4().hex[:6].upper()}"
    handler = _handler(
        es_server,
        unique_name,
        es_additional_fields={"service": {"environment": "staging"}, "team": {"name": "payments"}},
        es_additional_fields_in_env={
            "deploy": {"color": var},
            "team": {"name": missing, "pager": missing},
        },
        flush_frequency_in_sec=60,
    )
    logger.addHandler(handler)
    monkeypatch.setenv(var, "blue")
    logger.info("first", extra=metric("first", 1))
    assert handler.flush(30)
    monkeypatch.setenv(var, "green")
    logger.info("second", extra=metric("second", 2))
    assert handler.flush(30)
    docs = {
        h["_source"]["metrics"]["name"]: h["_source"]
        for h in _search(es_client, f"{unique_name}-*")
    }
    assert docs["first"]["deploy"] == {"color": "blue"}
    assert docs["second"]["deploy"] == {"color": "green"}
    assert docs["first"]["team"] == {"name": "payments"}  # fallback; no "pager" at all
    assert docs["first"]["service"]["environment"] == "staging"
    assert docs["first"]["service"]["name"]  # merged into, not replaced


def test_original_api_readme_example_runs_unchanged_but_for_the_import(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """The seed README's example, with the server's host and port, against the real node."""
    import time
    from urllib.parse import urlsplit

    parts = urlsplit(es_server.url)
    # --- the README example, verbatim but for the import line and the host ---
    logger = ElasticECSMetricsLogger(
        hosts=[{"host": parts.hostname, "port": parts.port}],
        auth_type=ElasticECSMetricsLogger.AuthType.NO_AUTH,
        es_index_name=unique_name,
        use_ssl=False,
    )
    with logger.log_time_metric_timer("testTimer"):
        time.sleep(0.05)
    logger.flush()
    # --- end of the example ---
    logger.log_time_metric("explicit", now(), 1234)
    logger.flush()
    logger.close()
    docs = {
        h["_source"]["metrics"]["name"]: h["_source"]
        for h in _search(es_client, f"{unique_name}-*")
    }
    assert set(docs) == {"testTimer", "explicit"}
    assert docs["testTimer"]["metrics"]["duration"]["us"] >= 50_000
    assert docs["explicit"]["metrics"]["duration"]["us"] == 1234


def test_unreachable_node_fills_the_failure_folder_and_replay_indexes_it(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger, tmp_path: Path
) -> None:
    """Nothing listens on the port: documents go to the folder; replay() sends them to the node."""
    handler = ElasticECSHandler(
        hosts=["http://127.0.0.1:9"],
        es_index_name=unique_name,
        flush_failure_folder=str(tmp_path),
        max_retries=1,
        retry_backoff_initial=0.05,
        flush_frequency_in_sec=0.1,
    )
    logger.addHandler(handler)
    for i in range(25):
        logger.info("m", extra=metric("m", i))
    handler.flush(10)
    logger.removeHandler(handler)
    handler.close()
    segments = sorted(tmp_path.glob("segment-*.ndjson"))
    assert segments and all(":" not in p.name for p in segments)
    assert sum(len(read_items(p)) for p in segments) == 25 == handler.stats()["spooled"]

    result = replay(tmp_path, hosts=[es_server.url], es_index_name=unique_name)
    assert (result.indexed, result.left) == (25, 0)
    assert len(_search(es_client, f"{unique_name}-*")) == 25
    again = replay(tmp_path, hosts=[es_server.url], es_index_name=unique_name)
    assert again.indexed == 0 and again.segments == 0


def test_template_maps_every_field_the_handler_writes(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger
) -> None:
    """After a metric, a timer and a log event with an error, no field was mapped dynamically."""
    handler = _handler(es_server, unique_name, install_template=True, ship_log_records=True)
    logger.addHandler(handler)
    logger.info("m", extra=metric("gauge.one", 3.5, unit="ms", labels={"a": "b", "n": 3}))
    with timed("timer.one", logger=logger):
        pass
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    assert handler.flush(30)
    hits = _search(es_client, f"{unique_name}-*")
    assert len(hits) == 3
    index = hits[0]["_index"]
    actual = es_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    template = handler.templates()["component"]["template"]["mappings"]["properties"]

    def leaves(props: dict[str, Any], prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        for key, spec in props.items():
            path = f"{prefix}{key}"
            if "properties" in spec:
                out.update(leaves(spec["properties"], path + "."))
            else:
                out[path] = spec.get("type", "object")
        return out

    actual_leaves = leaves(actual)
    template_leaves = leaves(template)
    unmapped = {
        path: kind
        for path, kind in actual_leaves.items()
        if template_leaves.get(path) != kind and not path.startswith("labels.")
    }
    assert unmapped == {}
    # labels are keyword through the template's dynamic template, whatever the value
    assert actual_leaves["labels.a"] == "keyword" and actual_leaves["labels.n"] == "keyword"


def test_data_stream_target_receives_create_ops(
    es_server: Any, es_client: Any, logger: logging.Logger
) -> None:
    """With data_stream set and its template installed, metrics land in the data stream."""
    stream = f"metrics-ecsmh-{uuid.uuid4().hex[:8]}"
    handler = ElasticECSHandler(
        hosts=[es_server.url], data_stream=stream, install_template=True, flush_frequency_in_sec=0.2
    )
    logger.addHandler(handler)
    logger.info("m", extra=metric("ds.metric", 1))
    assert handler.flush(30)
    assert handler.stats()["shipped"] == 1
    hits = _search(es_client, stream)
    assert [h["_source"]["metrics"]["name"] for h in hits] == ["ds.metric"]
    assert hits[0]["_index"].startswith(".ds-")


def test_a_data_stream_named_the_elastic_way_carries_its_fields_and_trace_ids_are_searchable(
    es_server: Any, es_client: Any, logger: logging.Logger
) -> None:
    """metrics-<dataset>-<namespace>: data_stream.* and event.dataset on every document, mapped
    as keywords by the installed template, and an OpenTelemetry span's ids found by a term query."""
    from opentelemetry.sdk.trace import TracerProvider

    dataset = f"ecsmh.{uuid.uuid4().hex[:8]}"
    stream = f"metrics-{dataset}-test"
    handler = ElasticECSHandler(
        hosts=[es_server.url], data_stream=stream, install_template=True, flush_frequency_in_sec=0.2
    )
    logger.addHandler(handler)
    tracer = TracerProvider().get_tracer("tests")
    with tracer.start_as_current_span("request") as span:
        logger.info("m", extra=metric("ds.traced", 1))
    logger.info("m", extra=metric("ds.untraced", 2))
    assert handler.flush(30)
    trace_id = f"{span.get_span_context().trace_id:032x}"
    hits = _search(es_client, stream)
    assert sorted(h["_source"]["metrics"]["name"] for h in hits) == ["ds.traced", "ds.untraced"]
    for hit in hits:
        source = hit["_source"]
        assert source["data_stream"] == {"type": "metrics", "dataset": dataset, "namespace": "test"}
        assert source["event"]["dataset"] == dataset
    found = _search(es_client, stream, query={"term": {"trace.id": trace_id}})
    assert [h["_source"]["metrics"]["name"] for h in found] == ["ds.traced"]
    mapping = es_client.indices.get_mapping(index=stream)
    (index_mapping,) = mapping.body.values() if hasattr(mapping, "body") else mapping.values()
    props = index_mapping["mappings"]["properties"]
    assert props["data_stream"]["properties"]["dataset"]["type"] == "keyword"
    assert props["trace"]["properties"]["id"]["type"] == "keyword"
    assert props["span"]["properties"]["id"]["type"] == "keyword"


def test_secured_node_with_basic_auth_and_api_key_over_verified_tls(
    secured_es: Any, logger: logging.Logger
) -> None:
    """BASIC_AUTH and API_KEY both deliver over TLS verified against the suite's CA."""
    from elasticsearch import Elasticsearch

    prefix = f"secure-{uuid.uuid4().hex[:8]}"
    basic = ElasticECSHandler(
        hosts=[secured_es.url],
        es_index_name=prefix,
        auth_type="BASIC_AUTH",
        auth_details=(secured_es.username, secured_es.password),
        ca_certs=secured_es.ca_file,
        flush_frequency_in_sec=0.2,
    )
    keyed = ElasticECSHandler(
        hosts=[secured_es.url],
        es_index_name=prefix,
        auth_type="api_key",
        auth_details=secured_es.api_key(),
        ca_certs=secured_es.ca_file,
        flush_frequency_in_sec=0.2,
    )
    for handler, name in ((basic, "basic"), (keyed, "apikey")):
        logger.addHandler(handler)
        logger.info("m", extra=metric(name, 1))
        assert handler.flush(30)
        logger.removeHandler(handler)
        assert handler.stats()["shipped"] == 1, handler.stats()
        handler.close()
    client = Elasticsearch(
        secured_es.url,
        basic_auth=(secured_es.username, secured_es.password),
        ca_certs=secured_es.ca_file,
    )
    client.indices.refresh(index=f"{prefix}-*")
    names = sorted(
        h["_source"]["metrics"]["name"] for h in client.search(index=f"{prefix}-*")["hits"]["hits"]
    )
    client.close()
    assert names == ["apikey", "basic"]


def test_wrong_password_keeps_metrics_in_the_failure_folder(
    secured_es: Any, logger: logging.Logger, tmp_path: Path
) -> None:
    """A 401 is not the documents' fault: they are spooled, not dead-lettered."""
    handler = ElasticECSHandler(
        hosts=[secured_es.url],
        es_index_name=f"secure-{uuid.uuid4().hex[:8]}",
        auth_type="basic_auth",
        auth_details=(secured_es.username, "wrong-password"),
        ca_certs=secured_es.ca_file,
        flush_failure_folder=str(tmp_path),
        flush_frequency_in_sec=0.2,
    )
    logger.addHandler(handler)
    logger.info("m", extra=metric("m", 1))
    handler.flush(10)
    stats = handler.stats()
    assert (stats["spooled"], stats["dead_lettered"], stats["shipped"]) == (1, 0, 0)


def test_opensearch_backend_ships_to_opensearch(
    os_server: Any, os_client: Any, logger: logging.Logger
) -> None:
    """backend='opensearch' goes through opensearch-py; documents and index names are the same."""
    prefix = f"os-{uuid.uuid4().hex[:8]}"
    handler = ElasticECSHandler(
        hosts=[os_server.url],
        backend="opensearch",
        es_index_name=prefix,
        install_template=True,
        flush_frequency_in_sec=0.2,
    )
    logger.addHandler(handler)
    logger.info("m", extra=metric("os.metric", 4.5, unit="ms"))
    assert handler.flush(30)
    os_client.indices.refresh(index=f"{prefix}-*")
    hits = os_client.search(index=f"{prefix}-*")["hits"]["hits"]
    assert [h["_source"]["metrics"]["value"] for h in hits] == [4.5]
    mapping = os_client.indices.get_mapping(index=hits[0]["_index"])[hits[0]["_index"]]["mappings"]
    assert mapping["properties"]["metrics"]["properties"]["value"]["type"] == "double"


def test_a_hostile_failure_folder_never_stops_live_delivery(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger, tmp_path: Path
) -> None:
    """A directory and a FIFO under segment names, and a segment the handler never writes (an
    unknown parameter): live metrics still ship, the good segment is replayed, the planted one
    is quarantined with its reason, and the command line's replay neither hangs nor crashes."""
    import os
    import time

    import orjson

    def name(n: int) -> str:
        return f"segment-20000101T000000.000000Z-1-{n:06d}.ndjson"

    (tmp_path / name(1)).mkdir()
    os.mkfifo(tmp_path / name(2))
    bad = b'{"create":{"_index":"%s-bad","no_such_parameter":1}}\n{"n":1}\n' % unique_name.encode()
    (tmp_path / name(3)).write_bytes(bad)
    good = b"".join(
        orjson.dumps({"create": {"_index": f"{unique_name}-2026.01.01", "_id": f"{'A' * 12}{i:x}"}})
        + b"\n"
        + orjson.dumps({"@timestamp": "2026-01-01T00:00:00Z", "n": i})
        + b"\n"
        for i in range(3)
    )
    (tmp_path / name(4)).write_bytes(good)

    handler = _handler(
        es_server, unique_name, flush_failure_folder=str(tmp_path), flush_frequency_in_sec=0.1
    )
    logger.addHandler(handler)
    for i in range(50):
        logger.info("m", extra=metric("m", i))
    assert handler.flush(20)
    deadline = time.monotonic() + 30
    while handler.stats()["replayed"] < 3 and time.monotonic() < deadline:
        handler.flush(1)
    stats = handler.stats()
    assert (stats["shipped"], stats["replayed"]) == (50, 3), stats
    (quarantined,) = tmp_path.glob("quarantined-*.ndjson")
    assert quarantined.read_bytes() == bad
    reason = quarantined.with_name(quarantined.name + ".reason").read_text()
    assert "no_such_parameter" in reason and stats["untrusted"] == 1
    assert (tmp_path / name(1)).is_dir() and (tmp_path / name(2)).exists()
    assert not (tmp_path / name(3)).exists() and not (tmp_path / name(4)).exists()
    es_client.indices.refresh(index=f"{unique_name}-*")
    assert len(_search(es_client, f"{unique_name}-2026.01.01")) == 3

    result = replay(tmp_path, hosts=[es_server.url], es_index_name=unique_name)
    assert result.left == 0 and any("not a regular file" in e for e in result.errors)
