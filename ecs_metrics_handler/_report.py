"""Rate-limited reporting of trouble through the package's own logger.

The handler never logs from an application thread; its worker threads report here. A
message of the same kind is written at most once per ``interval`` seconds, with the number
of occurrences that were folded into it, so that a long outage yields a handful of lines,
not one per batch. Records of the ``ecs_metrics_handler`` logger are never shipped by the
handler itself, so reporting cannot loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ._redact import redact_text

__all__ = ["Reporter", "package_logger"]

package_logger = logging.getLogger("ecs_metrics_handler")


class Reporter:
    """Writes warnings to ``logger``, at most one per ``kind`` every ``interval`` seconds.

    Thread-safe. ``clock`` is injectable for tests (monotonic seconds). Every argument shows
    with the URL passwords in its text redacted (``_redact.redact_text``).
    """

    def __init__(
        self,
        logger: logging.Logger = package_logger,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def warning(self, kind: str, msg: str, *args: object) -> None:
        """Report ``msg % args`` unless a ``kind`` report was made less than ``interval`` ago."""
        self._report(logging.WARNING, kind, msg, args)

    def error(self, kind: str, msg: str, *args: object, exc_info: bool = False) -> None:
        """Like :meth:`warning`, at ERROR level; ``exc_info`` adds the current traceback."""
        self._report(logging.ERROR, kind, msg, args, exc_info=exc_info)

    def info(self, msg: str, *args: object) -> None:
        """Report ``msg % args`` at INFO level, never rate-limited (rare lifecycle events)."""
        self._logger.info(msg, *_redacted(args))

    def _report(
        self, level: int, kind: str, msg: str, args: tuple[object, ...], *, exc_info: bool = False
    ) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._folded[kind] = self._folded.get(kind, 0) + 1
                return
            self._last[kind] = now
            folded = self._folded.pop(kind, 0)
        if folded:
            msg += " (%d similar reports in the last %.0f s folded into this one)"
            args = (*args, folded, self._interval)
        self._logger.log(level, msg, *_redacted(args), exc_info=exc_info)


def _redacted(args: tuple[object, ...]) -> tuple[object, ...]:
    """``args`` with the URL passwords in their text hidden; numbers stay numbers for ``%d``."""
    return tuple(
        arg if isinstance(arg, (int, float)) or arg is None else redact_text(str(arg))
        for arg in args
    )
