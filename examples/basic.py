"""Attach ElasticECSHandler to a logger, log a few metrics, flush.

Run::

    ELASTICSEARCH_URL=http://localhost:9200 python examples/basic.py

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster and
``ECSMH_EXAMPLE_INDEX`` (default ``examples-metrics``) the index prefix: the documents land in
``<prefix>-YYYY.MM.DD`` (UTC date of each event). Exits 0 only when all of them were indexed.
"""

from __future__ import annotations

import logging
import os

from ecs_metrics_handler import ElasticECSHandler, metric

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")


def main() -> int:
    handler = ElasticECSHandler(hosts=[URL], es_index_name=PREFIX, service_name="shop")
    log = logging.getLogger("shop")
    log.setLevel(logging.INFO)
    log.addHandler(handler)

    # One record per metric; metric() builds the `extra` mapping, so no key is misspelt.
    log.info("db query", extra=metric("db.query", 12.5, unit="ms", labels={"table": "orders"}))
    log.info("queue depth", extra=metric("queue.depth", 17, unit="jobs", type="gauge"))
    log.info("orders placed", extra=metric("orders.placed", 2, type="counter"))
    # The raw form works too: the payload is a plain dict under extra["metric"].
    log.info("cache size", extra={"metric": {"name": "cache.size", "value": 4096, "unit": "bytes"}})
    # Records without a metric payload are not shipped (ship_log_records=False by default).
    log.info("a plain log line, not a metric")

    delivered = handler.flush(timeout=30)  # waits until the cluster acknowledged everything
    stats = handler.stats()
    log.removeHandler(handler)
    handler.close()

    print(f"basic: {stats['shipped']} of {stats['emitted']} metrics indexed into {PREFIX}-*")
    print(f"basic: counters {stats}")
    return 0 if delivered and stats["shipped"] == 4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
