"""send_items: the one path that sends stored documents again, against a scripted cluster."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_metrics_handler._bulk_outcome import BulkResult, ShipError
from ecs_metrics_handler._resend import send_items


def _pair(i: int) -> bytes:
    return orjson.dumps({"create": {"_index": "m", "_id": f"id{i}"}}) + b'\n{"n":%d}\n' % i


Answer = Callable[[list[bytes]], BulkResult]


class ScriptedCluster:
    """Answers each bulk request with the next scripted reaction; records what it indexed."""

    def __init__(self, script: list[str], *, max_docs: int | None = None) -> None:
        self.script = list(script)
        self.max_docs = max_docs
        self.indexed: list[bytes] = []
        self.requests = 0

    def bulk(self, body: bytes, count: int) -> BulkResult:
        self.requests += 1
        lines = body.split(b"\n")[:-1]
        items = [lines[i] + b"\n" + lines[i + 1] + b"\n" for i in range(0, len(lines), 2)]
        assert len(items) == count
        if self.max_docs is not None and count > self.max_docs:
            raise ShipError("HTTP 413: too large", retryable=False, status=413)
        step = self.script.pop(0) if self.script else "ok"
        if step == "down":
            raise ShipError("cluster unreachable", retryable=True)
        if step in ("400", "401", "403"):
            raise ShipError(f"HTTP {step}: refused", retryable=False, status=int(step))
        result = BulkResult()
        for pos, item in enumerate(items):
            if step == "429" and pos % 2:
                result.retry.append(pos)
            elif step == "mapping" and pos == 0:
                result.dead.append((pos, 400, {"type": "mapper_parsing_exception"}))
            elif item in self.indexed:
                result.done += 1
                result.duplicates += 1
            else:
                self.indexed.append(item)
                result.done += 1
        return result

    def put_templates(self, templates: object) -> None:
        raise NotImplementedError

    def check(self) -> bool:
        return True

    def close(self) -> None:
        pass


def test_everything_acknowledged_in_chunks() -> None:
    items = [_pair(i) for i in range(10)]
    cluster = ScriptedCluster([])
    out = send_items(cluster, items, 4)
    assert (out.done, out.left, out.refused, out.letters, out.stopped) == (10, [], [], [], None)
    assert cluster.requests == 3 and cluster.indexed == items


def test_a_request_too_large_is_split_down_to_what_the_cluster_takes() -> None:
    items = [_pair(i) for i in range(8)]
    cluster = ScriptedCluster([], max_docs=3)
    out = send_items(cluster, items, 8)
    assert out.done == 8 and not out.left and not out.letters
    assert cluster.indexed == items  # order kept through the splits


def test_a_single_document_too_large_is_a_dead_letter_not_a_stall() -> None:
    items = [_pair(i) for i in range(3)]
    out = send_items(ScriptedCluster([], max_docs=0), items, 3)
    assert out.done == 0 and not out.left and out.stopped is None
    assert [letter.status for letter in out.letters] == [413, 413, 413]


def test_a_request_refused_as_a_whole_is_quarantined_and_the_rest_still_goes() -> None:
    items = [_pair(i) for i in range(6)]
    cluster = ScriptedCluster(["ok", "400", "ok"])
    out = send_items(cluster, items, 2)
    assert out.refused == items[2:4] and "400" in out.refused_reason
    assert out.done == 4 and not out.left and out.stopped is None and out.answered


@pytest.mark.parametrize("status", ["401", "403"])
def test_refused_credentials_leave_the_documents_for_later_not_in_quarantine(status: str) -> None:
    items = [_pair(i) for i in range(6)]
    cluster = ScriptedCluster(["ok", status])
    out = send_items(cluster, items, 2)
    assert out.done == 2 and out.left == items[2:] and not out.refused
    assert out.stopped is not None and status in out.stopped
    assert cluster.requests == 2


def test_an_unreachable_cluster_leaves_the_chunk_and_everything_after_it() -> None:
    items = [_pair(i) for i in range(6)]
    cluster = ScriptedCluster(["ok", "down"])
    out = send_items(cluster, items, 2)
    assert out.done == 2 and out.left == items[2:] and out.stopped == "cluster unreachable"
    assert cluster.requests == 2


def test_items_answered_429_are_left_and_sending_stops() -> None:
    items = [_pair(i) for i in range(6)]
    out = send_items(ScriptedCluster(["429"]), items, 4)
    assert out.done == 2 and out.left == [items[1], items[3], items[4], items[5]]


def test_halted_sends_nothing_more() -> None:
    items = [_pair(i) for i in range(4)]
    out = send_items(ScriptedCluster([]), items, 2, halted=lambda: True)
    assert out.left == items and out.done == 0


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 40),
    chunk=st.integers(1, 16),
    max_docs=st.one_of(st.none(), st.integers(0, 8)),
    script=st.lists(st.sampled_from(["ok", "down", "400", "429", "mapping"]), max_size=12),
)
def test_every_document_ends_in_exactly_one_place(
    n: int, chunk: int, max_docs: int | None, script: list[str]
) -> None:
    """Whatever the cluster answers: acknowledged + dead + quarantined + left == sent, each
    document in one place only, and nothing indexed twice across a retry of what is left."""
    items = [_pair(i) for i in range(n)]
    cluster = ScriptedCluster(script, max_docs=max_docs)
    out = send_items(cluster, items, chunk)
    placed = out.done + len(out.letters) + len(out.refused) + len(out.left)
    assert placed == n
    elsewhere = [letter.item for letter in out.letters] + out.refused + out.left
    assert len(set(elsewhere)) == len(elsewhere)
    assert not set(elsewhere) & set(cluster.indexed) - set(out.left)
    again = send_items(cluster, out.left, chunk)
    assert len(cluster.indexed) == len(set(cluster.indexed))
    assert again.done + len(again.letters) + len(again.refused) + len(again.left) == len(out.left)
