"""From a log record and its metric payload to an Elastic Common Schema document.

:class:`DocumentBuilder` is pure given its options, an environment mapping, a host name and a
process id: no I/O, no clock (``@timestamp`` is the record's ``created``). The fields follow
ECS :data:`ECS_VERSION`; the metric itself lives under the custom ``metrics.*`` fields that the
original library used (``metrics.name``, ``metrics.duration.us``), mapped explicitly by the
index template in ``mappings/``. A metric document::

    {"@timestamp": "2026-11-28T19:03:36.123Z", "message": "db query",
     "event": {"kind": "metric", "dataset": "app.metrics",
               "duration": 12500000, "start": "...", "end": "...", "outcome": "success"},
     "metrics": {"name": "db.query", "value": 12.5, "unit": "ms", "type": "timer",
                 "duration": {"us": 12500}},
     "labels": {"route": "/x"},
     "log": {"level": "info", "logger": "app.db",
             "origin": {"file": {"name": "db.py", "line": 12}, "function": "query"}},
     "process": {"pid": 123, "name": "python3", "thread": {"id": 1, "name": "MainThread"}},
     "ecs": {"version": "9.4.0"}, "service": {"name": "app"},
     "host": {"hostname": "web-1", "name": "web-1"},
     "agent": {"name": "ecs-metrics-handler", "type": "ecs-metrics-handler",
               "version": "0.1.0", "ephemeral_id": "..."}}

``event.*`` timing fields, ``metrics.duration`` and ``error.type`` appear for timers only,
``labels`` only when there are some, ``trace.id``/``span.id``/``transaction.id`` when a span
was active where the metric was logged (see ``_trace``), ``data_stream.type``/``dataset``/
``namespace`` when ``data_stream`` is named the Elastic way (``metrics-<dataset>-<namespace>``).
Then ``es_additional_fields`` is deep-merged over the document (it wins over the fields
above), then every ``es_additional_fields_in_env`` field whose environment variable is set at
that moment is written over it. A field whose variable is unset
keeps the value from ``es_additional_fields``, or is absent when that has none.

Each returned document is freshly built: no nested dict or list in it is shared with the
options, with the builder or with another document, so callers may change it freely.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import socket
import sys
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

from ._capture import Entry, RecordLike, safe_str, trace_of
from ._config import HandlerOptions, iter_leaves, thaw
from ._metric import normalize_metric_fields
from ._metric_extra import exception_type_name
from ._serialize import dumps

__all__ = [
    "AGENT_NAME",
    "ECS_VERSION",
    "DocumentBuilder",
    "format_timestamp",
    "package_version",
]

#: The ECS release the documents follow.
ECS_VERSION: Final = "9.4.0"
#: ``agent.name`` and ``agent.type``.
AGENT_NAME: Final = "ecs-metrics-handler"
_DISTRIBUTION: Final = "ecs-metrics-handler"
_PER_DOCUMENT_KEYS: Final = frozenset(
    {
        "@timestamp",
        "message",
        "event",
        "metrics",
        "labels",
        "log",
        "process",
        "error",
        "trace",
        "span",
        "transaction",
    }
)
_TIMESTAMP_CACHE_SIZE: Final = 4096
_EPOCH_DAY: Final = datetime.date(1970, 1, 1)
_second_prefixes: dict[int, str] = {}
_MILLIS: Final = tuple(f".{millis:03d}Z" for millis in range(1000))


def package_version() -> str:
    """The installed version of ``ecs-metrics-handler``, or ``"0.0.0"`` when not installed."""
    try:
        return importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def format_timestamp(ts: float) -> str:
    """``"YYYY-MM-DDTHH:MM:SS.mmmZ"`` (UTC, millisecond precision) for epoch seconds ``ts``.

    Milliseconds are floored after rounding to the microsecond (see
    :func:`~ecs_metrics_handler._index.epoch_millis`). The part up to the second is cached, so a
    call within an already seen second costs a dict lookup. Thread-safe.
    """
    seconds, millis = divmod(round(ts * 1_000_000) // 1000, 1000)  # epoch_millis, inlined
    prefix = _second_prefixes.get(seconds)
    if prefix is None:
        if len(_second_prefixes) >= _TIMESTAMP_CACHE_SIZE:
            _second_prefixes.clear()
        day = _EPOCH_DAY + datetime.timedelta(days=seconds // 86_400)
        rest = seconds % 86_400
        prefix = (
            f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
            f"T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
        )
        _second_prefixes[seconds] = prefix
    return prefix + _MILLIS[millis]


def _copy_tree(value: Any) -> Any:
    """Independent copy of nested dicts and lists; other values are shared (immutable)."""
    kind = type(value)
    if kind is dict:
        return {k: _copy_tree(v) for k, v in value.items()}
    if kind is list:
        return [_copy_tree(v) for v in value]
    return value


def _copier(value: Any) -> Callable[[Any], Any]:
    """The cheapest function giving an independent copy of ``value``."""
    if type(value) is dict and not any(type(v) in (dict, list) for v in value.values()):
        return dict.copy
    if type(value) in (dict, list):
        return _copy_tree
    return _identity


def _identity(value: Any) -> Any:
    return value


def _merge_into(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    """Deep-merge ``source`` into ``target`` (which the caller owns), copying what it takes."""
    for key, value in source.items():
        current = target.get(key)
        if type(current) is dict and type(value) is dict:
            _merge_into(current, value)
        else:
            target[key] = _copy_tree(value)


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    for part in path[:-1]:
        child = target.get(part)
        if type(child) is not dict:
            child = target[part] = {}
        target = child
    target[path[-1]] = value


class EncoderParts(NamedTuple):
    """A builder's fixed parts, for an encoder that writes its documents as bytes."""

    #: the static fields serialised, as ``,"ecs":{...},...`` without the closing brace
    static_open: bytes
    #: ``event.dataset``
    dataset: str
    #: ``process.pid`` when a record carries none
    pid: int
    #: ``process.name``
    process_name: str


class DocumentBuilder:
    """Builds one ECS document per record; see the module documentation for the layout.

    The parts that never change (``ecs``, ``agent``, ``host``, ``service`` and the additional
    fields) are computed once. ``environ`` is read at each document (``None``: ``os.environ``,
    the original library's semantics); ``hostname`` defaults to ``socket.gethostname()`` and
    ``pid`` to ``os.getpid()`` (used when a record carries no process id).

    Immutable once built, so :meth:`build` may run in several threads at once. Subclass and
    override :meth:`build` to add or change fields::

        class TenantDocumentBuilder(DocumentBuilder):
            def build(self, record, message, payload):
                doc = super().build(record, message, payload)
                doc.setdefault("labels", {})["tenant"] = getattr(record, "tenant", "none")
                return doc
    """

    def __init__(
        self,
        options: HandlerOptions,
        *,
        environ: Mapping[str, str] | None = None,
        hostname: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.options = options
        self._environ = environ
        self._hostname = hostname or socket.gethostname()
        self._pid = os.getpid() if pid is None else pid
        self._process_name = Path(sys.executable or "python").stem or "python"
        self._dataset = options.resolved_event_dataset
        self._env_fields: tuple[tuple[tuple[str, ...], str], ...] = tuple(
            (path, str(name)) for path, name in iter_leaves(options.es_additional_fields_in_env)
        )
        additional: dict[str, Any] = thaw(options.es_additional_fields)
        self._overrides: dict[str, Any] = {
            key: value for key, value in additional.items() if key in _PER_DOCUMENT_KEYS
        }
        self._additional_static: dict[str, Any] = {
            key: value for key, value in additional.items() if key not in _PER_DOCUMENT_KEYS
        }
        self._static: tuple[tuple[str, Any, Callable[[Any], Any]], ...] = ()
        self._compute_static()

    def _compute_static(self) -> None:
        options = self.options
        service: dict[str, Any] = {"name": options.resolved_service_name}
        if options.service_version is not None:
            service["version"] = options.service_version
        if options.service_environment is not None:
            service["environment"] = options.service_environment
        static: dict[str, Any] = {
            "ecs": {"version": ECS_VERSION},
            "service": service,
            "host": {"hostname": self._hostname, "name": self._hostname},
            "agent": {
                "name": AGENT_NAME,
                "type": AGENT_NAME,
                "version": package_version(),
                "ephemeral_id": uuid.uuid4().hex,
            },
        }
        parts = options.data_stream_parts
        if parts is not None:
            kind, dataset, namespace = parts
            static["data_stream"] = {"type": kind, "dataset": dataset, "namespace": namespace}
        _merge_into(static, self._additional_static)
        self._static = tuple((key, value, _copier(value)) for key, value in static.items())
        # For build_source(): the same parts serialised once, as the tail of a JSON object.
        # Only valid while nothing per document writes under these keys.
        env_roots = {path[0] for path, _ in self._env_fields}
        self._static_tail: bytes | None = None
        if static and not env_roots & static.keys():
            self._static_tail = b"," + dumps(static)[1:]

    def encoder_parts(self) -> EncoderParts | None:
        """What :class:`~._encoder.BulkEncoder` needs to write this builder's documents itself.

        ``None`` when only :meth:`build` can say what a document is: it is overridden, or
        ``es_additional_fields`` writes under per-document keys, or environment fields are set.
        """
        tail = self._static_tail
        if (
            type(self).build is not DocumentBuilder.build
            or tail is None
            or self._overrides
            or self._env_fields
        ):
            return None
        return EncoderParts(tail[:-1], self._dataset, self._pid, self._process_name)

    def decorate(self, doc: dict[str, Any]) -> None:
        """Add the fields every document shares to ``doc`` (an aggregate document), in place.

        The static parts (``ecs``, ``service``, ``host``, ``agent``, ``data_stream`` and the
        static ``es_additional_fields``), then the per-document additional fields, then the
        environment fields set now, in the same order as :meth:`build`. Freshly copied.
        """
        for key, value, copy in self._static:
            doc[key] = copy(value)
        self._override(doc)

    @property
    def needs_live_record(self) -> bool:
        """Whether :meth:`build` may read attributes beyond the standard ones (it is overridden).

        The handler then queues the live ``LogRecord``; otherwise a compact
        :class:`~ecs_metrics_handler._capture.Entry` of the standard fields.
        """
        return type(self).build is not DocumentBuilder.build

    @property
    def pid(self) -> int:
        """The process id written when a record carries none."""
        return self._pid

    def build_source(self, record: RecordLike, message: str, payload: object | None) -> bytes:
        """The document for ``record`` serialised to JSON: what ``dumps(self.build(...))`` gives.

        Faster when :meth:`build` is not overridden: the parts that never change were
        serialised once and are appended to the per-record part. A subclass that overrides
        :meth:`build` gets ``dumps(self.build(...))``.
        """
        tail = self._static_tail
        if tail is None or type(self).build is not DocumentBuilder.build:
            return dumps(self.build(record, message, payload))
        return dumps(self._build(record, message, payload, with_static=False))[:-1] + tail

    def build(self, record: RecordLike, message: str, payload: object | None) -> dict[str, Any]:
        """The ECS document for ``record``.

        ``message`` is the formatted message; ``payload`` the metric payload, or ``None`` for a
        plain log event (``event.kind: "event"``, no ``metrics``). A record with exception
        information gets ``error.type``, ``error.message`` and ``error.stack_trace`` (the
        record's ``exc_text`` when set). Raises
        :class:`~ecs_metrics_handler.exceptions.InvalidMetricError` for a bad payload.
        """
        return self._build(record, message, payload, with_static=True)

    def _build(
        self, record: RecordLike, message: str, payload: object | None, *, with_static: bool
    ) -> dict[str, Any]:
        created = record.created
        doc: dict[str, Any] = {"@timestamp": format_timestamp(created), "message": message}
        error: dict[str, Any] | None = None
        if payload is None:
            doc["event"] = {"kind": "event", "dataset": self._dataset}
        else:
            (name, value, unit, kind, labels, duration_ns, start, end, outcome, error_type) = (
                normalize_metric_fields(payload)
            )
            event: dict[str, Any] = {"kind": "metric", "dataset": self._dataset}
            metrics: dict[str, Any] = {"name": name}
            if value is not None:
                metrics["value"] = value
            if unit is not None:
                metrics["unit"] = unit
            metrics["type"] = kind.value
            if duration_ns is not None:
                event["duration"] = duration_ns
                if end is None:
                    end = created
                if start is None:
                    start = end - duration_ns / 1e9
                metrics["duration"] = {"us": duration_ns // 1000}
            if start is not None:
                event["start"] = format_timestamp(start)
            if end is not None:
                event["end"] = format_timestamp(end)
            if outcome is not None:
                event["outcome"] = outcome
            doc["event"] = event
            doc["metrics"] = metrics
            if labels:
                doc["labels"] = labels
            if error_type is not None:
                error = {"type": error_type}

        origin: dict[str, Any] = {"file": {"name": record.filename, "line": record.lineno}}
        if record.funcName:
            origin["function"] = record.funcName
        doc["log"] = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "origin": origin,
        }
        process: dict[str, Any] = {
            "pid": record.process if type(record.process) is int else self._pid,
            "name": self._process_name,
        }
        if record.thread is not None:
            process["thread"] = {"id": record.thread, "name": record.threadName}
        doc["process"] = process
        trace = trace_of(record)
        if trace is not None:
            doc["trace"] = {"id": trace[0]}
            if trace[1] is not None:
                doc["span"] = {"id": trace[1]}
            if trace[2] is not None:
                doc["transaction"] = {"id": trace[2]}

        if with_static:
            for key, value, copy in self._static:
                doc[key] = copy(value)

        if (
            record.exc_info
            or record.exc_text
            or (type(record) is Entry and record.error is not None)
        ):
            error = self._error_fields(record, error)
        if error is not None:
            doc["error"] = error
        self._override(doc)
        return doc

    def _override(self, doc: dict[str, Any]) -> None:
        """``es_additional_fields`` under per-document keys, then the environment fields."""
        if self._overrides:
            _merge_into(doc, self._overrides)
        if self._env_fields:
            environ = os.environ if self._environ is None else self._environ
            for path, variable in self._env_fields:
                found = environ.get(variable)
                if found is not None:
                    _set_path(doc, path, found)

    @staticmethod
    def _error_fields(record: RecordLike, error: dict[str, Any] | None) -> dict[str, Any]:
        fields: dict[str, Any] = {} if error is None else error
        exc_info = record.exc_info
        if type(record) is Entry and record.error is not None:
            fields["type"], fields["message"] = record.error
            stack = record.exc_text or ""
        elif exc_info and exc_info[0] is not None:
            exc_type, exc_value, exc_tb = exc_info
            fields["type"] = exception_type_name(exc_type)
            fields["message"] = safe_str(exc_value)
            stack = record.exc_text or "".join(
                traceback.format_exception(exc_type, exc_value, exc_tb)
            )
        else:
            stack = record.exc_text or ""
        if stack:
            fields["stack_trace"] = stack
        return fields
