"""What the handler keeps of a record: the same document as the live record, nothing more."""

from __future__ import annotations

import gc
import logging
import sys
import weakref
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_document import make_builder, make_record

from ecs_metrics_handler import DocumentBuilder, ElasticECSHandler
from ecs_metrics_handler._capture import Entry, capture


def _without_ids(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc.pop("agent")  # its ephemeral id differs per builder
    return doc


def _raised(exc: BaseException) -> Any:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


@given(
    name=st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]),
    created=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    with_error=st.booleans(),
    exc_text=st.one_of(st.none(), st.text(max_size=30)),
    payload=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"name": st.text(min_size=1, max_size=10).filter(str.strip)},
            optional={
                "value": st.floats(allow_nan=False, allow_infinity=False),
                "unit": st.sampled_from(["ms", "s", "bytes"]),
                "labels": st.dictionaries(
                    st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=3
                ),
            },
        ),
    ),
)
def test_an_entry_builds_the_document_its_record_builds(
    name: str,
    level: int,
    created: float,
    with_error: bool,
    exc_text: str | None,
    payload: dict[str, Any] | None,
) -> None:
    builder = make_builder()
    exc_info = _raised(KeyError("missing")) if with_error else None
    record = make_record("m", level=level, name=name, exc_info=exc_info, created=created)
    record.exc_text = exc_text
    entry = capture(record, 7, payload, "m")
    assert entry.record is None and entry.exc_info is None
    assert builder.build(entry, "m", payload) == builder.build(record, "m", payload)
    assert builder.build_source(entry, "m", payload) == builder.build_source(record, "m", payload)


def test_an_entry_keeps_no_reference_to_the_record_or_its_traceback() -> None:
    """A queued metric must not keep a failing request's frames (and their locals) alive."""

    class Big:
        pass

    def fail() -> None:
        big = Big()  # noqa: F841 - a local of the failing frame
        raise RuntimeError("boom")

    try:
        fail()
    except RuntimeError:
        record = make_record("x", exc_info=sys.exc_info())
    frame_local = [o for o in gc.get_objects() if type(o) is Big]
    assert len(frame_local) == 1
    watch_record = weakref.ref(record)
    watch_local = weakref.ref(frame_local[0])
    del frame_local
    entry = capture(record, 1, None, "x")
    del record
    gc.collect()
    assert watch_record() is None
    assert watch_local() is None
    assert entry.error == ("RuntimeError", "boom")
    assert entry.exc_text is not None and "in fail" in entry.exc_text


def test_file_names_are_shared_between_entries() -> None:
    first = capture(make_record(), 1, None, "a")
    second = capture(make_record(), 2, None, "b")
    assert first.filename == "db.py"
    assert first.filename is second.filename


def test_an_entry_has_no_instance_dict() -> None:
    """Slots only: the point of an entry is its size."""
    entry = capture(make_record(), 1, None, "a")
    with pytest.raises(AttributeError):
        entry.__dict__  # noqa: B018
    assert isinstance(entry, Entry)


class _TenantBuilder(DocumentBuilder):
    def build(self, record: Any, message: str, payload: object | None) -> dict[str, Any]:
        doc = super().build(record, message, payload)
        doc["tenant"] = getattr(record, "tenant", "none")
        return doc


class _TenantHandler(ElasticECSHandler):
    def make_document_builder(self) -> DocumentBuilder:
        return _TenantBuilder(self.options)


def test_a_builder_that_overrides_build_receives_the_live_record() -> None:
    """Its build() may read any extra attribute, so the handler keeps the whole record."""
    handler = _TenantHandler(hosts=["http://127.0.0.1:9"], es_index_name="t")
    plain = ElasticECSHandler(hosts=["http://127.0.0.1:9"], es_index_name="t")
    try:
        assert _TenantBuilder(handler.options).needs_live_record
        assert not DocumentBuilder(plain.options).needs_live_record
        for h in (handler, plain):
            h._worker.start = lambda: None  # type: ignore[method-assign]  # capture only
            h._worker._started = True
            record = make_record("m")
            record.tenant = "acme"
            record.metric = {"name": "x", "value": 1}
            h.handle(record)
        kept, compact = handler.buffer[0], plain.buffer[0]
        assert kept.record is not None and kept.source is kept.record
        assert compact.record is None and compact.source is compact
        builder = handler.make_document_builder()
        assert builder.build(kept.source, kept.message, kept.payload)["tenant"] == "acme"
        assert "tenant" not in _without_ids(
            plain.make_document_builder().build(compact.source, compact.message, compact.payload)
        )
    finally:
        for h in (handler, plain):
            h._worker._started = False
            h.buffer.clear()
            h.close()
