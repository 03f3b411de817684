"""Configure ElasticECSHandler with logging.config.dictConfig from examples/logging.yaml.

Needs PyYAML (``pip install pyyaml``). The YAML file refers to ``${ELASTICSEARCH_URL}`` (default
``http://localhost:9200``) and ``${ECSMH_EXAMPLE_INDEX}`` (default ``examples-metrics``); they
are expanded before parsing. Ordinary log lines go to the console only, metrics also to
Elasticsearch. Exits 0 only when every metric was indexed.
"""

from __future__ import annotations

import logging
import logging.config
import os
from pathlib import Path

import yaml

from ecs_metrics_handler import ElasticECSHandler, metric

CONFIG = Path(__file__).with_name("logging.yaml")


def main() -> int:
    os.environ.setdefault("ELASTICSEARCH_URL", "http://localhost:9200")
    os.environ.setdefault("ECSMH_EXAMPLE_INDEX", "examples-metrics")
    os.environ.setdefault("EXAMPLE_HOST_ID", "host-42")
    config = yaml.safe_load(os.path.expandvars(CONFIG.read_text(encoding="utf-8")))
    logging.config.dictConfig(config)

    log = logging.getLogger("inventory")
    log.info("stock checked")  # console only: no metric payload
    log.info("stock level", extra=metric("stock.level", 42, unit="items", labels={"sku": "A-1"}))
    log.info("stock level", extra=metric("stock.level", 7, unit="items", labels={"sku": "B-2"}))

    handler = next(h for h in log.handlers if isinstance(h, ElasticECSHandler))
    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    prefix = handler.options.es_index_name
    print(
        f"dictconfig_yaml: {stats['shipped']} metrics indexed into {prefix}-* at "
        f"{handler.options.hosts[0]}"
    )
    print(f"dictconfig_yaml: counters {stats}")
    return 0 if delivered and stats["shipped"] == 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
