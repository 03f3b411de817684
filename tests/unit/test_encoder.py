"""Golden tests: the batcher's fast path writes exactly the bytes of the reference builder.

The reference is ``bulk_pair(namer(created), id, builder.build_source(...))``: the document
built as a dict by :class:`DocumentBuilder` and serialised whole. For every kind of record
(metrics of each type, timers that failed, labels, trace ids, log events, odd strings,
additional fields, data streams, daily and hourly indices), :class:`BulkEncoder` must give the
same bytes, or decline (``None``) so that the reference path is used.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_metrics_handler._batching import build_batch
from ecs_metrics_handler._capture import Entry, capture
from ecs_metrics_handler._config import HandlerOptions
from ecs_metrics_handler._document import DocumentBuilder
from ecs_metrics_handler._encoder import BulkEncoder
from ecs_metrics_handler._enums import IndexNameFrequency
from ecs_metrics_handler._index import IndexNamer
from ecs_metrics_handler._serialize import bulk_pair
from ecs_metrics_handler.exceptions import InvalidMetricError

PREFIX = "Ab-_9xYz"
CREATED = 1_764_356_616.123


def make_builder(**options: Any) -> DocumentBuilder:
    options.setdefault("service_name", "shop")
    return DocumentBuilder(
        HandlerOptions.from_kwargs(**options), environ={}, hostname="web-1", pid=99
    )


def make_entry(
    payload: Any,
    *,
    msg: Any = "db query",
    created: float = CREATED,
    seq: int = 7,
    name: str = "app.db",
    level: int = logging.INFO,
    func: str | None = "query",
    thread: int | None = 140001,
    exc_info: Any = None,
    trace: tuple[str, str | None, str | None] | None = None,
) -> Entry:
    record = logging.LogRecord(name, level, "/srv/app/db.py", 42, msg, (), exc_info, func=func)
    record.created = created
    record.process = 4321
    record.thread = thread
    record.threadName = "worker-1"
    entry = capture(record, seq, payload, record.getMessage() if msg is not None else msg)
    entry.trace = trace
    return entry


def reference(builder: DocumentBuilder, namer: IndexNamer, entry: Entry) -> bytes:
    source = builder.build_source(entry.source, entry.message, entry.payload)
    return bulk_pair(namer(entry.created), f"{PREFIX}{entry.seq:x}", source)


def assert_same(builder: DocumentBuilder, namer: IndexNamer, entry: Entry) -> bytes:
    encoder = BulkEncoder(builder, namer, PREFIX)
    fast = encoder.encode(entry)
    assert fast is not None, "the fast path declined a record it covers"
    assert fast == reference(builder, namer, entry)
    return fast


DAILY = IndexNamer("metrics", IndexNameFrequency.DAILY)

CASES: dict[str, dict[str, Any]] = {
    "gauge": {"name": "db.query", "value": 12.5, "unit": "ms"},
    "int value": {"name": "queue.depth", "value": 17, "type": "gauge"},
    "counter": {"name": "orders.placed", "value": 1, "type": "COUNTER"},
    "no value": {"name": "heartbeat"},
    "labels": {"name": "m", "value": 1.0, "labels": {"table": "orders", "n": 3, "ok": True}},
    "timer": {"name": "t", "type": "timer", "duration_ns": 1_500_000_000, "outcome": "success"},
    "timer with bounds": {
        "name": "t",
        "value": 2.5,
        "unit": "ms",
        "duration_ns": 2_500_000,
        "start": CREATED - 0.0025,
        "end": CREATED,
        "outcome": "failure",
        "error_type": "ValueError",
    },
    "timer start only": {"name": "t", "duration_ns": 999, "start": CREATED - 10},
    "unicode": {"name": "größe.✓", "value": -0.0, "unit": "µs", "labels": {"ключ": "值"}},
    "escapes": {"name": 'a"b\\c\n', "value": 1e300, "unit": "\t"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_of_metric_is_byte_identical(case: str) -> None:
    assert_same(make_builder(), DAILY, make_entry(dict(CASES[case])))


def test_log_events_trace_ids_and_call_sites_are_byte_identical() -> None:
    builder = make_builder(ship_log_records=True)
    assert_same(builder, DAILY, make_entry(None, msg="a plain line"))
    assert_same(builder, DAILY, make_entry({"name": "m"}, trace=("t" * 32, "s" * 16, "x" * 16)))
    assert_same(builder, DAILY, make_entry({"name": "m"}, trace=("t" * 32, None, None)))
    assert_same(builder, DAILY, make_entry({"name": "m"}, func=None, thread=None))
    assert_same(builder, DAILY, make_entry({"name": "m"}, level=logging.CRITICAL, name="x.y"))


@pytest.mark.parametrize(
    "options",
    [
        {"service_version": "1.2.3", "service_environment": "prod"},
        {"es_additional_fields": {"host": {"id": "h-1"}, "cloud": {"region": "eu"}}},
        {"data_stream": "metrics-shop-prod"},
        {"index_name_frequency": "WEEKLY", "index_name_timezone": "local"},
        {"index_name_frequency": "NEVER"},
    ],
    ids=",".join,
)
def test_builder_and_namer_options_are_byte_identical(options: dict[str, Any]) -> None:
    builder = make_builder(**options)
    o = builder.options
    namer = IndexNamer(
        o.es_index_name, o.index_name_frequency, o.index_name_timezone, o.data_stream
    )
    for created in (CREATED, CREATED + 3600.5, 86_399.9996, 0.0):
        assert_same(builder, namer, make_entry({"name": "m", "value": 2}, created=created))


def test_what_the_fast_path_does_not_cover_is_declined_not_guessed() -> None:
    builder = make_builder()
    encoder = BulkEncoder(builder, DAILY, PREFIX)
    try:
        raise KeyError("boom")
    except KeyError:
        import sys

        failed = make_entry({"name": "m"}, exc_info=sys.exc_info())
    assert encoder.encode(failed) is None  # exceptions: error.* comes from the builder
    odd = make_entry({"name": "m"})
    odd.message = 42  # not a string
    assert encoder.encode(odd) is None
    surrogate = make_entry({"name": "m"}, msg="lone \udc80")
    assert encoder.encode(surrogate) is None  # orjson refuses: the reference sanitises
    big = make_entry({"name": "m", "labels": {"n": 1 << 70}})
    assert encoder.encode(big) in (None, reference(builder, DAILY, big))
    with pytest.raises(InvalidMetricError):
        encoder.encode(make_entry({"value": 1}))  # the same refusal as the builder's


@pytest.mark.parametrize(
    "options",
    [
        {"es_additional_fields": {"labels": {"team": "a"}}},  # under a per-document key
        {"es_additional_fields_in_env": {"host": {"id": "HOST_ID"}}},
    ],
)
def test_builders_the_fast_path_cannot_follow_disable_it(options: dict[str, Any]) -> None:
    encoder = BulkEncoder(make_builder(**options), DAILY, PREFIX)
    assert not encoder.enabled
    assert encoder.encode(make_entry({"name": "m"})) is None

    class Custom(DocumentBuilder):
        def build(self, record: Any, message: str, payload: object | None) -> dict[str, Any]:
            return super().build(record, message, payload)

    custom = Custom(HandlerOptions.from_kwargs(), environ={}, hostname="h", pid=1)
    assert not BulkEncoder(custom, DAILY, PREFIX).enabled


def test_build_batch_gives_the_same_batch_with_and_without_the_encoder() -> None:
    builder = make_builder()
    entries = [make_entry(dict(CASES[c]), seq=n) for n, c in enumerate(sorted(CASES))]
    entries.append(make_entry({"value": 1}, seq=99))  # invalid: rejected by both
    encoder = BulkEncoder(builder, DAILY, PREFIX)
    fast, fast_rejects = build_batch(entries, builder.build_source, DAILY, PREFIX, encoder.encode)
    slow, slow_rejects = build_batch(entries, builder.build_source, DAILY, PREFIX)
    assert fast is not None and slow is not None
    assert fast.items == slow.items
    assert [r.reason for r in fast_rejects] == [r.reason for r in slow_rejects]


finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(st.characters(codec="utf-8"), max_size=12)
label_values = st.one_of(text, st.integers(-(2**63), 2**63 - 1), finite, st.booleans())
payloads = st.fixed_dictionaries(
    {"name": text.filter(lambda s: s.strip())},
    optional={
        "value": st.one_of(finite, st.integers(-(2**63), 2**63 - 1)),
        "unit": st.one_of(st.none(), text),
        "type": st.sampled_from(["gauge", "counter", "timer", "Histogram", "summary"]),
        "labels": st.dictionaries(text, label_values, max_size=4),
        "duration_ns": st.integers(0, 10**15),
        "start": st.floats(0, 4e9),
        "end": st.floats(0, 4e9),
        "outcome": st.sampled_from(["success", "failure", "unknown"]),
        "error_type": text,
    },
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    payload=payloads,
    msg=text,
    created=st.floats(0, 4e9),
    seq=st.integers(0, 2**40),
    func=st.one_of(st.none(), text),
    trace=st.one_of(
        st.none(),
        st.tuples(text, st.one_of(st.none(), text), st.one_of(st.none(), text)),
    ),
)
def test_any_metric_is_byte_identical_or_refused_alike(
    payload: dict[str, Any],
    msg: str,
    created: float,
    seq: int,
    func: str | None,
    trace: tuple[str, str | None, str | None] | None,
) -> None:
    builder = make_builder()
    entry = make_entry(payload, msg=msg, created=created, seq=seq, func=func, trace=trace)
    encoder = BulkEncoder(builder, DAILY, PREFIX)
    try:
        want: bytes | None = reference(builder, DAILY, entry)
    except InvalidMetricError:
        want = None
    if want is None:
        with pytest.raises(InvalidMetricError):
            encoder.encode(entry)
        return
    # The strings here are valid UTF-8 (no lone surrogates), so the fast path must answer.
    assert encoder.encode(entry) == want
