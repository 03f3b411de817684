"""Configure ElasticECSHandler with logging.config.dictConfig from a Python dict.

Every option is a plain keyword whose value JSON could carry: enums as case-insensitive strings,
numbers and booleans also as strings (what ini/YAML files produce). ``ELASTICSEARCH_URL``
(default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX`` (default
``examples-metrics``) the index prefix. Exits 0 only when every metric was indexed.
"""

from __future__ import annotations

import logging
import logging.config
import os

from ecs_metrics_handler import ElasticECSHandler, metric, timed

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "metrics": {
            "class": "ecs_metrics_handler.ElasticECSHandler",
            "level": "INFO",
            "hosts": [URL],
            "es_index_name": PREFIX,
            "index_name_frequency": "daily",
            "buffer_size": 500,
            "flush_frequency_in_sec": 0.5,
            "service_name": "billing",
            "service_environment": "example",
            "es_additional_fields": {"labels": {"team": "payments"}},
        },
    },
    "loggers": {
        # The application's own logger...
        "billing": {"handlers": ["metrics"], "level": "INFO", "propagate": False},
        # ...and the default logger of timed(), for timers created without logger=.
        "ecs_metrics_handler.metrics": {"handlers": ["metrics"], "level": "INFO"},
    },
}


def metrics_handler() -> ElasticECSHandler:
    """The handler dictConfig built (``logging.getHandlerByName`` does this on Python 3.12+)."""
    for handler in logging.getLogger("billing").handlers:
        if isinstance(handler, ElasticECSHandler):
            return handler
    raise LookupError("no ElasticECSHandler on the 'billing' logger")


def main() -> int:
    logging.config.dictConfig(LOGGING)
    log = logging.getLogger("billing")

    log.info("invoice total", extra=metric("invoice.total", 129.90, unit="EUR"))
    log.info("invoices sent", extra=metric("invoices.sent", 3, type="counter"))
    with timed("invoice.render"):  # no logger given: ecs_metrics_handler.metrics
        sum(range(10_000))

    handler = metrics_handler()
    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    print(f"dictconfig_dict: {stats['shipped']} metrics indexed into {PREFIX}-* at {URL}")
    print(f"dictconfig_dict: counters {stats}")
    # The handler stays configured; logging.shutdown() closes it at exit.
    return 0 if delivered and stats["shipped"] == 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
