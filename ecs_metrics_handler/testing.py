"""Helpers for testing code that logs metrics, without a cluster.

:class:`FakeCluster` stands in for an ``elasticsearch.Elasticsearch`` client: pass it as
``client=`` to :class:`~ecs_metrics_handler.ElasticECSHandler` and read back the documents
the handler would have indexed::

    from ecs_metrics_handler import ElasticECSHandler, metric
    from ecs_metrics_handler.testing import FakeCluster

    def test_checkout_reports_its_duration():
        cluster = FakeCluster()
        handler = ElasticECSHandler(client=cluster, es_index_name="shop")
        log = logging.getLogger("shop")
        log.addHandler(handler)
        checkout()
        handler.flush()
        assert [d["metrics"]["name"] for d in cluster.documents()] == ["checkout"]

It honours ``create`` semantics (a second ``create`` of an id answers ``409``), can be made
unreachable (``down = True``), slow (``delay``) or to answer chosen item statuses
(``item_statuses``), so that delivery behaviour can be exercised in fast tests. It does not
pretend to be Elasticsearch in anything else: mappings, templates and refresh belong to tests
against a real node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["FakeCluster"]


@dataclass(slots=True)
class _Response:
    body: dict[str, Any]


class FakeCluster:
    """An in-memory stand-in for a client's ``bulk()``; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.indices: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests = 0
        #: raise a connection error for every request while true
        self.down = False
        #: seconds each request takes before answering
        self.delay = 0.0
        #: called with the list of (index, id, doc) of a request; may return a status per item
        self.item_statuses: (
            Callable[[list[tuple[str, str, dict[str, Any]]]], list[int] | None] | None
        ) = None

    def bulk(self, *, operations: bytes, filter_path: str | None = None, **_: Any) -> _Response:
        """Index the ``create`` operations of an NDJSON body; answers like ``_bulk``."""
        from elastic_transport import ConnectionError as TransportConnectionError

        if self.delay:
            time.sleep(self.delay)
        if self.down:
            raise TransportConnectionError("connection refused (FakeCluster.down)")
        lines = [line for line in bytes(operations).split(b"\n") if line]
        ops = []
        for action_line, source_line in zip(lines[0::2], lines[1::2], strict=True):
            meta = orjson.loads(action_line)["create"]
            ops.append((meta["_index"], meta["_id"], orjson.loads(source_line)))
        forced = self.item_statuses(ops) if self.item_statuses else None
        items = []
        errors = False
        with self._lock:
            self.requests += 1
            for position, (index, doc_id, doc) in enumerate(ops):
                status = forced[position] if forced else 201
                if status == 201 and doc_id in self.indices.get(index, {}):
                    status = 409
                if status == 201:
                    self.indices.setdefault(index, {})[doc_id] = doc
                item: dict[str, Any] = {"status": status}
                if status >= 300:
                    errors = True
                    item["error"] = {"type": "fake_error", "reason": f"status {status}"}
                items.append({"create": item})
        return _Response({"errors": errors, "items": items})

    def documents(self, index: str | None = None) -> list[dict[str, Any]]:
        """The indexed documents (of ``index``, or of all indices), in arrival order."""
        with self._lock:
            if index is not None:
                return list(self.indices.get(index, {}).values())
            return [doc for docs in self.indices.values() for doc in docs.values()]

    def ids(self) -> Iterator[str]:
        """Every indexed document id."""
        with self._lock:
            return iter([doc_id for docs in self.indices.values() for doc_id in docs])

    def close(self) -> None:
        """Nothing to release."""
