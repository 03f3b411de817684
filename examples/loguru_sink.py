"""loguru with the handler as a sink: ``logger.bind(metric={...}).info(...)`` ships.

``logger.add(handler)`` makes loguru build a ``logging.LogRecord`` per message and hand it to
the handler; loguru puts its bound and keyword extras under the record's ``extra`` attribute,
where the handler looks for the metric payload when the record has none of its own.
``format="{message}"`` keeps the document's ``message`` free of loguru's default decoration.
``timed()`` logs through the standard library, so the same handler is attached there too; it
is one handler, thread-safe, whichever side a record comes from. ``logger.remove()`` closes it.

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX``
(default ``examples-metrics``) the index prefix. Ships 4 metrics. Exits 0 only when all of them
were indexed.
"""

from __future__ import annotations

import logging
import os

from loguru import logger

from ecs_metrics_handler import METRICS_LOGGER_NAME, ElasticECSHandler, timed

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")


def main() -> int:
    handler = ElasticECSHandler(hosts=[URL], es_index_name=PREFIX, service_name="shop")
    sink_id = logger.add(handler, format="{message}", level="INFO")
    logging.getLogger(METRICS_LOGGER_NAME).addHandler(handler)  # for timed()
    logging.getLogger(METRICS_LOGGER_NAME).setLevel(logging.INFO)

    logger.bind(metric={"name": "db.query", "value": 3.2, "unit": "ms"}).info("db query")
    logger.info("queue depth", metric={"name": "queue.depth", "value": 17, "type": "gauge"})
    orders = logger.bind(metric={"name": "orders.placed", "value": 1, "type": "counter"})
    orders.info("order placed")
    logger.info("a loguru line without a metric is not shipped")
    with timed("invoice.render", labels={"format": "pdf"}):
        pass

    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    print(f"loguru_sink: {stats['shipped']} of {stats['emitted']} metrics indexed")
    logging.getLogger(METRICS_LOGGER_NAME).removeHandler(handler)
    logger.remove(sink_id)  # closes the handler
    return 0 if delivered and stats["shipped"] == 4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
