"""structlog in front of the standard library: ``log.info("db query", metric={...})`` ships.

structlog's stdlib bridge hands each event to a ``logging.Logger``; the processor
``render_to_log_kwargs`` turns the event's keys into ``extra``, so a ``metric=`` key arrives as
the record's metric payload and the handler ships it like any other. ``timed()`` logs through the
standard library directly, so the same handler sees its timers too.

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX``
(default ``examples-metrics``) the index prefix. Ships 3 metrics. Exits 0 only when all of them
were indexed.
"""

from __future__ import annotations

import logging
import logging.config
import os

import structlog

from ecs_metrics_handler import ElasticECSHandler, timed

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")


def configure() -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "metrics": {
                    "class": "ecs_metrics_handler.ElasticECSHandler",
                    "hosts": [URL],
                    "es_index_name": PREFIX,
                    "service_name": "shop",
                },
            },
            "root": {"level": "INFO", "handlers": ["metrics"]},
        }
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.render_to_log_kwargs,  # event keys -> extra={...}
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


log = structlog.get_logger("shop")


@timed("checkout.total", labels={"channel": "web"})  # a timer, through the stdlib logger
def checkout(items: int) -> int:
    log.info("db query", metric={"name": "db.query", "value": 3.2, "unit": "ms"})
    return items * 2


def main() -> int:
    configure()
    checkout(3)
    log.info("queue depth", metric={"name": "queue.depth", "value": 17, "type": "gauge"})
    log.info("a structlog line without a metric is not shipped", user="ada")

    handler = next(h for h in logging.getLogger().handlers if isinstance(h, ElasticECSHandler))
    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    print(f"structlog_stdlib: {stats['shipped']} of {stats['emitted']} metrics indexed")
    logging.getLogger().removeHandler(handler)
    handler.close()
    return 0 if delivered and stats["shipped"] == 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
