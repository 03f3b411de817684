"""The batcher's fast path: a captured entry straight to its bulk pair, in bytes.

:class:`DocumentBuilder` is the one definition of a document's shape; :class:`BulkEncoder`
writes the same bytes that ``bulk_pair(index, doc_id, builder.build_source(...))`` gives,
without building a dict per document. Most of a document's bytes depend only on where it was
logged and on the metric's name, unit and type, so those parts are rendered once, through the
builder's own serialiser, and cached:

* per call site (logger, level, file, line, function, process, thread): the ``log`` and
  ``process`` objects;
* per metric (name, unit, type): the ``metrics`` object around its value;
* per message: its JSON string;
* per second: the ``@timestamp`` up to the second, and the action line up to the id.

What changes per event (value, timer fields, labels, trace ids, sequence number) is formatted
with the ``bytes %`` operator and ``orjson``. Entries the fast path does not cover (a subclassed
builder, exceptions, ``es_additional_fields`` under per-document keys, environment fields, a
message that is not a string, anything ``orjson`` refuses) return ``None``, and the caller uses
the reference path for them: the output is the same either way (``tests/unit/test_encoder.py``
checks it byte for byte). Caches are bounded; one encoder belongs to one batcher thread.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Final

import orjson

from ._capture import Entry
from ._document import DocumentBuilder, EncoderParts
from ._index import IndexNamer
from ._metric import normalize_metric_fields
from ._serialize import _OPTIONS, _default, dumps
from .exceptions import InvalidMetricError

__all__ = ["BulkEncoder"]

_CACHE_LIMIT: Final = 4096
_EPOCH_DAY: Final = datetime.date(1970, 1, 1)
_MILLIS: Final = tuple(b".%03dZ" % millis for millis in range(1000))


def _json(value: Any) -> bytes:
    """``value`` as the reference serialiser writes it inside a document (raises if refused)."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def _second_prefix(seconds: int) -> bytes:
    day = _EPOCH_DAY + datetime.timedelta(days=seconds // 86_400)
    rest = seconds % 86_400
    return b"%04d-%02d-%02dT%02d:%02d:%02d" % (
        day.year,
        day.month,
        day.day,
        rest // 3600,
        rest // 60 % 60,
        rest % 60,
    )


class BulkEncoder:
    """``encoder.encode(entry) -> bytes | None``: the entry's bulk pair, or None (use the builder).

    ``builder`` defines the document, ``namer`` the index for an event time, ``id_prefix`` the
    document ids (``id_prefix`` + the entry's sequence number in hex), as for
    :func:`~._batching.build_batch`. Not thread-safe (its caches are plain dicts): one encoder
    per batcher thread.
    """

    def __init__(
        self, builder: DocumentBuilder, namer: Callable[[float], str], id_prefix: str
    ) -> None:
        self._namer = namer
        self._id_prefix = id_prefix
        parts = builder.encoder_parts()
        #: whether :meth:`encode` can ever answer (else it always returns None)
        self.enabled = parts is not None
        if parts is None:
            parts = EncoderParts(b"", "", 0, "")
        self._static_open = parts.static_open
        self._dataset = _json(parts.dataset)
        self._pid = parts.pid
        self._process_name = parts.process_name
        # Names per whole second only for the stock namer (a subclass may name by anything).
        self._namer_by_second = type(namer) is IndexNamer
        self._sites: dict[tuple[Any, ...], bytes] = {}
        self._metrics: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
        self._messages: dict[str, bytes] = {}
        self._actions: dict[str, bytes] = {}
        self._last_second: int | None = None
        self._second = b""
        self._last_index_second: int | None = None
        self._index = ""

    # -- cached parts ------------------------------------------------------------------------

    def _timestamp(self, ts: float) -> bytes:
        return self._timestamp_of_millis(round(ts * 1_000_000) // 1000)

    def _timestamp_of_millis(self, epoch_millis: int) -> bytes:
        seconds, millis = divmod(epoch_millis, 1000)
        if seconds != self._last_second:
            self._second = _second_prefix(seconds)
            self._last_second = seconds
        return self._second + _MILLIS[millis]

    def _action(self, created: float, seconds: int) -> bytes:
        """The action line up to the id for an event at ``created`` (whole ``seconds`` of it,
        as ``epoch_millis`` floors them)."""
        if self._namer_by_second:
            if seconds != self._last_index_second:
                self._index = self._namer(created)
                self._last_index_second = seconds
            index = self._index
        else:
            index = self._namer(created)
        action = self._actions.get(index)
        if action is None:
            if len(self._actions) >= _CACHE_LIMIT:
                self._actions.clear()
            action = b'{"create":{"_index":%b,"_id":"%b' % (
                _json(index),
                _json(self._id_prefix)[1:-1],
            )
            self._actions[index] = action
        return action

    def _site(self, entry: Entry) -> bytes:
        key = (
            entry.name,
            entry.levelname,
            entry.filename,
            entry.lineno,
            entry.funcName,
            entry.process,
            entry.thread,
            entry.threadName,
        )
        site = self._sites.get(key)
        if site is None:
            origin: dict[str, Any] = {"file": {"name": entry.filename, "line": entry.lineno}}
            if entry.funcName:
                origin["function"] = entry.funcName
            process: dict[str, Any] = {
                "pid": entry.process if type(entry.process) is int else self._pid,
                "name": self._process_name,
            }
            if entry.thread is not None:
                process["thread"] = {"id": entry.thread, "name": entry.threadName}
            log = {"level": entry.levelname.lower(), "logger": entry.name, "origin": origin}
            site = b"," + dumps({"log": log, "process": process})[1:-1]
            if len(self._sites) >= _CACHE_LIMIT:
                self._sites.clear()
            self._sites[key] = site
        return site

    def _metric(self, name: str, unit: str | None, kind: Any) -> tuple[bytes, bytes]:
        key = (name, unit, kind)
        parts = self._metrics.get(key)
        if parts is None:
            head = b',"metrics":{"name":' + _json(name)
            tail = b"" if unit is None else b',"unit":' + _json(unit)
            parts = (head, tail + b',"type":' + _json(kind.value))
            if len(self._metrics) >= _CACHE_LIMIT:
                self._metrics.clear()
            self._metrics[key] = parts
        return parts

    def _message(self, message: str) -> bytes:
        found = self._messages.get(message)
        if found is None:
            found = _json(message)
            if len(self._messages) >= _CACHE_LIMIT:
                self._messages.clear()
            self._messages[message] = found
        return found

    # -- the document ------------------------------------------------------------------------

    def encode(self, entry: Entry) -> bytes | None:
        """The bulk pair (action line, document, newlines) of ``entry``, or None.

        ``None`` when the entry is outside the fast path (see the module documentation).
        Raises :class:`~ecs_metrics_handler.exceptions.InvalidMetricError` for a bad payload,
        as the builder does.
        """
        if (
            not self.enabled
            or type(entry) is not Entry
            or entry.record is not None
            or entry.exc_text is not None
            or entry.error is not None
            or type(entry.message) is not str
        ):
            return None
        try:
            return self._encode(entry)
        except InvalidMetricError:
            raise
        except Exception:
            return None  # e.g. what orjson refuses: the reference path sanitises or rejects it

    def _encode(self, entry: Entry) -> bytes:
        created = entry.created
        epoch_millis = round(created * 1_000_000) // 1000  # once, for the timestamp and index
        payload = entry.payload
        error = b""
        if payload is None:
            body = b',"event":{"kind":"event","dataset":%b}' % self._dataset
        else:
            (name, value, unit, kind, labels, duration_ns, start, end, outcome, error_type) = (
                normalize_metric_fields(payload)
            )
            head, tail = self._metric(name, unit, kind)
            if value is not None:
                head += b',"value":' + _json(value)
            event = b',"event":{"kind":"metric","dataset":' + self._dataset
            if duration_ns is not None:
                event += b',"duration":%d' % duration_ns
                if end is None:
                    end = created
                if start is None:
                    start = end - duration_ns / 1e9
                tail += b',"duration":{"us":%d}' % (duration_ns // 1000)
            if start is not None:
                event += b',"start":"' + self._timestamp(start) + b'"'
            if end is not None:
                event += b',"end":"' + self._timestamp(end) + b'"'
            if outcome is not None:
                event += b',"outcome":' + _json(outcome)
            body = event + b"}" + head + tail + b"}"
            if labels:
                body += b',"labels":' + _json(labels)
            if error_type is not None:
                error = b',"error":{"type":' + _json(error_type) + b"}"
        ids = b""
        trace = entry.trace
        if trace is not None:
            ids = b',"trace":{"id":' + _json(trace[0]) + b"}"
            if trace[1] is not None:
                ids += b',"span":{"id":' + _json(trace[1]) + b"}"
            if trace[2] is not None:
                ids += b',"transaction":{"id":' + _json(trace[2]) + b"}"
        return b'%b%x"}}\n{"@timestamp":"%b","message":%b%b%b%b%b%b}\n' % (
            self._action(created, epoch_millis // 1000),
            entry.seq,
            self._timestamp_of_millis(epoch_millis),
            self._message(entry.message),
            body,
            self._site(entry),
            ids,
            error,
            self._static_open,
        )
