"""The metric payload that users put in a record's ``extra``, and its validation.

A payload is a plain mapping under ``extra["metric"]`` (the key is the handler's ``metric_key``
option)::

    log.info("db query", extra={"metric": {"name": "db.query", "value": 12.5, "unit": "ms"}})
    log.info("db query", extra=metric("db.query", 12.5, unit="ms", labels={"table": "users"}))

Keys (all optional but ``name``):

``name``
    non-empty string.
``value``
    int or float, finite; a bool is refused. Other real numbers (``Decimal``, ``Fraction``) become
    floats; ints outside the signed 64-bit range become floats too.
``unit``
    string, e.g. ``"ms"``, ``"bytes"``.
``type``
    one of :class:`MetricType`'s values, any case; ``"timer"`` when ``duration_ns`` is given,
    else ``"gauge"``.
``labels``
    mapping of flat key/value pairs. Keys become strings with ``.`` replaced by ``_`` (ECS
    labels are flat); str, int, float and bool values are kept; ``None`` values are dropped;
    everything else (and non-finite floats, ints beyond 64 bits) becomes ``str(value)``.
``duration_ns``
    timers: int nanoseconds; negative values are clamped to 0 (and huge ones to 2**63 - 1,
    the largest ``long``); fractions are truncated.
``start``, ``end``
    timers: float epoch seconds of the wall clock.
``outcome``
    timers: ``"success"``, ``"failure"`` or ``"unknown"``.
``error_type``
    the exception type name of a failed timed block.

Unknown keys are ignored. Everything here is pure and thread-safe. The helpers that the
application's threads call, :func:`~._metric_extra.metric` and
:func:`~._metric_extra.exception_type_name`, live in :mod:`._metric_extra`: this module is
compiled in the optional compiled build (``setup.py``), whose functions check their arguments'
annotated types at run time, and what a logging call accepts must not depend on the build.
"""

from __future__ import annotations

import decimal
import enum
import math
import numbers
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from .exceptions import InvalidMetricError

__all__ = [
    "METRIC_KEY",
    "OUTCOMES",
    "LabelValue",
    "MetricType",
    "normalize_labels",
    "normalize_metric_fields",
]

#: The default ``extra`` key of a metric payload.
METRIC_KEY: Final = "metric"
#: The ECS ``event.outcome`` values.
OUTCOMES: Final = frozenset({"success", "failure", "unknown"})

LabelValue: TypeAlias = "str | int | float | bool"

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


class MetricType(enum.Enum):
    """The kind of a metric; written to ``metrics.type``."""

    GAUGE = "gauge"
    COUNTER = "counter"
    TIMER = "timer"
    HISTOGRAM = "histogram"


_TYPES_BY_TEXT: Final = {member.value: member for member in MetricType}


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"


def normalize_labels(labels: Mapping[Any, Any]) -> dict[str, str | int | float | bool]:
    """Flat ECS labels from any mapping, by the conversions in the module documentation."""
    result: dict[str, str | int | float | bool] = {}
    for key, value in labels.items():
        name = key if type(key) is str else _safe_str(key)
        if "." in name:
            name = name.replace(".", "_")
        kind = type(value)
        if kind is str or kind is bool:
            result[name] = value
        elif kind is int:
            result[name] = value if _INT64_MIN <= value <= _INT64_MAX else str(value)
        elif kind is float:
            result[name] = value if math.isfinite(value) else str(value)
        elif value is None:
            continue
        else:
            result[name] = _safe_str(value)
    return result


def _number(field: str, value: object, payload: object) -> float | int:
    kind = type(value)
    number: float | int
    if kind is int or kind is float:
        number = value  # type: ignore[assignment]
    elif isinstance(value, bool) or not isinstance(value, (numbers.Real, decimal.Decimal)):
        raise InvalidMetricError(
            f"metric {field} must be a number (int or float), got {type(value).__name__} {value!r}",
            payload,
        )
    elif isinstance(value, numbers.Integral):
        number = int(value)
    else:
        try:
            number = float(value)
        except (ValueError, OverflowError):  # Decimal('sNaN'), a Fraction beyond float range
            number = math.nan
    if type(number) is int:
        if _INT64_MIN <= number <= _INT64_MAX:
            return number
        try:
            number = float(number)
        except OverflowError:
            number = math.inf
    if not math.isfinite(number):
        raise InvalidMetricError(f"metric {field} must be a finite number, got {value!r}", payload)
    return number


def _optional_str(field: str, value: object, payload: object) -> str | None:
    if value is None or type(value) is str:
        return value
    raise InvalidMetricError(
        f"metric {field} must be a string, got {type(value).__name__} {value!r}", payload
    )


_Fields: TypeAlias = tuple[
    str,
    "float | int | None",
    "str | None",
    MetricType,
    "dict[str, str | int | float | bool]",
    "int | None",
    "float | None",
    "float | None",
    "str | None",
    "str | None",
]


def normalize_metric_fields(payload: object) -> _Fields:
    """Validate a payload; return its fields as a tuple (the document builder's hot path).

    The tuple: name, value, unit, type, labels, duration_ns, start, end, outcome, error_type
    (the exception type name of a failed timed block, ECS ``error.type``). Raises
    :class:`~ecs_metrics_handler.exceptions.InvalidMetricError` (carrying the payload) when it
    is not a mapping, has no non-empty string ``name``, has a ``value`` that is not a finite
    number (bools refused), an unknown ``type``, a ``labels`` that is not a mapping, a
    non-numeric ``duration_ns``/``start``/``end`` or an unknown ``outcome``. A timer without
    ``value`` gets ``duration_ns / 1e6`` with unit ``"ms"``.
    """
    if type(payload) is not dict and not isinstance(payload, Mapping):
        raise InvalidMetricError(
            f"a metric payload must be a mapping, got {type(payload).__name__}", payload
        )
    get = payload.get
    name = get("name")
    if type(name) is not str or not name.strip():
        raise InvalidMetricError(f"a metric needs a non-empty string name, got {name!r}", payload)

    value = get("value")
    if value is not None and type(value) is not float:
        value = _number("value", value, payload)
    elif value is not None and not math.isfinite(value):
        raise InvalidMetricError(f"metric value must be a finite number, got {value!r}", payload)
    unit = get("unit")
    if unit is not None and type(unit) is not str:
        unit = _optional_str("unit", unit, payload)

    duration_ns = get("duration_ns")
    if duration_ns is not None and (
        type(duration_ns) is not int or not 0 <= duration_ns <= _INT64_MAX
    ):
        duration_ns = min(_INT64_MAX, max(0, int(_number("duration_ns", duration_ns, payload))))

    raw_type = get("type")
    metric_type: MetricType | None
    if raw_type is None:
        metric_type = MetricType.GAUGE if duration_ns is None else MetricType.TIMER
    elif type(raw_type) is str:
        metric_type = _TYPES_BY_TEXT.get(raw_type)
        if metric_type is None:
            metric_type = _TYPES_BY_TEXT.get(raw_type.strip().lower())
    elif isinstance(raw_type, MetricType):
        metric_type = raw_type
    else:
        metric_type = None
    if metric_type is None:
        accepted = ", ".join(_TYPES_BY_TEXT)
        raise InvalidMetricError(
            f"metric type must be one of {accepted}, got {raw_type!r}", payload
        )

    raw_labels = get("labels")
    labels: dict[str, str | int | float | bool]
    if not raw_labels:
        if raw_labels is not None and not isinstance(raw_labels, Mapping):
            raise InvalidMetricError(
                f"metric labels must be a mapping, got {type(raw_labels).__name__}", payload
            )
        labels = {}
    elif type(raw_labels) is dict or isinstance(raw_labels, Mapping):
        labels = normalize_labels(raw_labels)
    else:
        raise InvalidMetricError(
            f"metric labels must be a mapping, got {type(raw_labels).__name__}", payload
        )

    start = get("start")
    end = get("end")
    outcome = get("outcome")
    error_type = get("error_type")
    if start is not None and (type(start) is not float or not math.isfinite(start)):
        start = float(_number("start", start, payload))
    if end is not None and (type(end) is not float or not math.isfinite(end)):
        end = float(_number("end", end, payload))
    if outcome is not None and (type(outcome) is not str or outcome not in OUTCOMES):
        if type(outcome) is str:
            outcome = outcome.strip().lower()
        if type(outcome) is not str or outcome not in OUTCOMES:
            raise InvalidMetricError(
                f"metric outcome must be success, failure or unknown, got {outcome!r}", payload
            )
    if error_type is not None and type(error_type) is not str:
        error_type = _safe_str(error_type)

    if value is None and duration_ns is not None:
        value = duration_ns / 1e6
        unit = "ms"
    return (name, value, unit, metric_type, labels, duration_ns, start, end, outcome, error_type)
