"""The documents the floors ship: the ones ``ElasticECSHandler`` builds for the workload.

The floors (orjson + urllib3, ``elasticsearch.helpers.bulk``) get the *same*
documents as the handler ships. They are built before the measurement starts,
with the package's own document builder when it is importable (so the bytes on
the wire match), else from a literal of the documented document shape.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from typing import Any

from _common import MESSAGE, METRIC_NAME

Doc = tuple[str, str, dict[str, Any]]  # (index, _id, source)


def _records(n: int) -> list[logging.LogRecord]:
    logger = logging.getLogger("bench.docs")
    out = []
    for i in range(n):
        payload = {"name": METRIC_NAME, "value": i % 1000 * 0.5, "unit": "ms"}
        rec = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            1,
            MESSAGE,
            (),
            None,
            "emit_metrics",
            {"metric": payload},
        )
        out.append(rec)
    return out


def _with_package(prefix: str, n: int) -> list[Doc] | None:
    try:
        from ecs_metrics_handler._config import HandlerOptions
        from ecs_metrics_handler._document import DocumentBuilder
        from ecs_metrics_handler._index import IndexNamer
    except ImportError:
        return None
    options = HandlerOptions.from_kwargs(es_index_name=prefix)
    builder = DocumentBuilder(options)
    namer = IndexNamer(prefix, options.index_name_frequency, options.index_name_timezone)
    docs = []
    for rec in _records(n):
        doc = builder.build(rec, rec.getMessage(), rec.metric)  # type: ignore[attr-defined]
        docs.append((namer(rec.created), uuid.uuid4().hex, doc))
    return docs


def _literal(prefix: str, n: int) -> list[Doc]:
    host = socket.gethostname()
    pid = os.getpid()
    agent = {
        "name": "ecs-metrics-handler",
        "type": "ecs-metrics-handler",
        "version": "0.1.0",
        "ephemeral_id": uuid.uuid4().hex,
    }
    docs = []
    for rec in _records(n):
        t = rec.created
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
        payload = rec.metric  # type: ignore[attr-defined]
        doc = {
            "@timestamp": stamp,
            "message": rec.getMessage(),
            "ecs": {"version": "9.4.0"},
            "event": {"kind": "metric", "dataset": "bench.metrics"},
            "metrics": {
                "name": payload["name"],
                "value": payload["value"],
                "unit": payload["unit"],
                "type": "gauge",
            },
            "log": {
                "level": "info",
                "logger": rec.name,
                "origin": {
                    "file": {"name": rec.filename, "line": rec.lineno},
                    "function": rec.funcName,
                },
            },
            "service": {"name": "bench"},
            "host": {"hostname": host, "name": host},
            "process": {
                "pid": pid,
                "name": "python",
                "thread": {"id": rec.thread, "name": rec.threadName},
            },
            "agent": agent,
        }
        index = f"{prefix}-" + time.strftime("%Y.%m.%d", time.gmtime(t))
        docs.append((index, uuid.uuid4().hex, doc))
    return docs


def build_documents(prefix: str, n: int) -> tuple[list[Doc], str]:
    """``n`` documents for indices ``prefix-*`` and where they came from."""
    docs = _with_package(prefix, n)
    if docs is not None:
        return docs, "ecs_metrics_handler DocumentBuilder"
    return _literal(prefix, n), "documented literal (package builder not importable)"


if __name__ == "__main__":  # a look at one document
    import json

    d, how = build_documents("bench-look", 1)
    print(how, file=sys.stderr)
    print(json.dumps(d[0], indent=1, default=str))
