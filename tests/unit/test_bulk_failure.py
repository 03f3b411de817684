"""bulk_failure: both client libraries' exceptions map onto the same ShipError outcomes."""

from __future__ import annotations

import pytest

from ecs_metrics_handler._bulk_outcome import (
    bulk_failure,
    elasticsearch_errors,
    opensearch_errors,
)
from ecs_metrics_handler._config import HandlerOptions


def _es_api_error(status: int) -> Exception:
    import elasticsearch
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "localhost", 9200),
    )
    return elasticsearch.ApiError("refused", meta=meta, body={})


@pytest.mark.parametrize(
    ("status", "retryable"), [(401, False), (413, False), (429, True), (503, True)]
)
def test_elasticsearch_refusal_keeps_its_status(status: int, retryable: bool) -> None:
    failure = bulk_failure(_es_api_error(status), elasticsearch_errors(), HandlerOptions())
    assert failure.status == status
    assert failure.retryable is retryable
    assert failure.reason.startswith(f"bulk request refused: HTTP {status}: ")


@pytest.mark.parametrize(
    ("status", "retryable"), [(401, False), (413, False), (429, True), (503, True)]
)
def test_opensearch_refusal_keeps_its_status(status: int, retryable: bool) -> None:
    opensearchpy = pytest.importorskip("opensearchpy")
    error = opensearchpy.exceptions.TransportError(status, "refused", {})
    failure = bulk_failure(error, opensearch_errors(), HandlerOptions())
    assert failure.status == status
    assert failure.retryable is retryable
    assert failure.reason.startswith(f"bulk request refused: HTTP {status}: ")


def test_no_answer_is_unreachable_and_retryable_for_both_libraries() -> None:
    import elastic_transport

    opensearchpy = pytest.importorskip("opensearchpy")
    cases = [
        (elastic_transport.ConnectionTimeout("timed out"), elasticsearch_errors()),
        (opensearchpy.exceptions.ConnectionTimeout("N/A", "timed out", None), opensearch_errors()),
    ]
    for error, errors in cases:
        failure = bulk_failure(error, errors, HandlerOptions())
        assert failure.reason.startswith("cluster unreachable: ")
        assert failure.retryable is True
        assert failure.status is None


def test_anything_else_is_a_retryable_failure_named_by_its_type() -> None:
    failure = bulk_failure(ValueError("odd"), elasticsearch_errors(), HandlerOptions())
    assert failure.reason == "bulk request failed: ValueError: odd"
    assert failure.retryable is True
    assert failure.status is None
