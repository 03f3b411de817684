"""The interpreter details the handler relies on: these fail loudly if CPython changes them."""

from __future__ import annotations

import logging
import threading

import pytest

from ecs_metrics_handler import _interpreter
from ecs_metrics_handler._interpreter import SequenceCounter, logging_lock_held


def test_this_interpreter_prints_itertools_count_as_the_counter_relies_on() -> None:
    assert _interpreter.COUNT_REPR_WORKS, "repr(itertools.count) changed: see _interpreter.py"


def test_this_interpreter_lets_the_logging_lock_be_asked_who_holds_it() -> None:
    assert _interpreter.LOCK_PROBE_WORKS, "logging._lock._is_owned is gone: see _interpreter.py"


@pytest.mark.parametrize("lockfree", [True, False])
def test_sequence_numbers_are_unique_and_last_is_the_latest_given(
    lockfree: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_interpreter, "COUNT_REPR_WORKS", lockfree)  # False: the fallback
    counter = SequenceCounter()
    assert counter.last() == 0
    seen: list[list[int]] = [[] for _ in range(4)]

    def take(out: list[int]) -> None:
        for _ in range(2000):
            out.append(counter.next())

    threads = [threading.Thread(target=take, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = sorted(n for out in seen for n in out)
    assert numbers == list(range(1, 8001))
    assert counter.last() == 8000


def test_logging_lock_held_only_by_the_thread_that_holds_it() -> None:
    assert not logging_lock_held()
    answers: list[bool] = []
    with logging._lock:  # type: ignore[attr-defined]
        assert logging_lock_held()
        other = threading.Thread(target=lambda: answers.append(logging_lock_held()))
        other.start()
        other.join()
    assert answers == [False]
    assert not logging_lock_held()
