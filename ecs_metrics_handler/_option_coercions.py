"""Coercions particular to one handler option, and its rules against the options it depends on.

Each function is the ``coerce`` of one :class:`~ecs_metrics_handler._config.HandlerOptions`
field's declaration: it takes the option's name, the given value and then the coerced values of
the options its declaration names in ``after``, in that order, and returns the option's value or
raises :class:`~ecs_metrics_handler.exceptions.ConfigurationError` naming the option, what it
accepts and what was given. The generic coercions live in ``_coerce.py``; the hosts, credential
and TLS options have modules of their own (``_hosts.py``, ``_credentials.py``, ``_tls.py``).

Pure functions: no I/O, no global state, safe to call from any thread. The one import they may
trigger is ``ddsketch``'s, through ``require_ddsketch``, for ``aggregation_interval``.
"""

from __future__ import annotations

from typing import Final

from ._coerce import coerce_enum, coerce_float, coerce_int, coerce_str
from ._enums import Backend, IndexMode
from ._index_names import DEFAULT_INDEX_NAME, validate_data_stream_name
from .exceptions import ConfigurationError

__all__ = [
    "coerce_aggregation_interval",
    "coerce_data_stream",
    "coerce_index_mode",
    "coerce_max_queue_records",
    "coerce_metric_key",
    "coerce_retry_backoff_max",
]

#: Attributes of :class:`logging.LogRecord`; ``extra`` may not overwrite them.
_RESERVED_RECORD_KEYS: Final = frozenset(
    {
        "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName",
        "levelname", "levelno", "lineno", "message", "module", "msecs", "msg", "name",
        "pathname", "process", "processName", "relativeCreated", "stack_info", "taskName",
        "thread", "threadName",
    }
)  # fmt: skip


def coerce_max_queue_records(option: str, value: object, buffer_size: int) -> int:
    """An integer >= 1 and >= ``buffer_size``."""
    records = coerce_int(option, value, minimum=1)
    if records < buffer_size:
        raise ConfigurationError(option, f"an integer >= buffer_size ({buffer_size})", records)
    return records


def coerce_retry_backoff_max(option: str, value: object, backoff_initial: float) -> float:
    """Seconds, a number >= 0 and >= ``retry_backoff_initial``."""
    backoff_max = coerce_float(option, value, minimum=0)
    if backoff_max < backoff_initial:
        raise ConfigurationError(
            option, f"a number >= retry_backoff_initial ({backoff_initial})", value
        )
    return backoff_max


def coerce_data_stream(option: str, value: object, es_index_name: str) -> str | None:
    """None, or a valid data stream name while ``es_index_name`` keeps its default."""
    if value is None:
        return None
    name = validate_data_stream_name(option, value)
    if es_index_name != DEFAULT_INDEX_NAME:
        raise ConfigurationError(
            option,
            "not to be combined with es_index_name (a data stream replaces dated indices)",
            name,
        )
    return name


def coerce_aggregation_interval(option: str, value: object) -> float | None:
    """None, or seconds > 0; a number also requires ``ddsketch`` to be installed."""
    if value is None:
        return None
    interval = coerce_float(option, value, minimum=0, exclusive=True)
    from ._sketch import require_ddsketch  # only a handler that aggregates needs ddsketch

    require_ddsketch(option)
    return interval


def coerce_index_mode(
    option: str, value: object, aggregation_interval: float | None, backend: Backend
) -> IndexMode:
    """An :class:`IndexMode`; ``time_series`` needs ``aggregation_interval`` and Elasticsearch."""
    mode = coerce_enum(option, value, enum_cls=IndexMode)
    if mode is IndexMode.TIME_SERIES:
        if backend is Backend.OPENSEARCH:
            raise ConfigurationError(
                option, "'standard' with backend opensearch (it has no time-series mode)", value
            )
        if aggregation_interval is None:
            raise ConfigurationError(
                option,
                "'standard' unless aggregation_interval is set (one document per metric would "
                "collide on the _id a time-series index derives from dimensions and time)",
                value,
            )
    return mode


def coerce_metric_key(option: str, value: object) -> str:
    """A non-blank string that is not the name of a :class:`logging.LogRecord` attribute."""
    key = coerce_str(option, value)
    if key in _RESERVED_RECORD_KEYS:
        raise ConfigurationError(option, "a key that is not a LogRecord attribute", key)
    return key
