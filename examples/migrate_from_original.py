"""The example of the original ElasticECSMetricsLogger README, with only the import changed.

Before::

    from elasticecsmetrics import ElasticECSMetricsLogger, now

After::

    from ecs_metrics_handler import ElasticECSMetricsLogger, now

So that it runs against any cluster, the literals of the original (``'localhost'``, ``9200``,
``"pythontest"``, ``False``) are read from ``ELASTICSEARCH_URL`` (default
``http://localhost:9200``) and ``ECSMH_EXAMPLE_INDEX`` (default ``examples-metrics``). Exits 0
only when both time metrics were indexed.
"""

from __future__ import annotations

import os
import time
import urllib.parse

from ecs_metrics_handler import ElasticECSMetricsLogger, now

_url = urllib.parse.urlsplit(os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200"))
HOST, PORT = _url.hostname or "localhost", _url.port or 9200
USE_SSL = _url.scheme == "https"
INDEX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")

# ---- the original README's example ---------------------------------------------------------
# fmt: off
logger = ElasticECSMetricsLogger(hosts=[{'host': HOST, 'port': PORT}],
                                 auth_type=ElasticECSMetricsLogger.AuthType.NO_AUTH,
                                 es_index_name=INDEX,
                                 use_ssl=USE_SSL)

with logger.log_time_metric_timer('testTimer'):
    time.sleep(1)

logger.flush()
# fmt: on
# -------------------------------------------------------------------------------------------

# log_time_metric() takes a timezone-aware start (now() gives one) and a duration in µs.
logger.log_time_metric("testMetric", now(), 1500)

delivered = logger.flush()
stats = logger.handler.stats()
logger.close()
print(
    f"migrate_from_original: {stats['shipped']} time metrics indexed into {INDEX}-* "
    f"at {_url.geturl()}"
)
print(f"migrate_from_original: counters {stats}")
raise SystemExit(0 if delivered and stats["shipped"] == 2 else 1)
