"""The ledger decides each batch's fate once, and batching places every entry once.

Sequential calls stand for any interleaving of the three threads and ``close()``: the ledger's
methods are atomic under its lock, so an order of calls is all a race can produce.
"""

from __future__ import annotations

import logging
from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from test_document import make_builder, make_record

from ecs_metrics_handler._batching import build_batch
from ecs_metrics_handler._capture import capture
from ecs_metrics_handler._config import IndexNameFrequency, IndexTimezone
from ecs_metrics_handler._index import IndexNamer
from ecs_metrics_handler._ledger import Batch, BatchState, Ledger

BIG = 1 << 40


def make_batch(bid: int, size: int, seq: int) -> Batch:
    items = [b"%d:%d\n" % (bid, k) for k in range(size)]
    return Batch(items=items, min_seq=seq, nbytes=sum(map(len, items)))


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 4), st.booleans(), st.booleans()),
        st.tuples(st.just("send"), st.just(0), st.just(False), st.just(False)),
        st.tuples(st.just("ack"), st.integers(0, 3), st.integers(0, 4), st.just(False)),
        st.tuples(st.just("give_up"), st.integers(0, 3), st.just(False), st.just(False)),
        st.tuples(st.just("outage"), st.integers(0, 3), st.just(False), st.just(False)),
        st.tuples(st.just("spool"), st.just(0), st.just(False), st.just(False)),
        st.tuples(st.just("close"), st.just(0), st.just(False), st.just(False)),
    ),
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(ops=operations, outbox_max=st.sampled_from([1, 8, 30, BIG]))
def test_every_item_is_acknowledged_or_spooled_exactly_once_whatever_the_order(
    ops: list[tuple[str, int, object, object]], outbox_max: int
) -> None:
    ledger = Ledger(outbox_max=outbox_max, backlog_max=BIG, halted=lambda: False)
    batches: list[Batch] = []
    in_flight: list[Batch] = []
    acked: list[bytes] = []
    spooled: list[bytes] = []

    def spool_jobs(jobs: list) -> None:  # type: ignore[type-arg]
        for job in jobs:
            spooled.extend(job.items)
        ledger.spill_done(jobs)

    for op, a, b, c in ops:
        if op == "add":
            batch = make_batch(len(batches), a, seq=len(batches) * 10 + 1)
            batches.append(batch)
            ledger.add(batch, must_spill=lambda b=b: bool(b), closing=bool(c))
        elif op == "send":
            taken = ledger.next_batch(0, stop_waiting=lambda: True)
            if taken is not None:
                assert taken.state is BatchState.SENDING
                in_flight.append(taken)
        elif op == "ack" and in_flight:
            batch = in_flight[a % len(in_flight)]
            current = batch.unacknowledged()
            n = int(b) % (len(current) + 1)  # type: ignore[call-overload]
            if ledger.hand_over(batch, current[n:]):
                acked.extend(current[:n])
                if n == len(current):
                    ledger.settle(batch)
                    in_flight.remove(batch)
            else:
                in_flight.remove(batch)  # claimed meanwhile: this answer does not count
        elif op in ("give_up", "outage") and in_flight:
            batch = in_flight.pop(a % len(in_flight))
            if op == "give_up":
                ledger.give_up(batch, batch.unacknowledged(), "x")
            else:
                ledger.give_up_outage(batch, batch.unacknowledged(), "x", limit=20)
        elif op == "spool":
            spool_jobs(ledger.take_jobs(20, 0, stop_waiting=lambda: True))
        elif op == "close":
            spool_jobs(ledger.take_all("closing"))
            in_flight.clear()
    spool_jobs(ledger.take_all("closing"))

    everything = [item for batch in batches for item in batch.items]
    assert Counter(acked + spooled) == Counter(everything)
    assert all(batch.state is BatchState.SETTLED for batch in batches)
    assert ledger.pending_items() == 0
    with ledger.cond:
        assert ledger.settled_through(BIG, lambda: None)


def test_flush_waits_for_a_batch_being_built_for_a_queued_entry_and_for_dead_letters() -> None:
    ledger = Ledger(outbox_max=BIG, backlog_max=BIG, halted=lambda: False)
    with ledger.cond:
        assert ledger.settled_through(5, lambda: None)
        assert not ledger.settled_through(5, lambda: 5)  # still in the handler's queue
        assert ledger.settled_through(4, lambda: 5)
    ledger.building(3)
    with ledger.cond:
        assert not ledger.settled_through(5, lambda: None)
    ledger.add_letters([], min_seq=3)
    ledger.add(make_batch(0, 2, seq=4), must_spill=lambda: False, closing=False)
    with ledger.cond:
        assert ledger.settled_through(3, lambda: None)  # the empty letters job
        assert not ledger.settled_through(4, lambda: None)
    batch = ledger.next_batch(0, stop_waiting=lambda: True)
    assert batch is not None and ledger.hand_over(batch, [])
    ledger.settle(batch)
    with ledger.cond:
        assert ledger.settled_through(100, lambda: None)


def test_a_claim_wins_once_a_late_sender_answer_is_refused() -> None:
    ledger = Ledger(outbox_max=BIG, backlog_max=BIG, halted=lambda: False)
    ledger.add(make_batch(0, 3, seq=1), must_spill=lambda: False, closing=False)
    batch = ledger.next_batch(0, stop_waiting=lambda: True)
    assert batch is not None and ledger.hand_over(batch, batch.items[1:])
    (job,) = ledger.take_all("closing")
    assert job.items == batch.items[1:]  # only what was not acknowledged
    assert not ledger.hand_over(batch, [])  # the sender's late answer
    assert not ledger.give_up(batch, batch.items, "late")
    ledger.settle(batch)  # a no-op: the spill job settles it
    assert batch.state is BatchState.SPILLING
    ledger.spill_done([job])
    assert batch.state is BatchState.SETTLED


# -- batching ---------------------------------------------------------------------------------

payloads = st.one_of(
    st.builds(
        lambda v: {"name": "m", "value": v},
        st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=3)),
    ),
    st.just({"value": 1}),  # no name
    st.just({"name": "", "value": 1}),
    st.just("not a mapping"),
    st.dictionaries(st.integers(), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(plist=st.lists(payloads, max_size=20))
def test_each_entry_becomes_one_document_or_one_reject(plist: list[object]) -> None:
    builder = make_builder()
    namer = IndexNamer("m", IndexNameFrequency.DAILY, IndexTimezone.UTC)
    entries = [
        capture(make_record("m", level=logging.INFO), seq, payload, "m")
        for seq, payload in enumerate(plist, start=7)
    ]
    batch, rejected = build_batch(entries, builder.build_source, namer, "p-")
    items = batch.items if batch is not None else []
    ids = [orjson.loads(item.split(b"\n", 1)[0])["create"]["_id"] for item in items]
    assert len(ids) + len(rejected) == len(entries)
    assert len(set(ids)) == len(ids)
    assert set(ids) <= {f"p-{e.seq:x}" for e in entries}
    if batch is not None:
        assert batch.min_seq == min(e.seq for e in entries)
        assert batch.nbytes == sum(map(len, items))
    for letter in rejected:
        assert letter.to_json("2026-01-01T00:00:00Z")  # always serialisable
