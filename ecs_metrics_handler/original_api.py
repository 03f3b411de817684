"""The original ``ElasticECSMetricsLogger`` library's API, on top of :class:`ElasticECSHandler`.

Code written for the original library runs unchanged but for its import line (the package
exports this module's names; ``from ecs_metrics_handler.original_api import ...`` works too)::

    from ecs_metrics_handler import ElasticECSMetricsLogger, now

    logger = ElasticECSMetricsLogger(hosts=[{'host': 'localhost', 'port': 9200}],
                                     auth_type=ElasticECSMetricsLogger.AuthType.NO_AUTH,
                                     es_index_name="pythontest",
                                     use_ssl=False)
    with logger.log_time_metric_timer('testTimer'):
        time.sleep(1)
    logger.flush()

Differences a migrating user may notice, all deliberate: the index date comes from the
event's time (in UTC by default; pass ``index_name_timezone="local"`` for the original's
local dates); :meth:`ElasticECSMetricsLogger.log_time_metric_timer` is a
:class:`~ecs_metrics_handler.timed` timer, so durations are measured with a monotonic clock and a
block that raises is recorded exactly as ``timed()`` records it (outcome ``failure``, or
``unknown`` for a ``BaseException``, and ``error.type``) before the exception propagates;
nothing is lost at exit (``logging.shutdown`` flushes the handler), so the destructor no longer
flushes.
"""

from __future__ import annotations

import datetime
import itertools
import logging
from collections.abc import Mapping
from typing import Any

from ._config import AuthType, IndexNameFrequency
from ._handler import ElasticECSHandler
from ._timing import METRICS_LOGGER_NAME, log_timer_record, timed, timer_payload
from .exceptions import EcsMetricsHandlerError

__all__ = ["ElasticECSMetricsLogger", "NaiveDatetimeError", "now"]

_instances = itertools.count(1)


class NaiveDatetimeError(EcsMetricsHandlerError, ValueError):
    """A datetime without a timezone was given where Elasticsearch needs an aware one."""


def now() -> datetime.datetime:
    """The current time as a timezone-aware datetime in the local timezone."""
    return datetime.datetime.now(datetime.timezone.utc).astimezone()


class ElasticECSMetricsLogger:
    """The original library's metrics logger, with the same constructor and methods.

    Each instance owns an :class:`ElasticECSHandler` (``self.handler``) on a private logger
    (``ecs_metrics_handler.metrics.original_api.<n>``, level ``INFO``) that does not propagate.
    All options of the handler may be passed as extra keywords. Logging a metric does no
    network I/O in the calling thread: the handler's worker ships the documents (a full queue
    can make the call wait briefly; see :class:`ElasticECSHandler`).
    """

    AuthType = AuthType
    IndexNameFrequency = IndexNameFrequency

    def __init__(
        self,
        hosts: Any = ({"host": "localhost", "port": 9200},),
        auth_details: Any = ("", ""),
        aws_access_key: str | None = "",
        aws_secret_key: str | None = "",
        aws_region: str | None = "",
        auth_type: Any = AuthType.NO_AUTH,
        use_ssl: bool = False,
        verify_ssl: bool = True,
        buffer_size: int = 1000,
        flush_frequency_in_sec: float = 1,
        es_index_name: str = "python_metrics",
        index_name_frequency: Any = IndexNameFrequency.DAILY,
        es_additional_fields: Mapping[str, Any] | None = None,
        es_additional_fields_in_env: Mapping[str, Any] | None = None,
        flush_failure_folder: str | None = None,
        **handler_options: Any,
    ) -> None:
        self.handler = ElasticECSHandler(
            hosts=list(hosts) if isinstance(hosts, (list, tuple)) else hosts,
            auth_details=auth_details,
            aws_access_key=aws_access_key or None,
            aws_secret_key=aws_secret_key or None,
            aws_region=aws_region or None,
            auth_type=auth_type,
            use_ssl=use_ssl,
            verify_ssl=verify_ssl,
            buffer_size=buffer_size,
            flush_frequency_in_sec=flush_frequency_in_sec,
            es_index_name=es_index_name,
            index_name_frequency=index_name_frequency,
            es_additional_fields=es_additional_fields or {},
            es_additional_fields_in_env=es_additional_fields_in_env or {},
            flush_failure_folder=flush_failure_folder,
            **handler_options,
        )
        self._logger = logging.getLogger(f"{METRICS_LOGGER_NAME}.original_api.{next(_instances)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self.handler)
        self._metric_key = self.handler.options.metric_key

    def log_time_metric(
        self, metric_name: str, start_datetime: datetime.datetime, time_us: float
    ) -> None:
        """Log a time metric that started at ``start_datetime`` and took ``time_us`` µs.

        ``start_datetime`` must be timezone-aware (:func:`now` gives one); a naive datetime
        raises :class:`NaiveDatetimeError`, like the original. ``time_us`` is in microseconds
        (a float; rounded to the nanosecond, a negative value counts as 0). The document is
        the one a successful :class:`~ecs_metrics_handler.timed` block of that duration gives
        (``metrics.duration.us``, ``event.outcome: success``), stamped with
        ``start_datetime``.
        """
        if start_datetime.tzinfo is None or start_datetime.tzinfo.utcoffset(start_datetime) is None:
            raise NaiveDatetimeError(f'"{start_datetime}" is not timezone aware.')
        if not self._logger.isEnabledFor(logging.INFO):
            return
        start = start_datetime.timestamp()
        duration_ns = max(0, round(time_us * 1000))
        log_timer_record(
            self._logger,
            logging.INFO,
            metric_name,
            {self._metric_key: timer_payload(metric_name, duration_ns, start)},
            created=start,
            stacklevel=2,
        )

    def log_time_metric_timer(self, metric_name: str) -> timed:
        """A timer that logs how long its block took as the time metric ``metric_name``.

        It is a :class:`~ecs_metrics_handler.timed` on this logger stamped with the start of
        the measure (``timestamp="start"``, the original's ``@timestamp``): use it with
        ``with`` (or ``async with``, or as a decorator). The duration comes from a monotonic
        clock (:func:`time.perf_counter_ns`) and is recorded in ``metrics.duration.us`` as in
        the original; a block that raises is recorded exactly as ``timed()`` records it
        (outcome ``failure``, or ``unknown`` for a ``BaseException``, and ``error.type``),
        then the exception propagates unchanged.
        """
        return timed(
            metric_name, logger=self._logger, metric_key=self._metric_key, timestamp="start"
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Ship what is buffered; see :meth:`ElasticECSHandler.flush`."""
        return self.handler.flush(timeout)

    def close(self) -> None:
        """Flush and stop the handler (also done at interpreter exit)."""
        self._logger.removeHandler(self.handler)
        self.handler.close()

    def test_es_source(self) -> bool:
        """Whether the cluster answers (the original's connectivity check)."""
        return self.handler.check_connection()
