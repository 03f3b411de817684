"""``ElasticECSHandler``: the stdlib handler contract, the capture, and the lifecycle.

The application thread does as little as possible: ``emit`` filters the record, copies the
metric payload (so that a caller mutating its dict afterwards changes nothing), keeps the
record's standard fields in a compact form (``_capture.py``), appends
that ``Entry`` to a ``deque`` and, once ``buffer_size``
records wait, wakes the worker. Building, serialisation, HTTP and file I/O happen on the
worker's threads (see ``_worker.py``), outside any lock the application needs.
"""

from __future__ import annotations

import base64
import logging
import multiprocessing.util
import os
import threading
import weakref
from collections import deque
from logging.handlers import BufferingHandler
from typing import TYPE_CHECKING, Any

from ._capture import Entry, capture
from ._config import AuthType, HandlerKwargs, HandlerOptions, IndexMode, IndexNameFrequency
from ._document import DocumentBuilder
from ._folder_trust import check_folder_trust
from ._index import IndexNamer
from ._interpreter import SequenceCounter, logging_lock_held
from ._report import Reporter
from ._segment_file import ReplayPolicy
from ._shipper import Shipper, check_optional_dependencies, make_shipper
from ._spool import Spool
from ._stats import DeliveryStats
from ._templates import load_templates
from ._timing import METRICS_LOGGER_NAME
from ._tls import warn_if_plain_http
from ._worker import Worker

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ElasticECSHandler", "HandlerKwargs"]

#: Loggers whose records are never shipped: the clients' own (``elastic_transport`` logs every
#: request at INFO) and this package's, except the documented metrics logger of ``timed()``.
_INTERNAL_ROOTS = frozenset(
    {
        "ecs_metrics_handler",
        "elastic_transport",
        "elasticsearch",
        "opensearch",
        "opensearchpy",
        "requests",
        "requests_aws4auth",
        "requests_kerberos",
        "urllib3",
    }
)


def may_ship(logger_name: str) -> bool:
    """Whether records of ``logger_name`` may be shipped (the re-entrancy guard, by name)."""
    if logger_name == METRICS_LOGGER_NAME or logger_name.startswith(METRICS_LOGGER_NAME + "."):
        return True
    return logger_name.partition(".")[0] not in _INTERNAL_ROOTS


def _message_of(record: logging.LogRecord) -> Any:
    """The record's message; its unformatted ``msg`` when formatting raises.

    A metric is not lost to a bad format string: the document then carries the template.
    """
    if not record.args:
        return record.msg
    try:
        return record.getMessage()
    except Exception:
        return record.msg


_live_handlers: weakref.WeakSet[ElasticECSHandler] = weakref.WeakSet()
_fork_hook_lock = threading.Lock()
_fork_hook_registered = False


def _reset_handlers_in_child() -> None:
    for handler in list(_live_handlers):
        handler._reset_after_fork()


def _payload_in_extra(record: logging.LogRecord, key: str) -> Any:
    """The payload of a record whose extras sit under one ``extra`` attribute, else None.

    Loguru's standard-handler sink (``logger.add(handler)``) builds such records: what
    ``logger.bind(metric={...})`` or ``logger.info(..., metric={...})`` carries arrives as
    ``record.extra["metric"]`` instead of ``record.metric``.
    """
    extra = record.__dict__.get("extra")
    return extra.get(key) if type(extra) is dict else None


def _close_at_multiprocessing_child_exit(handler: ElasticECSHandler) -> None:
    # A multiprocessing child leaves through os._exit(), skipping atexit and so
    # logging.shutdown(); its own exit hook runs these finalizers instead.
    if not handler._closed:
        multiprocessing.util.Finalize(handler, handler.close, exitpriority=100)


def _track(handler: ElasticECSHandler) -> None:
    global _fork_hook_registered
    with _fork_hook_lock:
        _live_handlers.add(handler)
        if not _fork_hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_handlers_in_child)
            _fork_hook_registered = True
    multiprocessing.util.register_after_fork(handler, _close_at_multiprocessing_child_exit)


class ElasticECSHandler(BufferingHandler):
    """A logging handler that ships metric records to Elasticsearch as ECS documents.

    Attach it to any logger (the root included) or configure it with
    :func:`logging.config.dictConfig`; every option is a keyword argument whose value JSON
    or YAML can express (enums as case-insensitive strings, hosts as a list). A ready
    ``elasticsearch.Elasticsearch`` or ``opensearchpy.OpenSearch`` client may be passed as
    ``client`` (``ext://`` in dictConfig); the connection options are then ignored.

    By default only records that carry a metric payload (``extra={"metric": {...}}``, see
    :func:`ecs_metrics_handler.metric`) are shipped; ``ship_log_records=True`` ships the
    others as ECS log events too. Records of the Elasticsearch/OpenSearch clients, of
    ``urllib3``/``requests`` and of this package are never shipped (except the
    ``ecs_metrics_handler.metrics`` logger that :func:`ecs_metrics_handler.timed` uses).

    Blocking: ``emit`` never waits on the network or the disk; when ``max_queue_records``
    records already wait (the application logs faster than the worker builds documents) it
    pauses for the worker, in 1 ms steps, at most 10 ms before dropping (counted), or at most
    1 s with a ``flush_failure_folder``, where dropping would lose a metric the folder could
    keep.
    :meth:`flush` and :meth:`close` wait at most ``flush_timeout`` seconds (default 5; close
    adds one second of grace to stop the threads). Thread-safe; fork-safe (a child process
    starts with an empty buffer and its own worker and client).

    Raises :class:`~ecs_metrics_handler.ConfigurationError` at construction for a wrong
    option, and :class:`~ecs_metrics_handler.MissingDependencyError` when an option needs an
    extra that is not installed.
    """

    AuthType = AuthType
    IndexNameFrequency = IndexNameFrequency

    #: ``logging.shutdown`` calls ``close()`` only: close flushes within its own bound.
    flushOnClose = False

    buffer: deque[Entry]  # type: ignore[assignment]

    def __init__(
        self,
        *,
        client: Any = None,
        level: int | str = logging.NOTSET,
        **options: Unpack[HandlerKwargs],
    ) -> None:
        self.options = HandlerOptions.from_kwargs(**options)
        check_folder_trust(
            self.options.flush_failure_folder, self.options.flush_failure_folder_allow_insecure
        )
        if client is None:
            check_optional_dependencies(self.options)
            warn_if_plain_http(self.options)
        else:
            make_shipper(self.options, client)  # validates the client's type now
        super().__init__(self.options.buffer_size)
        self.setLevel(level)
        self._client = client
        self._metric_key = self.options.metric_key
        self._ship_log_records = self.options.ship_log_records
        self._decisions: dict[str, bool] = {}
        self._closed = False
        self._flush_timed_out = False
        self._setup_pipeline()
        _track(self)

    # -- construction helpers ---------------------------------------------------------------

    def _setup_pipeline(self) -> None:
        o = self.options
        self.buffer = deque()
        self._seq = SequenceCounter()
        self._next_seq = self._seq.next
        self._stats = DeliveryStats()
        self._spool = (
            Spool(
                o.flush_failure_folder,
                o.flush_failure_folder_max_bytes,
                policy=ReplayPolicy.of_handler(
                    o.es_index_name,
                    o.data_stream,
                    server_ids=o.index_mode is IndexMode.TIME_SERIES,
                ),
                allow_insecure=o.flush_failure_folder_allow_insecure,
            )
            if o.flush_failure_folder
            else None
        )
        self._reporter = Reporter()
        builder = self.make_document_builder()
        self._keep_live_record = builder.needs_live_record
        namer = IndexNamer(
            o.es_index_name,
            o.index_name_frequency,
            o.index_name_timezone,
            data_stream=o.data_stream,
        )
        self._worker = Worker(
            self.buffer,
            builder=builder,
            namer=namer,
            shipper_factory=self._make_shipper,
            spool=self._spool,
            stats=self._stats,
            reporter=self._reporter,
            id_prefix=base64.urlsafe_b64encode(os.urandom(9)).decode("ascii"),
            buffer_size=o.buffer_size,
            flush_interval=o.flush_frequency_in_sec,
            max_pending_bytes=o.max_pending_bytes,
            max_queue_records=o.max_queue_records,
            max_retries=o.max_retries,
            backoff_initial=o.retry_backoff_initial,
            backoff_max=o.retry_backoff_max,
            templates=self.templates() if o.install_template else None,
            aggregation_interval=o.aggregation_interval,
            max_series=o.max_series,
            server_ids=o.index_mode is IndexMode.TIME_SERIES,
        )
        self._aggregator = self._worker.aggregator

    def make_document_builder(self) -> DocumentBuilder:
        """Return the object that turns a record into an ECS document.

        Override to customise documents: subclass :class:`DocumentBuilder` and return it here.
        A builder that overrides ``build`` receives the live ``LogRecord`` (so it may read any
        attribute, such as an ``extra`` field); the handler then queues whole records, about
        2 KiB each instead of a few hundred bytes::

            class MyBuilder(DocumentBuilder):
                def build(self, record, message, payload):
                    doc = super().build(record, message, payload)
                    doc["tenant"] = {"id": current_tenant()}
                    return doc

            class MyHandler(ElasticECSHandler):
                def make_document_builder(self):
                    return MyBuilder(self.options)
        """
        return DocumentBuilder(self.options)

    def _make_shipper(self) -> Shipper:
        return make_shipper(self.options, self._client)

    def templates(self) -> dict[str, Any]:
        """The component and index template bodies for this handler's indices (or data stream)."""
        o = self.options
        prefix = o.data_stream or o.es_index_name
        bodies = load_templates(
            prefix,
            data_stream=o.data_stream is not None,
            time_series=o.index_mode is IndexMode.TIME_SERIES,
        )
        return {
            "component_name": f"{prefix}-ecs-metrics",
            "index_name": f"{prefix}-ecs-metrics",
            **bodies,
        }

    def _reset_after_fork(self) -> None:
        # Runs in the child right after os.fork(): the parent's threads do not exist here and
        # whatever it had buffered is the parent's to ship.
        self._decisions = {}
        self._flush_timed_out = False
        self._setup_pipeline()

    # -- the stdlib contract ----------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter ``record`` and emit it, without taking the handler's lock.

        :meth:`emit` only performs atomic operations (``deque.append``, ``next()`` on a
        counter; with aggregation, a lock it tries without waiting), so the lock that
        ``logging.Handler.handle`` holds around ``emit`` would only add cost to every
        logging call. Filters and levels apply exactly as in the stdlib.
        """
        if not self.filters:
            self.emit(record)
            return True
        rv: object = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may return a new record
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        """Capture ``record`` for shipping (or, with aggregation, fold its metric at once).

        No I/O, never waits for a lock; never raises into the caller.
        """
        try:
            ship = self._decisions.get(record.name)
            if ship is None:
                ship = self._decisions[record.name] = may_ship(record.name)
            if not ship:
                return
            payload = record.__dict__.get(self._metric_key)
            if payload is None:
                payload = _payload_in_extra(record, self._metric_key)
            if payload is None and not self._ship_log_records:
                return
            worker = self._worker
            thread = record.thread
            if thread is None:  # logging.logThreads off
                thread = threading.get_ident()
            if thread in worker.thread_ids:
                return  # something logged from our own worker: never ship it
            seq = self._next_seq()  # atomic: emit needs no lock
            if self._closed:
                self._stats.drop("handler closed")
                return
            wake = False
            if type(payload) is dict:
                # With aggregation, a metric of a known series is folded here and now (see
                # Aggregator.fold_now): no capture, no queueing. Else it is queued, and when the
                # batcher has a series to open, the first one queued wakes it at once, so
                # that the next calls fold again.
                aggregator = self._aggregator
                if aggregator is not None:
                    folded = aggregator.fold_now(payload, record.created, seq)
                    if folded:
                        return
                    wake = folded is False
                payload = payload.copy()
                labels = payload.get("labels")
                if type(labels) is dict:
                    payload["labels"] = labels.copy()
            message = record.msg if not record.args else _message_of(record)
            entry = capture(record, seq, payload, message, keep_record=self._keep_live_record)
            if not worker.offer(entry, wake=wake):
                self._stats.drop("in-memory queue full (max_queue_records)")
        except RecursionError:  # see logging.Handler.emit
            raise
        except Exception:
            self.handleError(record)

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Ship what is buffered and wait until it is acknowledged, spooled or dead-lettered.

        Waits at most ``timeout`` seconds (default: the ``flush_timeout`` option, 5 s) and
        returns whether everything emitted before the call was settled in time. After
        :meth:`close` it does nothing and returns ``True``. Safe from any thread.
        """
        if self._closed:
            return True
        if timeout is None:
            timeout = self.options.flush_timeout
        if logging_lock_held():
            # Under logging's module lock (dictConfig tearing handlers down): the worker may
            # need that lock to log, so don't wait on it here; close() spools what is left.
            self._worker.wake()
            return False
        ok = self._worker.flush(self._seq.last(), timeout)
        self._flush_timed_out = not ok
        return ok

    def close(self) -> None:
        """Flush within ``flush_timeout`` seconds, spool what is still undelivered, stop the worker.

        Idempotent. With no failure folder, what could not be delivered is counted in
        ``stats()["dropped"]`` and reported.
        """
        try:
            if not self._closed:
                self._closed = True
                wait = not self._flush_timed_out and not (
                    logging_lock_held() and self._spool is not None
                )
                self._worker.stop(
                    self.options.flush_timeout, self._seq.last(), wait_for_delivery=wait
                )
        finally:
            logging.Handler.close(self)

    # -- extras -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Delivery counters (see ``_stats.DeliveryStats`` for their meaning) and ``pending``."""
        return self._stats.snapshot(self._seq.last(), self._worker.pending())

    def install_template(self) -> None:
        """Install the component and index templates now, from the calling thread (blocking).

        Raises the client's error when the cluster refuses.
        """
        shipper = self._make_shipper()
        try:
            shipper.put_templates(self.templates())
        finally:
            if self._client is None:
                shipper.close()

    def check_connection(self) -> bool:
        """Whether the cluster answers ``GET /_cluster/health`` (blocking, ``request_timeout``)."""
        shipper = self._make_shipper()
        try:
            return shipper.check()
        finally:
            if self._client is None:
                shipper.close()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        target = self.options.data_stream or f"{self.options.es_index_name}-*"
        return f"<{type(self).__name__} {','.join(self.options.hosts)} -> {target} ({level})>"
