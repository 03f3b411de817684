"""Serialisation: predictable conversions, never an exception, bulk lines."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import types
import uuid
from collections import deque
from typing import Any

import orjson
import pytest

from ecs_metrics_handler._serialize import MAX_DEPTH, action_line, bulk_pair, dumps


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Opaque:
    def __str__(self) -> str:
        return "opaque-object"


class Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def roundtrip(doc: Any) -> Any:
    return orjson.loads(dumps(doc))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc),
         "2024-01-02T03:04:05.678000+00:00"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        (decimal.Decimal("12.50"), 12.5),
        (decimal.Decimal("NaN"), "NaN"),
        (decimal.Decimal("-Infinity"), "-Infinity"),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        ((1, "a"), [1, "a"]),
        (b"caf\xc3\xa9", "café"),
        (b"\xff", "\ufffd"),
        (bytearray(b"ab"), "ab"),
        (memoryview(b"ab"), "ab"),
        (2**70, str(2**70)),
        (-(2**64), str(-(2**64))),
        (2**64 - 1, 2**64 - 1),
        (-(2**63), -(2**63)),
        (Colour.RED, "red"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (Point(1, 2), {"x": 1, "y": 2}),
        (types.MappingProxyType({"a": 1}), {"a": 1}),
        (deque([1, 2]), [1, 2]),
        (Opaque(), "opaque-object"),
        (math.nan, None),
        (math.inf, None),
        ("lone \udc80 surrogate", "lone ? surrogate"),
    ],
)  # fmt: skip
def test_values_json_cannot_carry_are_converted_predictably(value: object, expected: Any) -> None:
    """Each row of the documented conversion table."""
    assert roundtrip({"v": value}) == {"v": expected}


def test_an_unsortable_set_still_becomes_a_list() -> None:
    """A set of mixed types cannot be sorted; it is listed as it iterates."""
    assert sorted(roundtrip({"v": {1, "a"}})["v"], key=str) == [1, "a"]


def test_a_value_whose_str_and_repr_raise_becomes_a_placeholder() -> None:
    """Nothing an object does makes dumps raise."""
    assert roundtrip({"v": Hostile()}) == {"v": "<unprintable Hostile>"}


def test_one_bad_value_does_not_lose_the_others() -> None:
    """A huge int (the fallback path) next to ordinary values: all survive."""
    doc = {
        "message": "m",
        "n": 2**80,
        "nested": {"when": datetime.date(2024, 1, 1), "ok": [1, 2.5, None, True]},
        "d": decimal.Decimal("1.5"),
    }
    assert roundtrip(doc) == {
        "message": "m",
        "n": str(2**80),
        "nested": {"when": "2024-01-01", "ok": [1, 2.5, None, True]},
        "d": 1.5,
    }


def test_non_string_keys_become_strings() -> None:
    """Int, tuple and None keys are written as strings."""
    assert roundtrip({1: "a", (1, 2): "b", None: "c", 2**70: "d"}) == {
        "1": "a",
        "(1, 2)": "b",
        "null": "c",
        str(2**70): "d",
    }


def test_a_reference_cycle_is_cut() -> None:
    """A document that contains itself is written with a '<cycle>' marker."""
    doc: dict[str, Any] = {"message": "m", "list": []}
    doc["self"] = doc
    doc["list"].append(doc["list"])
    assert roundtrip(doc) == {"message": "m", "list": ["<cycle>"], "self": "<cycle>"}


def test_very_deep_nesting_is_truncated_not_fatal() -> None:
    """Beyond MAX_DEPTH levels the rest becomes a string."""
    doc: dict[str, Any] = {"message": "deep"}
    node = doc
    for _ in range(MAX_DEPTH + 200):
        node["c"] = {}
        node = node["c"]
    out = roundtrip(doc)
    depth = 0
    node = out
    while isinstance(node, dict) and "c" in node:
        node = node["c"]
        depth += 1
    assert out["message"] == "deep"
    assert depth <= MAX_DEPTH
    assert isinstance(node, str)


def test_the_fast_path_output_is_compact_json() -> None:
    """Ordinary documents are plain orjson output."""
    assert (
        dumps({"a": 1, "b": [True, None], "c": "é"}) == '{"a":1,"b":[true,null],"c":"é"}'.encode()
    )


def test_action_line_is_a_create_op_with_escaping() -> None:
    """create op, index and id escaped, newline terminated."""
    assert action_line("app-2024.01.01", "abc") == (
        b'{"create":{"_index":"app-2024.01.01","_id":"abc"}}\n'
    )
    line = action_line("app", 'we"ird\\id')
    assert orjson.loads(line) == {"create": {"_index": "app", "_id": 'we"ird\\id'}}
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1


def test_action_line_cache_does_not_mix_indices() -> None:
    """Alternating indices and many distinct ones keep their own prefix."""
    for i in range(600):
        assert orjson.loads(action_line(f"i{i}", str(i))) == {
            "create": {"_index": f"i{i}", "_id": str(i)}
        }
    assert orjson.loads(action_line("i1", "x"))["create"]["_index"] == "i1"


def test_bulk_pair_is_action_then_source() -> None:
    """Two NDJSON lines: the action and the document."""
    pair = bulk_pair("idx", "id1", b'{"a":1}')
    action, source, tail = pair.split(b"\n")
    assert orjson.loads(action) == {"create": {"_index": "idx", "_id": "id1"}}
    assert orjson.loads(source) == {"a": 1}
    assert tail == b""
