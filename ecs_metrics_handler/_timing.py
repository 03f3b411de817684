"""``timed()``: time a block or a function and log the duration as a timer metric.

One object is both a context manager (``with`` / ``async with``) and a decorator (of plain and
``async def`` functions)::

    @timed("checkout")                       # logs through METRICS_LOGGER_NAME
    def checkout(cart: Cart) -> Receipt: ...

    @timed("fetch", logger=log, labels={"api": "stock"})
    async def fetch(sku: str) -> int: ...

    with timed("db.query", logger=log):
        rows = cursor.fetchall()

Each exit logs ONE record, ``logger.log(level, message or name, extra={metric_key: payload})``
with the payload ``{"name", "type": "timer", "value": <ms float>, "unit": "ms", "duration_ns",
"start", "end", "outcome", "labels"}`` (``start``/``end`` in epoch seconds of ``wall_clock``,
``end = start + duration``). When the block raises, the outcome is ``"failure"`` (``"unknown"``
for ``BaseException`` such as cancellation or ``KeyboardInterrupt``), ``error_type`` names the
exception, and the exception propagates unchanged. Nothing is built when the logger is not
enabled for ``level``.

The record's ``created`` (the document's ``@timestamp``, which also picks the index date) is the
time it is logged, the end of the measure. ``timestamp="start"`` stamps it with ``start``
instead, as the original library's ``log_time_metric_timer`` does; the record is otherwise the
one ``logger.log`` gives (same caller, level, message and ``extra``).

The duration comes from ``clock`` (default :func:`time.perf_counter_ns`, monotonic); negative
differences (a misbehaving injected clock) are clamped to 0.

Thread safety: the start of each ``with`` entry lives in a context variable, so one instance may
be entered concurrently from several threads and several asyncio tasks, and nested in itself;
each decorated call keeps its state in local variables. Decorating a generator function times
only the creation of the generator.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast

from ._metric import METRIC_KEY, LabelValue
from ._metric_extra import exception_type_name
from ._trace import TraceIds, current_trace

__all__ = ["METRICS_LOGGER_NAME", "timed"]

#: The logger :class:`timed` uses when given none. Attach the handler to it (or to an
#: ancestor): the handler's guard against shipping its own records exempts exactly this name.
METRICS_LOGGER_NAME: Final = "ecs_metrics_handler.metrics"

P = ParamSpec("P")
R = TypeVar("R")

_Frame = tuple[int, float, "TraceIds | None", "contextvars.Token[tuple[Any, ...]]"]


class timed:  # noqa: N801 - lower case like contextlib's context managers, used as a decorator
    """Time a block or a function and log one timer metric per exit; see the module docs.

    :param name: the metric name (``metrics.name``), non-empty.
    :param logger: a :class:`logging.Logger`, a logger name, or ``None`` for
        :data:`METRICS_LOGGER_NAME`.
    :param level: the record's level, :data:`logging.INFO` by default.
    :param labels: labels copied into every payload.
    :param message: the record's message; ``name`` by default.
    :param metric_key: the ``extra`` key; must match the handler's ``metric_key`` option.
    :param clock: monotonic nanoseconds, :func:`time.perf_counter_ns` by default.
    :param wall_clock: epoch seconds for ``start``/``end``, :func:`time.time` by default.
    :param timestamp: the record's ``created`` (the document's ``@timestamp``): ``"end"`` (the
        default) for the time the record is logged, ``"start"`` for the ``wall_clock`` reading
        taken at the start of the measure (``start`` in the payload).
    """

    __slots__ = (
        "_clock",
        "_frames",
        "_last",
        "_wall_clock",
        "labels",
        "level",
        "logger",
        "message",
        "metric_key",
        "name",
        "timestamp",
    )

    def __init__(
        self,
        name: str,
        *,
        logger: logging.Logger | str | None = None,
        level: int = logging.INFO,
        labels: Mapping[str, LabelValue] | None = None,
        message: str | None = None,
        metric_key: str = METRIC_KEY,
        clock: Callable[[], int] = time.perf_counter_ns,
        wall_clock: Callable[[], float] = time.time,
        timestamp: Literal["end", "start"] = "end",
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"timed() needs a non-empty metric name, got {name!r}")
        if timestamp not in ("end", "start"):
            raise ValueError(f'timed() timestamp must be "end" or "start", got {timestamp!r}')
        self.name = name
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or METRICS_LOGGER_NAME)
        self.logger: logging.Logger = logger
        self.level = level
        self.labels: dict[str, LabelValue] = dict(labels) if labels else {}
        self.message = message if message is not None else name
        self.metric_key = metric_key
        self.timestamp: Literal["end", "start"] = timestamp
        self._clock = clock
        self._wall_clock = wall_clock
        # One stack of (start_ns, start_wall, trace, token) per context: threads and asyncio tasks
        # each see their own, so concurrent and nested entries never overwrite each other.
        self._frames: contextvars.ContextVar[tuple[_Frame, ...]] = contextvars.ContextVar(
            f"timed[{name}]", default=()
        )
        self._last = threading.local()

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> timed:
        self._push()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        start_ns, start_wall, trace = self._pop()
        self._emit(start_ns, start_wall, exc_type, trace)

    async def __aenter__(self) -> timed:
        self._push()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        start_ns, start_wall, trace = self._pop()
        self._emit(start_ns, start_wall, exc_type, trace)

    def _push(self) -> None:
        frames = self._frames.get()
        start_wall = self._wall_clock()
        start_ns = self._clock()
        # Each frame keeps the token that restores the stack without it: resetting on exit
        # leaves the context as it was, so short-lived instances leave nothing behind.
        token = self._frames.set(frames)
        self._frames.set((*frames, (start_ns, start_wall, current_trace(), token)))

    def _pop(self) -> tuple[int, float, TraceIds | None]:
        frames = self._frames.get()
        if not frames:  # exit without a matching entry in this context
            now = self._clock()
            return now, self._wall_clock(), current_trace()
        start_ns, start_wall, trace, token = frames[-1]
        try:
            self._frames.reset(token)
        except ValueError:  # exited in another context than it was entered in
            self._frames.set(frames[:-1])
        return start_ns, start_wall, trace

    # ---------------------------------------------------------------------- decorator

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func`` (plain or ``async def``); the wrapper keeps its signature."""
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[P, Awaitable[Any]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                trace = current_trace()
                start_wall = self._wall_clock()
                start_ns = self._clock()
                try:
                    result = await async_func(*args, **kwargs)
                except BaseException:
                    self._emit(start_ns, start_wall, sys.exc_info()[0], trace)
                    raise
                self._emit(start_ns, start_wall, None, trace)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            trace = current_trace()
            start_wall = self._wall_clock()
            start_ns = self._clock()
            try:
                result = func(*args, **kwargs)
            except BaseException:
                self._emit(start_ns, start_wall, sys.exc_info()[0], trace)
                raise
            self._emit(start_ns, start_wall, None, trace)
            return result

        return wrapper

    # ------------------------------------------------------------------------ logging

    @property
    def elapsed_ns(self) -> int | None:
        """Nanoseconds of the last timed block or call that ended in this thread, if any."""
        value: int | None = getattr(self._last, "elapsed_ns", None)
        return value

    def _emit(
        self,
        start_ns: int,
        start_wall: float,
        exc_type: type[BaseException] | None,
        trace: TraceIds | None,
    ) -> None:
        duration_ns = max(0, self._clock() - start_ns)
        self._last.elapsed_ns = duration_ns
        logger = self.logger
        try:
            if not logger.isEnabledFor(self.level):
                return
            payload = timer_payload(
                self.name, duration_ns, start_wall, exc_type, self.labels, trace=trace
            )
            # stacklevel 3: the record points at the code that used timed, not at this module
            # (1 = this method, 2 = __exit__ or the wrapper, 3 = their caller).
            log_timer_record(
                logger,
                self.level,
                self.message,
                {self.metric_key: payload},
                created=start_wall if self.timestamp == "start" else None,
                stacklevel=3,
            )
        except Exception:
            # Timing must never change what the timed code does; report like Handler.handleError.
            if logging.raiseExceptions and sys.stderr is not None:
                sys.stderr.write(f"--- ecs_metrics_handler: timed({self.name!r}) could not log\n")
                traceback.print_exc(file=sys.stderr)

    def __repr__(self) -> str:
        return f"timed({self.name!r}, logger={self.logger.name!r})"


def timer_payload(
    name: str,
    duration_ns: int,
    start: float,
    exc_type: type[BaseException] | None = None,
    labels: Mapping[str, LabelValue] | None = None,
    *,
    trace: TraceIds | None = None,
) -> dict[str, Any]:
    """The payload :class:`timed` logs for a measure of ``duration_ns`` ns begun at ``start``.

    ``start`` is in epoch seconds; ``exc_type`` is the exception the block raised, if any
    (outcome ``"failure"``, or ``"unknown"`` for a ``BaseException``, and ``error_type``);
    ``trace`` the ids of the span active when the block began (``trace_id``, ``span_id``,
    ``transaction_id``).
    """
    payload: dict[str, Any] = {
        "name": name,
        "type": "timer",
        "value": duration_ns / 1e6,
        "unit": "ms",
        "duration_ns": duration_ns,
        "start": start,
        "end": start + duration_ns / 1e9,
        "outcome": "success",
        "labels": dict(labels) if labels else {},
    }
    if exc_type is not None:
        payload["outcome"] = "failure" if issubclass(exc_type, Exception) else "unknown"
        payload["error_type"] = exception_type_name(exc_type)
    if trace is not None:
        payload["trace_id"], payload["span_id"], payload["transaction_id"] = trace
    return payload


def log_timer_record(
    logger: logging.Logger,
    level: int,
    message: str,
    extra: Mapping[str, object],
    *,
    created: float | None,
    stacklevel: int,
) -> None:
    """Log ``message`` with ``extra`` through ``logger``, like ``logger.log(level, ...)``.

    ``created`` (epoch seconds) replaces the record's creation time when given; ``stacklevel``
    counts like :meth:`logging.Logger.log`'s, from the caller of this function (1: that caller).
    The caller checks :meth:`~logging.Logger.isEnabledFor` first. Raises what ``makeRecord``
    raises for an ``extra`` key that would overwrite a record attribute.
    """
    if created is None:
        logger.log(level, message, extra=extra, stacklevel=stacklevel + 1)
        return
    try:
        frame = sys._getframe(stacklevel)
        code = frame.f_code
        caller = (code.co_filename, frame.f_lineno, code.co_name)
    except ValueError:  # fewer frames than stacklevel
        caller = ("(unknown file)", 0, "(unknown function)")
    record = logger.makeRecord(
        logger.name, level, caller[0], caller[1], message, (), None, caller[2], extra
    )
    record.relativeCreated += (created - record.created) * 1000
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    logger.handle(record)
