"""The two interpreter details the handler relies on, each behind one helper with a fallback.

* :class:`SequenceCounter` gives records their sequence numbers without a lock: ``next()`` on
  an ``itertools.count`` is one atomic C call, and the latest number given is read back from
  the counter's ``repr`` (``"count(N)"``), so that ``emit()`` never takes a lock. If an
  interpreter prints the counter differently (checked once at import,
  :data:`COUNT_REPR_WORKS`), a lock-guarded counter is used instead.
* :func:`logging_lock_held` says whether this thread holds ``logging``'s module lock (held
  by ``dictConfig`` and ``logging.shutdown`` while they close handlers); ``flush()`` must not
  wait for the worker then, since the worker may need that lock to log. It asks the lock
  (``RLock._is_owned``); where that method does not exist (:data:`LOCK_PROBE_WORKS` false) it
  answers False, and such a flush waits up to its timeout instead of returning at once.

``tests/unit/test_interpreter.py`` fails when either detail changes, so the fallback is
never taken silently on a supported interpreter.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable

__all__ = ["COUNT_REPR_WORKS", "LOCK_PROBE_WORKS", "SequenceCounter", "logging_lock_held"]


def _count_repr_works() -> bool:
    probe = itertools.count(41)
    next(probe)
    return repr(probe) == "count(42)"


#: whether ``repr(itertools.count)`` is ``"count(N)"`` with N the next value, on this interpreter
COUNT_REPR_WORKS = _count_repr_works()


class SequenceCounter:
    """Sequence numbers 1, 2, 3... given out by :meth:`next`; :meth:`last` is the latest given.

    Thread-safe. Without a lock where :data:`COUNT_REPR_WORKS` (``next`` is one C call),
    with one otherwise.
    """

    def __init__(self) -> None:
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self._given = 0
        self.next: Callable[[], int] = (
            self._count.__next__ if COUNT_REPR_WORKS else self._next_locked
        )

    def last(self) -> int:
        """The number given by the latest :meth:`next` (0 before the first)."""
        if COUNT_REPR_WORKS:
            return int(repr(self._count)[6:-1]) - 1
        return self._given

    def _next_locked(self) -> int:
        with self._lock:
            self._given += 1
            return self._given


def _lock_probe() -> Callable[[], bool] | None:
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    return is_owned if callable(is_owned) else None


_IS_OWNED = _lock_probe()

#: whether ``logging._lock._is_owned()`` exists on this interpreter
LOCK_PROBE_WORKS = _IS_OWNED is not None


def logging_lock_held() -> bool:
    """Whether the calling thread holds ``logging``'s module lock (False when unknowable)."""
    return bool(_IS_OWNED is not None and _IS_OWNED())
