"""Index templates: every field a document carries is mapped explicitly, with a fitting type."""

from __future__ import annotations

import fnmatch
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ecs_metrics_handler._aggregate import Aggregator
from ecs_metrics_handler._capture import Entry
from ecs_metrics_handler._config import HandlerOptions
from ecs_metrics_handler._document import DocumentBuilder
from ecs_metrics_handler._templates import (
    COMPONENT_TEMPLATE_FILE,
    DATA_STREAM_TEMPLATE_FILE,
    INDEX_TEMPLATE_FILE,
    load_templates,
    read_template_file,
    template_name,
)

ROOT = Path(__file__).resolve().parents[2]
FILES = (COMPONENT_TEMPLATE_FILE, INDEX_TEMPLATE_FILE, DATA_STREAM_TEMPLATE_FILE)
#: Types the test distributions of Elasticsearch (and OpenSearch) all have.
CORE_TYPES = {"keyword", "text", "long", "double", "date", "object", "boolean"}


def record(exc_info: Any = None) -> logging.LogRecord:
    rec = logging.LogRecord("app", logging.ERROR, "/app/x.py", 3, "m", (), exc_info, func="f")
    rec.created = 1_700_000_000.5
    return rec


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    """One document of each kind the builder produces, with every optional field present."""
    builder = DocumentBuilder(
        HandlerOptions.from_kwargs(
            service_name="s", service_version="1", service_environment="prod"
        ),
        environ={},
        hostname="h",
        pid=1,
    )
    yield "metric", builder.build(record(), "m", {"name": "n", "value": 1.5, "unit": "ms"})
    yield (
        "timer",
        builder.build(
            record(),
            "m",
            {
                "name": "t",
                "duration_ns": 10,
                "start": 1.0,
                "end": 2.0,
                "outcome": "failure",
                "error_type": "KeyError",
                "labels": {"a": "x", "n": 3, "f": 0.5, "b": True},
            },
        ),
    )
    try:
        raise OSError("disk")
    except OSError:
        yield "log event with error", builder.build(record(sys.exc_info()), "m", None)
    yield from aggregate_documents(builder)


def aggregate_documents(builder: DocumentBuilder) -> Iterator[tuple[str, dict[str, Any]]]:
    """One aggregate document per metric type, a second part included."""
    aggregator = Aggregator(
        1.0,
        10,
        index_of=lambda ts: "i",
        decorate=builder.decorate,
        id_prefix="p",
        dataset="d",
        pid=1,
    )
    items: list[bytes] = []
    for seq, (kind, value) in enumerate(
        [("counter", 2), ("gauge", 1.5), ("timer", 12.5), ("histogram", -3.0), ("timer", 1.0)]
    ):
        entry = Entry()
        entry.seq, entry.created = seq, 1_700_000_000.5
        entry.payload = {"name": kind, "type": kind, "value": value, "labels": {"a": "x"}}
        aggregator.fold(entry)
        if seq == 3:
            items += aggregator.take(None)[0]
    for item in items + aggregator.take(None)[0]:
        source = orjson.loads(item.rstrip(b"\n").split(b"\n")[1])
        yield f"aggregate {source['metrics']['type']}", source


def leaves(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from leaves(value, f"{path}.")
        else:
            yield path, value


def explicit_mapping(mappings: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = {"properties": mappings["properties"]}
    for part in path.split("."):
        if node is None or part not in node.get("properties", {}):
            return None
        node = node["properties"][part]
    return node


def dynamic_mapping(mappings: dict[str, Any], path: str) -> dict[str, Any] | None:
    for entry in mappings.get("dynamic_templates", []):
        (rule,) = entry.values()
        if fnmatch.fnmatchcase(path, rule["path_match"]):
            mapping: dict[str, Any] = rule["mapping"]
            return mapping
    return None


def fits(field_type: str, path: str, value: Any) -> bool:
    """Would Elasticsearch index this JSON value under this type as intended?"""
    if field_type == "boolean":
        return isinstance(value, bool)
    if field_type == "date":
        return isinstance(value, str) and value.endswith("Z")
    if field_type == "long":
        return isinstance(value, int) and not isinstance(value, bool)
    if field_type == "double":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if field_type in ("keyword", "text"):
        # labels are keywords whatever the JSON type (ECS: flat keyword values)
        return isinstance(value, str) or path.startswith("labels.")
    return False


@pytest.mark.parametrize(("kind", "doc"), list(documents()), ids=lambda v: str(v)[:24])
def test_every_field_of_a_document_has_an_explicit_mapping(kind: str, doc: dict[str, Any]) -> None:
    """Walk the document: each leaf is in the component template (labels.* by its rule)."""
    mappings = load_templates("app", data_stream=False)["component"]["template"]["mappings"]
    unmapped = []
    misfits = []
    for path, value in leaves(doc):
        if path.startswith("metrics.sketch."):
            # not indexed: enabled false on metrics.sketch
            assert explicit_mapping(mappings, "metrics.sketch") == {
                "type": "object",
                "enabled": False,
            }
            continue
        mapping = explicit_mapping(mappings, path)
        if mapping is None and path.startswith("labels."):
            mapping = dynamic_mapping(mappings, path)
        if mapping is None or "type" not in mapping:
            unmapped.append(path)
        elif not fits(mapping["type"], path, value):
            misfits.append((path, mapping["type"], value))
    assert unmapped == [], f"{kind}: fields without a mapping"
    assert misfits == [], f"{kind}: values that do not fit their mapping"


def test_the_walk_sees_every_kind_of_field() -> None:
    """The documents above cover timers, labels and errors (guards the test itself)."""
    paths = {path for _, doc in documents() for path, _ in leaves(doc)}
    for expected in (
        "event.duration",
        "event.start",
        "event.outcome",
        "metrics.duration.us",
        "metrics.value",
        "labels.n",
        "error.stack_trace",
        "error.message",
        "service.environment",
        "process.thread.id",
        "log.origin.file.line",
        "metrics.aggregated",
        "metrics.p99",
        "metrics.last",
        "metrics.part",
        "metrics.sketch.gamma",
    ):
        assert expected in paths


def test_an_unmapped_field_would_be_reported() -> None:
    """The lookup finds no mapping for a field the template does not declare."""
    mappings = read_template_file(COMPONENT_TEMPLATE_FILE)["template"]["mappings"]
    assert explicit_mapping(mappings, "metrics.colour") is None
    assert explicit_mapping(mappings, "metrics.name") == {"type": "keyword", "ignore_above": 1024}
    assert dynamic_mapping(mappings, "cloud.region") is None


def walk_types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield node["type"]
        for value in node.values():
            yield from walk_types(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_types(value)


def test_only_core_field_types_are_used() -> None:
    """No match_only_text, constant_keyword, wildcard or flattened: not in every distribution."""
    types = set(walk_types(read_template_file(COMPONENT_TEMPLATE_FILE)))
    assert types <= CORE_TYPES
    assert "keyword" in types
    assert "date" in types


def test_custom_metric_fields_have_their_documented_types() -> None:
    """metrics.value double, durations long (ns and us), timestamps date."""
    mappings = read_template_file(COMPONENT_TEMPLATE_FILE)["template"]["mappings"]
    expected = {
        "@timestamp": "date",
        "message": "text",
        "metrics.value": "double",
        "metrics.duration.us": "long",
        "event.duration": "long",
        "event.start": "date",
        "event.end": "date",
        "process.pid": "long",
    }
    for path, field_type in expected.items():
        mapping = explicit_mapping(mappings, path)
        assert mapping is not None
        assert mapping["type"] == field_type, path
    assert mappings["dynamic"] is True


@pytest.mark.parametrize("name", FILES)
def test_shipped_templates_match_the_mappings_folder(name: str) -> None:
    """ecs_metrics_handler/templates/ is an exact copy of mappings/ (what curl installs)."""
    shipped = (ROOT / "ecs_metrics_handler" / "templates" / name).read_bytes()
    assert shipped == (ROOT / "mappings" / name).read_bytes()
    assert read_template_file(name) == json.loads(shipped)


def test_index_template_patterns_and_names_follow_the_prefix() -> None:
    """Dated indices and the bare prefix (NEVER) are matched; the component is referenced."""
    bodies = load_templates("shop-metrics", data_stream=False)
    index = bodies["index"]
    assert index["index_patterns"] == ["shop-metrics-*", "shop-metrics"]
    assert index["composed_of"] == [template_name("shop-metrics")] == ["shop-metrics-ecs-metrics"]
    assert "data_stream" not in index
    assert index["priority"] > 100  # above the built-in logs-*-* / metrics-*-* templates
    assert "template" in bodies["component"]


def test_data_stream_template_matches_exactly_the_stream() -> None:
    """The data stream variant declares data_stream and matches only the stream's name."""
    index = load_templates("metrics-app-default", data_stream=True)["index"]
    assert index["index_patterns"] == ["metrics-app-default"]
    assert index["data_stream"] == {}
    assert index["composed_of"] == ["metrics-app-default-ecs-metrics"]


def test_each_call_returns_fresh_copies() -> None:
    """Changing a returned body does not change the next one."""
    first = load_templates("a", data_stream=False)
    first["component"]["template"]["mappings"]["properties"].clear()
    second = load_templates("a", data_stream=False)
    assert second["component"]["template"]["mappings"]["properties"]


def test_the_default_files_work_as_they_are_with_curl() -> None:
    """The files name the default prefix, so `curl -d @file` needs no editing."""
    index = read_template_file(INDEX_TEMPLATE_FILE)
    assert index["index_patterns"] == ["python_metrics-*", "python_metrics"]
    assert index["composed_of"] == ["python_metrics-ecs-metrics"]
    assert HandlerOptions().es_index_name == "python_metrics"
