"""The clients the handler builds pass a ready bulk body through without copying it."""

from __future__ import annotations

import orjson
import pytest

from ecs_metrics_handler import ElasticECSHandler
from ecs_metrics_handler._client_serializers import elasticsearch_serializers
from ecs_metrics_handler._shipper import ElasticsearchShipper, make_shipper

NDJSON_TYPES = (
    "application/x-ndjson",
    "application/vnd.elasticsearch+x-ndjson; compatible-with=9",
    "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
)


@pytest.mark.parametrize("mimetype", NDJSON_TYPES)
def test_a_ready_bulk_body_is_sent_as_the_same_object(mimetype: str) -> None:
    handler = ElasticECSHandler(hosts=["http://127.0.0.1:9"], es_index_name="t")
    shipper = make_shipper(handler.options)
    assert isinstance(shipper, ElasticsearchShipper)
    serializers = shipper._get().transport.serializers
    body = b'{"create":{"_index":"t"}}\n{"a":1}\n'
    assert serializers.dumps(body, mimetype=mimetype) is body
    handler.close()


def test_anything_else_is_serialised_as_ndjson_and_json_by_orjson() -> None:
    serializers = elasticsearch_serializers()
    ndjson = serializers["application/x-ndjson"]
    assert ndjson.dumps([{"a": 1}, {"b": [2]}]) == b'{"a":1}\n{"b":[2]}\n'
    assert ndjson.dumps(b'{"a":1}') == b'{"a":1}\n'  # a final newline is still added
    assert orjson.loads(serializers["application/json"].dumps({"x": 1.5})) == {"x": 1.5}
    assert type(serializers["application/json"]).__name__ == "OrjsonSerializer"
