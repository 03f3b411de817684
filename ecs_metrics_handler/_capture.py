"""What an application thread keeps of a record: only the fields a document is built from.

A live ``LogRecord`` costs about 2 KiB (its ``__dict__``, ``args``, ``exc_info`` and so the
whole traceback with every frame's locals), and other handlers may still change it after
``emit`` returned. :func:`capture` copies the dozen attributes :class:`DocumentBuilder` reads
into an :class:`Entry` of a few hundred bytes, formats an exception's stack on the
spot (so no traceback outlives the logging call), and shares repeated strings (file names)
between records.

A handler whose document builder overrides ``build`` (and so may read any attribute of the
record) keeps the live record instead; see ``ElasticECSHandler.make_document_builder``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Final, TypeAlias

from ._metric_extra import exception_type_name
from ._trace import TraceIds, current_trace, trace_from_payload

__all__ = ["TRACE_ATTRIBUTE", "Entry", "RecordLike", "capture", "safe_str", "trace_of"]

#: where a kept live record carries the trace ids captured with it
TRACE_ATTRIBUTE: Final = "_ecs_metrics_trace"
_SHARED_LIMIT: Final = 4096
_shared: dict[Any, Any] = {}


def _share(value: Any) -> Any:
    """One object per distinct file name, process id and thread id, instead of one per record."""
    found = _shared.get(value)
    if found is not None:
        return found
    if len(_shared) >= _SHARED_LIMIT:
        _shared.clear()
    _shared[value] = value
    return value


class Entry:
    """One accepted logging call: its sequence number, payload, message and record fields.

    Carries the attributes of a ``LogRecord`` that a document needs, and nothing else, and is
    read by :class:`~ecs_metrics_handler.DocumentBuilder` exactly like a record. ``exc_info``
    is always ``None``: an exception is kept as ``exc_text`` (its formatted stack) and
    ``error`` (its type name and message). ``record`` is the live record when the builder
    asked for it (see :attr:`DocumentBuilder.needs_live_record`), else ``None``.

    About 150 bytes plus the payload's copy. Written once by :func:`capture` on the
    application's thread, then only read: thread-safe.
    """

    __slots__ = (
        "created",
        "error",
        "exc_text",
        "filename",
        "funcName",
        "levelname",
        "lineno",
        "message",
        "name",
        "payload",
        "process",
        "record",
        "seq",
        "thread",
        "threadName",
        "trace",
    )

    seq: int
    #: the copied metric payload, or ``None`` for a plain log event
    payload: Any
    #: the formatted message (its template when formatting raised)
    message: Any
    record: logging.LogRecord | None
    created: float
    #: ``(type name, message)`` of the record's exception, or ``None``
    error: tuple[str, str] | None
    #: always None (a class attribute: no slot, no store per record)
    exc_info: None = None
    exc_text: str | None
    filename: str
    funcName: str | None  # noqa: N815 - the LogRecord attribute's name
    levelname: str
    lineno: int
    name: str
    process: int | None
    thread: int | None
    threadName: str | None  # noqa: N815 - the LogRecord attribute's name
    #: ``(trace.id, span.id, transaction.id)`` of the span active at capture, or ``None``
    trace: TraceIds | None

    @property
    def source(self) -> RecordLike:
        """What the document is built from: the live record when kept, else this entry."""
        return self if self.record is None else self.record

    def __repr__(self) -> str:
        return f"<Entry {self.seq} {self.name} {self.levelname} {self.filename}:{self.lineno}>"


#: What a document is built from: a live record, or what :func:`capture` kept of one.
RecordLike: TypeAlias = "logging.LogRecord | Entry"


def capture(
    record: logging.LogRecord, seq: int, payload: Any, message: Any, *, keep_record: bool = False
) -> Entry:
    """Copy what a document needs out of ``record``. Never raises for a well-formed record.

    Costs a few attribute reads and dict lookups; formats the stack when the record carries
    an exception, so that no traceback (and none of its frames' locals) outlives the call.
    Takes the trace ids from the payload (``trace_id``...) when it has them, else from the
    span active on the calling thread (:func:`~._trace.current_trace`); a kept live record
    carries them in its ``TRACE_ATTRIBUTE`` attribute.
    """
    out = Entry()
    out.seq = seq
    out.payload = payload
    out.message = message
    out.record = record if keep_record else None
    out.created = record.created
    out.name = record.name
    out.levelname = record.levelname
    shared = _shared.get  # _share() inlined: this runs on the application's thread
    filename = record.filename
    out.filename = shared(filename) or _share(filename)
    out.lineno = record.lineno
    out.funcName = record.funcName
    process = record.process
    out.process = shared(process) or _share(process)
    thread = record.thread
    out.thread = shared(thread) or _share(thread)
    out.threadName = record.threadName
    out.exc_text = record.exc_text
    out.error = None
    trace = trace_from_payload(payload) if type(payload) is dict and "trace_id" in payload else None
    out.trace = trace if trace is not None else current_trace()
    if keep_record and out.trace is not None:
        record.__dict__[TRACE_ATTRIBUTE] = out.trace
    exc_info = record.exc_info
    if exc_info and exc_info[0] is not None and not keep_record:
        exc_type, exc_value, exc_tb = exc_info
        out.error = (exception_type_name(exc_type), safe_str(exc_value))
        if not out.exc_text:
            out.exc_text = "".join(traceback.format_exception(exc_type, exc_value, exc_tb))
    return out


def trace_of(record: RecordLike) -> TraceIds | None:
    """The trace ids captured with ``record`` (an entry, or a kept live record), if any."""
    if type(record) is Entry:
        return record.trace
    found: TraceIds | None = record.__dict__.get(TRACE_ATTRIBUTE)
    return found


def safe_str(value: Any) -> str:
    """``str(value)``, or a placeholder naming its type when that raises."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
