"""Against the real nodes: the ``histogram`` type detection, time-series time bounds, OpenSearch.

The integ-test-zip distributions have neither the x-pack analytics module (no ``histogram``
field type) nor the data-streams module (time-series backing indices with rolling time
bounds). So the histogram fallback is what can be proven here, and the time bounds are set
explicitly (``index.time_series.start_time``/``end_time``) to reproduce the real rejection.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from ecs_metrics_handler import ConfigurationError, ElasticECSHandler, metric
from ecs_metrics_handler._templates import load_templates

pytestmark = pytest.mark.slow

_DAY = 86_400.0


def _logger(name: str, handler: ElasticECSHandler) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    return log


def _timers(handler: ElasticECSHandler, name: str, n: int) -> None:
    log = _logger(name, handler)
    try:
        for i in range(n):
            log.info("t", extra=metric("latency", i % 40 + 1, unit="ms", type="timer"))
        assert handler.flush(60)
    finally:
        log.removeHandler(handler)


def _assert_fallback(
    handler: ElasticECSHandler, client: Any, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ecs_metrics_handler"):
        try:
            _timers(handler, f"hist.{prefix}", 500)
            stats = handler.stats()
        finally:
            handler.close()
    own = [r for r in caplog.records if r.name.startswith("ecs_metrics_handler")]
    assert [r for r in own if r.levelno >= logging.WARNING] == []
    assert any("no 'histogram' field type" in r.getMessage() for r in own)
    assert stats["dead_lettered"] == 0 and stats["shipped"] == stats["aggregates"] >= 1
    component = client.cluster.get_component_template(name=f"{prefix}-ecs-metrics")
    body = component["component_templates"][0]["component_template"]["template"]
    assert "histogram" not in body["mappings"]["properties"]["metrics"]["properties"]
    client.indices.refresh(index=f"{prefix}-*")
    hits = client.search(index=f"{prefix}-*", body={"size": 100})["hits"]["hits"]
    docs = [h["_source"]["metrics"] for h in hits]
    assert sum(d["count"] for d in docs) == 500
    assert all("histogram" not in d and d["sketch"]["positive"]["counts"] for d in docs)


def test_elasticsearch_without_the_histogram_type_gets_plain_fields_and_an_info_line(
    es_server: Any, es_client: Any, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=unique_name,
        install_template=True,
        aggregation_interval=3600,
    )
    _assert_fallback(handler, es_client, unique_name, caplog)


def test_opensearch_has_no_histogram_type_either(
    os_server: Any, os_client: Any, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler = ElasticECSHandler(
        hosts=[os_server.url],
        backend="opensearch",
        es_index_name=unique_name,
        install_template=True,
        aggregation_interval=3600,
    )
    _assert_fallback(handler, os_client, unique_name, caplog)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def test_an_interval_outside_the_time_series_window_is_dead_lettered_with_the_reason(
    es_server: Any, es_client: Any, unique_name: str, tmp_path: Path
) -> None:
    """The index accepts @timestamp in [now - 1 h, now + 1 h): an interval two days old is
    refused (400), dead-lettered once with the server's error type, never retried; the
    interval inside the window ships, and sending it again is a 409 duplicate."""
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=unique_name,
        aggregation_interval=60,
        index_mode="time_series",
        flush_failure_folder=str(tmp_path),
    )
    now = time.time()
    templates = handler.templates()
    settings = templates["index"]["template"]["settings"]["index"]
    settings["time_series"] = {"start_time": _iso(now - 3600), "end_time": _iso(now + 3600)}
    es_client.cluster.put_component_template(
        name=templates["component_name"], body=templates["component"]
    )
    es_client.indices.put_index_template(name=templates["index_name"], body=templates["index"])
    log = _logger(f"bounds.{unique_name}", handler)
    try:
        for created in (now - 2 * _DAY, now):
            record = log.makeRecord(
                log.name, logging.INFO, __file__, 0, "c", (), None,
                extra=metric("jobs", 3, type="counter"),
            )  # fmt: skip
            record.created = created
            log.handle(record)
        assert handler.flush(60)
        stats = handler.stats()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert stats["aggregates"] == 2 and stats["shipped"] == 1
    assert stats["dead_lettered"] == 1 and stats["retried"] == 0
    (letters,) = tmp_path.glob("dead-letter-*.ndjson")
    (letter,) = [orjson.loads(line) for line in letters.read_bytes().splitlines()]
    assert letter["status"] == 400
    assert letter["reason"].startswith(
        "refused by the cluster: HTTP 400 document_parsing_exception (illegal_argument_exception:"
        " time series index @timestamp value ["
    )
    assert "must be larger than" in letter["reason"]
    assert letter["error"]["caused_by"]["type"] == "illegal_argument_exception"
    assert letter["document"]["@timestamp"] < _iso(now - _DAY)
    es_client.indices.refresh(index=f"{unique_name}-*")
    found = es_client.search(index=f"{unique_name}-*", body={"size": 10})["hits"]["hits"]
    assert [h["_source"]["metrics"]["sum"] for h in found] == [3]
    index = found[0]["_index"]
    answer = es_client.bulk(operations=[{"create": {"_index": index}}, found[0]["_source"]])
    assert [i["create"]["status"] for i in answer["items"]] == [409]


def test_opensearch_refuses_time_series_settings_so_the_option_is_refused_up_front(
    os_server: Any, os_client: Any, unique_name: str
) -> None:
    """OpenSearch 2.19 has no index.mode: the time-series template would be refused
    (unknown setting), so index_mode="time_series" with backend opensearch is a
    ConfigurationError naming the option, before anything is sent."""
    bodies = load_templates(unique_name, data_stream=False, time_series=True)
    with pytest.raises(Exception) as refused:
        os_client.indices.create(
            index=f"{unique_name}-probe", body={"settings": bodies["index"]["template"]["settings"]}
        )
    assert getattr(refused.value, "status_code", None) == 400
    assert "unknown setting [index.mode]" in str(refused.value.info)  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="index_mode"):
        ElasticECSHandler(
            hosts=[os_server.url],
            backend="opensearch",
            es_index_name=unique_name,
            aggregation_interval=60,
            index_mode="time_series",
        )
