"""Trace correlation: the ids of the span active where a metric is logged.

:func:`current_trace` returns ``(trace.id, span.id, transaction.id)`` of the OpenTelemetry span
or the Elastic APM transaction and span active in the calling thread (or task), as ECS and
ecs-logging write them, so that a metric document joins its trace in Kibana. It imports
nothing: a tracing library that the application has not imported is not looked for, and the
cost without one is two dictionary lookups (with OpenTelemetry loaded but no span active, one
call to its ``context.get_current()``). Called on the application's thread, when the
record is captured (and by ``timed()`` when its block starts). Never raises.

OpenTelemetry: the current span's context when it is valid: ``trace.id`` (32 hex digits),
``span.id`` (16 hex digits). Elastic APM: the current transaction's ``trace.id`` and
``transaction.id``, and ``span.id`` when a span is active. OpenTelemetry is asked first.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["TraceIds", "current_trace", "trace_from_payload"]

#: ``(trace.id, span.id, transaction.id)``; the last two may be None
TraceIds = tuple[str, "str | None", "str | None"]


def current_trace() -> TraceIds | None:
    """The ids of the span active here, or None (no tracing library, or nothing active)."""
    otel = sys.modules.get("opentelemetry.trace")
    if otel is not None:
        found = _otel_ids(otel)
        if found is not None:
            return found
    apm = sys.modules.get("elasticapm.traces")
    if apm is not None:
        return _apm_ids(apm)
    return None


def trace_from_payload(payload: Mapping[str, Any]) -> TraceIds | None:
    """Ids given in a metric payload (``trace_id``, ``span_id``, ``transaction_id``), if any.

    Only non-empty strings count; anything else is ignored, as unknown payload keys are.
    """
    trace_id = payload.get("trace_id")
    if type(trace_id) is not str or not trace_id:
        return None
    span_id = payload.get("span_id")
    transaction_id = payload.get("transaction_id")
    return (
        trace_id,
        span_id if type(span_id) is str and span_id else None,
        transaction_id if type(transaction_id) is str and transaction_id else None,
    )


def _otel_ids(otel: Any) -> TraceIds | None:
    try:
        # elasticsearch-py imports OpenTelemetry whenever it is installed: most processes that
        # have it loaded have no span active. An empty context says so for a fifth of the cost.
        runtime = sys.modules.get("opentelemetry.context")
        if runtime is not None and not runtime.get_current():
            return None
        context = otel.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return (f"{context.trace_id:032x}", f"{context.span_id:016x}", None)
    except Exception:  # a tracing library must never cost the metric
        return None


def _apm_ids(apm: Any) -> TraceIds | None:
    try:
        context = apm.execution_context
        transaction = context.get_transaction()
        if transaction is None or transaction.trace_parent is None:
            return None
        span = context.get_span()
        return (
            str(transaction.trace_parent.trace_id),
            None if span is None else str(span.id),
            str(transaction.id),
        )
    except Exception:  # a tracing library must never cost the metric
        return None
