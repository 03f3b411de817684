"""The live path's decisions without threads or the wall clock: deliver() and the breaker.

A scripted cluster answers each bulk request with the next reaction of its script (as a real
answer body, judged by the shipper's own ``judge``); a fake clock moves only when deliver()
waits. Real nodes get the same faults in tests/integration.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_metrics_handler._breaker import OutageBreaker
from ecs_metrics_handler._bulk_outcome import BulkResult, ShipError, judge
from ecs_metrics_handler._delivery import (
    CLOSING,
    REFUSED,
    UNAVAILABLE,
    Delivery,
    RetryPolicy,
    deliver,
)

REACTIONS = [
    "ok",
    "reset",  # connection reset: retryable, nothing indexed
    "hang",  # request timeout: retryable; the cluster may have indexed everything
    "500",
    "401",
    "403",
    "400",
    "413",
    "429-odd",  # odd positions answered 429
    "mapping-first",  # the first item refused with a mapping error
    "truncated",  # an answer with half the items (a proxy)
    "empty",  # 200 {} (not a bulk answer)
]


def pair(i: int) -> bytes:
    return orjson.dumps({"create": {"_index": "m", "_id": f"id{i}"}}) + b'\n{"n":%d}\n' % i


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


class ScriptedCluster:
    """Reacts to each request with the next reaction; records each document it indexed."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.indexed: Counter[bytes] = Counter()
        self.sent_after_ack: list[bytes] = []
        self.requests = 0

    def bulk(self, body: bytes, count: int) -> BulkResult:
        self.requests += 1
        lines = body.split(b"\n")[:-1]
        items = [lines[i] + b"\n" + lines[i + 1] + b"\n" for i in range(0, len(lines), 2)]
        assert len(items) == count
        step = self.script.pop(0) if self.script else "ok"
        if step == "reset":
            raise ShipError("connection reset", retryable=True)
        if step == "500":
            raise ShipError("HTTP 500", retryable=True, status=500)
        if step in ("401", "403", "400", "413"):
            raise ShipError(f"HTTP {step}", retryable=False, status=int(step))
        if step == "hang":
            for item in items:  # indexed, but the answer never came back
                self.indexed[item] += 1
            raise ShipError("read timed out", retryable=True)
        if step == "empty":
            return judge({}, count)
        answers: list[dict[str, Any]] = []
        for pos, item in enumerate(items):
            if step == "429-odd" and pos % 2:
                answers.append({"create": {"status": 429}})
            elif step == "mapping-first" and pos == 0:
                answers.append({"create": {"status": 400, "error": {"type": "mapper"}}})
            elif self.indexed[item]:
                answers.append({"create": {"status": 409}})
            else:
                self.indexed[item] += 1
                answers.append({"create": {"status": 201}})
        if step == "truncated":
            answers = answers[: len(answers) // 2]
        return judge({"errors": True, "items": answers}, count)

    def put_templates(self, templates: object) -> None:
        raise NotImplementedError

    def check(self) -> bool:
        return True

    def close(self) -> None:
        pass


def run(
    items: list[bytes],
    cluster: ScriptedCluster,
    *,
    retries: int = 3,
    breaker: OutageBreaker | None = None,
    clock: FakeClock | None = None,
    taken_after: int | None = None,
) -> tuple[Delivery, list[list[bytes]]]:
    clock = clock or FakeClock()
    breaker = breaker or OutageBreaker(0.5, 30.0, clock)
    handed: list[list[bytes]] = []

    def hand_over(unacked: list[bytes]) -> bool:
        handed.append(unacked)
        return taken_after is None or len(handed) <= taken_after

    out = deliver(
        items,
        cluster,
        policy=RetryPolicy(retries, lambda attempt: 0.5 * 2 ** (attempt - 1)),
        breaker=breaker,
        hand_over=hand_over,
        wait=clock.wait,
        halted=lambda: False,
    )
    return out, handed


# -- the breaker -------------------------------------------------------------------------------


def test_breaker_opens_doubles_its_interval_up_to_the_cap_and_closes_on_an_answer() -> None:
    clock = FakeClock()
    breaker = OutageBreaker(1.0, 4.0, clock)
    assert breaker.allows_request() and breaker.seconds_to_probe() == 0
    breaker.failed()
    assert breaker.down and not breaker.allows_request() and breaker.seconds_to_probe() == 1.0
    clock.now += 1.0
    assert breaker.allows_request()
    intervals = []
    for _ in range(4):
        breaker.failed()
        intervals.append(breaker.next_probe - clock.now)
    assert intervals == [2.0, 4.0, 4.0, 4.0]
    assert breaker.answered() is True
    assert not breaker.down and breaker.answered() is False
    breaker.failed()
    assert breaker.next_probe - clock.now == 1.0  # the interval starts over


# -- deliver ----------------------------------------------------------------------------------


def test_all_acknowledged_first_time() -> None:
    items = [pair(i) for i in range(5)]
    cluster = ScriptedCluster([])
    out, handed = run(items, cluster)
    assert (out.done, out.left, out.letters, out.retried) == (5, [], [], 0)
    assert handed == [items, []]
    assert cluster.requests == 1


def test_items_answered_429_are_retried_alone_after_a_backoff() -> None:
    items = [pair(i) for i in range(4)]
    cluster = ScriptedCluster(["429-odd"])
    clock = FakeClock()
    out, handed = run(items, cluster, clock=clock)
    assert out.done == 4 and out.retried == 2 and not out.left
    assert handed[1] == [items[1], items[3]]
    assert clock.waits == [0.5]


def test_retries_exhausted_leave_the_rest_for_the_spool_and_open_the_breaker() -> None:
    items = [pair(i) for i in range(3)]
    clock = FakeClock()
    breaker = OutageBreaker(0.5, 30.0, clock)
    out, _ = run(items, ScriptedCluster(["reset"] * 10), retries=2, breaker=breaker, clock=clock)
    assert out.left == items and out.reason == UNAVAILABLE and out.gave_up == "connection reset"
    assert clock.waits == [0.5, 1.0]
    assert breaker.down


def test_after_the_breaker_opened_a_batch_is_one_probe_without_retries() -> None:
    clock = FakeClock()
    breaker = OutageBreaker(0.5, 30.0, clock)
    breaker.failed()
    items = [pair(0)]
    out, _ = run(items, ScriptedCluster([]), breaker=breaker, clock=clock)
    assert out.outage and out.left == items and out.done == 0  # no probe due yet
    clock.now = breaker.next_probe
    cluster = ScriptedCluster(["reset"])
    out, _ = run(items, cluster, breaker=breaker, clock=clock)
    assert cluster.requests == 1 and out.left == items and not clock.waits
    clock.now = breaker.next_probe
    out, _ = run(items, ScriptedCluster([]), breaker=breaker, clock=clock)
    assert out.done == 1 and out.recovered and not breaker.down


@pytest.mark.parametrize("status", ["401", "403", "400", "413"])
def test_a_request_refused_as_a_whole_is_not_retried(status: str) -> None:
    items = [pair(i) for i in range(2)]
    cluster = ScriptedCluster([status])
    out, _ = run(items, cluster)
    assert cluster.requests == 1 and out.left == items and out.reason == REFUSED
    assert out.refusal == f"HTTP {status}"


def test_a_request_too_large_goes_to_the_folder_without_opening_the_breaker() -> None:
    """413 is about this request, not the cluster: the folder's replay splits it, and the
    batches behind it are still sent live."""
    clock = FakeClock()
    breaker = OutageBreaker(0.5, 30.0, clock)
    items = [pair(i) for i in range(2)]
    out, _ = run(items, ScriptedCluster(["413"]), breaker=breaker, clock=clock)
    assert out.left == items and out.reason == REFUSED and not breaker.down
    out, _ = run(items, ScriptedCluster(["401"]), breaker=breaker, clock=clock)
    assert breaker.down  # a refused login is: stop sending everything


def test_a_malformed_answer_acknowledges_nothing() -> None:
    items = [pair(i) for i in range(4)]
    cluster = ScriptedCluster(["empty", "truncated"])
    out, handed = run(items, cluster)
    # before each request, after each answer: 200 {} acknowledged nothing, and an answer
    # with half the items acknowledged those and left the rest for the next retry
    assert handed == [items, items, items, items[2:], items[2:], []]
    assert out.done == 4 and not out.left


def test_refused_items_are_dead_letters_with_the_cluster_reason() -> None:
    items = [pair(i) for i in range(3)]
    out, _ = run(items, ScriptedCluster(["mapping-first"]))
    assert out.done == 2 and [letter.item for letter in out.letters] == [items[0]]
    assert out.letters[0].status == 400


def test_an_answer_after_close_took_the_batch_is_not_counted() -> None:
    items = [pair(i) for i in range(3)]
    out, _ = run(items, ScriptedCluster([]), taken_after=1)
    assert out.taken and out.done == 0 and not out.left


def test_closing_sends_nothing_and_leaves_everything() -> None:
    items = [pair(i) for i in range(3)]
    cluster = ScriptedCluster([])
    clock = FakeClock()
    out = deliver(
        items,
        cluster,
        policy=RetryPolicy(3, lambda a: 1.0),
        breaker=OutageBreaker(0.5, 30.0, clock),
        hand_over=lambda unacked: True,
        wait=clock.wait,
        halted=lambda: True,
    )
    assert cluster.requests == 0 and out.left == items and out.reason == CLOSING


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 12),
    retries=st.integers(0, 4),
    script=st.lists(st.sampled_from(REACTIONS), max_size=10),
    down_first=st.booleans(),
    taken_after=st.one_of(st.none(), st.integers(1, 6)),
)
def test_any_fault_schedule_places_every_item_once_and_never_resends_an_acknowledged_one(
    n: int, retries: int, script: list[str], down_first: bool, taken_after: int | None
) -> None:
    items = [pair(i) for i in range(n)]
    cluster = ScriptedCluster(script)
    clock = FakeClock()
    breaker = OutageBreaker(0.5, 30.0, clock)
    if down_first:
        breaker.failed()
        clock.now = breaker.next_probe
    out, handed = run(
        items, cluster, retries=retries, breaker=breaker, clock=clock, taken_after=taken_after
    )
    assert cluster.requests <= retries + 1
    assert len(clock.waits) <= retries
    # What each answer settled (acknowledged or refused), as the worker learns it from
    # hand_over; answers after close() took the batch (hand_over refused) do not count.
    accepted = handed if taken_after is None else handed[:taken_after]
    gone: list[bytes] = []
    for before, after in pairwise(accepted):
        gone.extend(item for item in before if item not in after)
    letters = [letter.item for letter in out.letters]
    assert set(letters) <= set(gone)
    assert out.done == len(gone) - len(letters)
    if out.taken:
        assert not out.left
        assert sorted(gone + accepted[-1]) == sorted(items)  # close() owns the rest
    else:
        assert sorted(gone + out.left) == sorted(items)
        assert out.reason in ("", UNAVAILABLE, REFUSED)
        assert bool(out.left) == bool(out.reason)
    # Nothing acknowledged or refused is ever sent again.
    for before, after in pairwise(handed):
        assert set(after) <= set(before)
