"""Ship application metrics to Elasticsearch as ECS documents, through stdlib logging.

::

    import logging
    from ecs_metrics_handler import ElasticECSHandler, metric, timed

    log = logging.getLogger("app")
    log.addHandler(ElasticECSHandler(hosts=["http://localhost:9200"], es_index_name="app-metrics"))
    log.setLevel(logging.INFO)

    log.info("db query", extra=metric("db.query", 12.5, unit="ms"))

    @timed("checkout", logger=log)
    def checkout(): ...
"""

from __future__ import annotations

from importlib import metadata as _metadata
from importlib.machinery import EXTENSION_SUFFIXES as _EXTENSION_SUFFIXES

from . import _encoder, _metric
from ._config import AuthType, Backend, IndexNameFrequency, IndexTimezone
from ._document import ECS_VERSION, DocumentBuilder
from ._handler import ElasticECSHandler
from ._metric import MetricType
from ._metric_extra import metric
from ._replay import ReplayResult, replay
from ._timing import METRICS_LOGGER_NAME, timed
from .exceptions import (
    ConfigurationError,
    EcsMetricsHandlerError,
    InvalidMetricError,
    MissingDependencyError,
)
from .original_api import ElasticECSMetricsLogger, NaiveDatetimeError, now

try:
    __version__ = _metadata.version("ecs-metrics-handler")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: The modules of this installation that run compiled: the optional mypyc build of the
#: batcher's fast path (``ECS_METRICS_HANDLER_COMPILE=1``, see README); ``()`` when pure Python.
COMPILED_MODULES: tuple[str, ...] = tuple(
    module.__name__
    for module in (_encoder, _metric)
    if (module.__file__ or "").endswith(tuple(_EXTENSION_SUFFIXES))
)

__all__ = [
    "COMPILED_MODULES",
    "ECS_VERSION",
    "METRICS_LOGGER_NAME",
    "AuthType",
    "Backend",
    "ConfigurationError",
    "DocumentBuilder",
    "EcsMetricsHandlerError",
    "ElasticECSHandler",
    "ElasticECSMetricsLogger",
    "IndexNameFrequency",
    "IndexTimezone",
    "InvalidMetricError",
    "MetricType",
    "MissingDependencyError",
    "NaiveDatetimeError",
    "ReplayResult",
    "metric",
    "now",
    "replay",
    "timed",
]
