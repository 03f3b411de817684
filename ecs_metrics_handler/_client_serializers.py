"""The serializers the handler gives the Elasticsearch clients it builds.

A bulk body is already NDJSON bytes when the sender hands it over. elasticsearch-py's
``NdjsonSerializer`` would still copy it twice (into a ``bytearray``, then back to ``bytes``)
while holding the GIL, which for a multi-megabyte body is a pause of the application's
threads and, in one profile, about 30 % of the sender's CPU. :class:`BulkBodySerializer`
passes such a body through untouched and serialises anything else as elasticsearch-py does.
Responses are read by orjson (``OrjsonSerializer``).

Only clients the handler builds get these; a ``client`` passed in keeps its own. Requires
elasticsearch-py (imported on the first call). Thread-safe.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["elasticsearch_serializers"]


@functools.cache
def _bulk_body_serializer_class() -> type:
    from elasticsearch.serializer import NdjsonSerializer

    class BulkBodySerializer(NdjsonSerializer):
        """NDJSON that passes a ready ``bytes`` body (ending in a newline) through as it is."""

        def dumps(self, data: Any) -> bytes:
            if type(data) is bytes and data.endswith(b"\n"):
                return data
            body: bytes = super().dumps(data)
            return body

    return BulkBodySerializer


def elasticsearch_serializers() -> dict[str, Any]:
    """``serializers=`` for ``Elasticsearch(...)``: orjson for JSON, pass-through bulk bodies.

    elasticsearch-py maps the compatibility-mode mimetypes (``application/vnd.elasticsearch+
    x-ndjson``) to these too. Without ``OrjsonSerializer`` (elasticsearch-py before 8.13)
    JSON keeps the client's default serializer.
    """
    serializers: dict[str, Any] = {"application/x-ndjson": _bulk_body_serializer_class()()}
    try:
        from elasticsearch.serializer import OrjsonSerializer
    except ImportError:  # pragma: no cover - elasticsearch-py < 8.13
        return serializers
    serializers["application/json"] = OrjsonSerializer()
    return serializers
