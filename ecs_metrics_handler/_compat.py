"""The original ``ElasticECSMetricsLogger`` API, on top of :class:`ElasticECSHandler`.

Code written for the original library runs unchanged but for its import line::

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
local dates); durations are measured with a monotonic clock and recorded even when the
block raises; nothing is lost at exit (``logging.shutdown`` flushes the handler), so the
destructor no longer flushes.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ._config import AuthType, IndexNameFrequency
from ._handler import ElasticECSHandler
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
    that does not propagate. All options of the handler may be passed as extra keywords.
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
        self._logger = logging.getLogger(f"ecs_metrics_handler.metrics.compat.{next(_instances)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self.handler)
        self._metric_key = self.handler.options.metric_key

    def log_time_metric(
        self, metric_name: str, start_datetime: datetime.datetime, time_us: float
    ) -> None:
        """Log a time metric that started at ``start_datetime`` (aware) and took ``time_us`` µs.

        Raises :class:`NaiveDatetimeError` for a naive datetime, like the original.
        """
        if start_datetime.tzinfo is None or start_datetime.tzinfo.utcoffset(start_datetime) is None:
            raise NaiveDatetimeError(f'"{start_datetime}" is not timezone aware.')
        start = start_datetime.timestamp()
        duration_ns = max(0, round(time_us * 1000))
        self._log(metric_name, start, duration_ns, "success")

    @contextlib.contextmanager
    def log_time_metric_timer(self, metric_name: str) -> Iterator[None]:
        """A context manager that logs how long its block took as the time metric ``metric_name``.

        Measured with a monotonic clock; recorded even when the block raises (with outcome
        ``failure``), and the exception propagates.
        """
        start = time.time()
        begin = time.perf_counter_ns()
        outcome = "failure"
        try:
            yield
            outcome = "success"
        finally:
            self._log(metric_name, start, max(0, time.perf_counter_ns() - begin), outcome)

    def _log(self, name: str, start: float, duration_ns: int, outcome: str) -> None:
        payload = {
            "name": name,
            "type": "timer",
            "value": duration_ns / 1e6,
            "unit": "ms",
            "duration_ns": duration_ns,
            "start": start,
            "end": start + duration_ns / 1e9,
            "outcome": outcome,
        }
        record = self._logger.makeRecord(
            self._logger.name,
            logging.INFO,
            "(compat)",
            0,
            name,
            (),
            None,
            extra={self._metric_key: payload},
        )
        # The original stamps the document with the start of the measure.
        record.created = start
        record.msecs = (start - int(start)) * 1000
        self._logger.handle(record)

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
