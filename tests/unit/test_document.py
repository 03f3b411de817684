"""Documents: golden output for metrics, timers and log events; additional and env fields."""

from __future__ import annotations

import copy
import logging
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ecs_metrics_handler._config import HandlerOptions
from ecs_metrics_handler._document import (
    ECS_VERSION,
    DocumentBuilder,
    format_timestamp,
    package_version,
)
from ecs_metrics_handler.exceptions import InvalidMetricError

CREATED = 1_764_356_616.123  # 2025-11-28T19:03:36.123Z
PROCESS_NAME = Path(sys.executable).stem


def make_record(
    msg: str = "db query",
    *,
    level: int = logging.INFO,
    name: str = "app.db",
    exc_info: Any = None,
    created: float = CREATED,
) -> logging.LogRecord:
    record = logging.LogRecord(name, level, "/srv/app/db.py", 42, msg, (), exc_info, func="query")
    record.created = created
    record.process = 4321
    record.thread = 140001
    record.threadName = "worker-1"
    return record


def make_builder(environ: dict[str, str] | None = None, **options: Any) -> DocumentBuilder:
    options.setdefault("service_name", "shop")
    return DocumentBuilder(
        HandlerOptions.from_kwargs(**options),
        environ={} if environ is None else environ,
        hostname="web-1",
        pid=99,
    )


def static_parts(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields every document carries, checked once here."""
    agent = doc["agent"]
    assert re.fullmatch(r"[0-9a-f]{32}", agent["ephemeral_id"])
    return {
        "ecs": {"version": ECS_VERSION},
        "service": {"name": "shop"},
        "host": {"hostname": "web-1", "name": "web-1"},
        "agent": {
            "name": "ecs-metrics-handler",
            "type": "ecs-metrics-handler",
            "version": package_version(),
            "ephemeral_id": agent["ephemeral_id"],
        },
    }


LOG = {
    "level": "info",
    "logger": "app.db",
    "origin": {"file": {"name": "db.py", "line": 42}, "function": "query"},
}
PROCESS = {"pid": 4321, "name": PROCESS_NAME, "thread": {"id": 140001, "name": "worker-1"}}


def test_golden_metric_document() -> None:
    """A gauge with unit and labels, field by field."""
    payload = {"name": "db.query", "value": 12.5, "unit": "ms", "labels": {"table": "users"}}
    doc = make_builder().build(make_record(), "db query", payload)
    assert doc == {
        "@timestamp": "2025-11-28T19:03:36.123Z",
        "message": "db query",
        "event": {"kind": "metric", "dataset": "shop.metrics"},
        "metrics": {"name": "db.query", "value": 12.5, "unit": "ms", "type": "gauge"},
        "labels": {"table": "users"},
        "log": LOG,
        "process": PROCESS,
        **static_parts(doc),
    }
    assert next(iter(doc)) == "@timestamp"


def test_golden_timer_document() -> None:
    """A timer: event.duration in ns, start/end, outcome, metrics.duration.us."""
    payload = {
        "name": "checkout",
        "type": "timer",
        "value": 1500.25,
        "unit": "ms",
        "duration_ns": 1_500_250_000,
        "start": CREATED - 1.50025,
        "end": CREATED,
        "outcome": "success",
    }
    doc = make_builder().build(make_record("checkout"), "checkout", payload)
    assert doc == {
        "@timestamp": "2025-11-28T19:03:36.123Z",
        "message": "checkout",
        "event": {
            "kind": "metric",
            "dataset": "shop.metrics",
            "duration": 1_500_250_000,
            "start": "2025-11-28T19:03:34.622Z",
            "end": "2025-11-28T19:03:36.123Z",
            "outcome": "success",
        },
        "metrics": {
            "name": "checkout",
            "value": 1500.25,
            "unit": "ms",
            "type": "timer",
            "duration": {"us": 1_500_250},
        },
        "log": LOG,
        "process": PROCESS,
        **static_parts(doc),
    }


def test_a_failed_timer_carries_the_error_type() -> None:
    """timed() payloads with outcome failure map error_type to error.type."""
    payload = {"name": "t", "duration_ns": 5_000, "outcome": "failure", "error_type": "KeyError"}
    doc = make_builder().build(make_record(), "t", payload)
    assert doc["event"]["outcome"] == "failure"
    assert doc["error"] == {"type": "KeyError"}
    assert doc["metrics"]["value"] == 0.005
    assert doc["metrics"]["duration"] == {"us": 5}


def test_a_timer_without_start_and_end_ends_at_the_record_time() -> None:
    """Only duration_ns: event.end is @timestamp and event.start is duration earlier."""
    doc = make_builder().build(make_record(), "t", {"name": "t", "duration_ns": 2_000_000_000})
    assert doc["event"]["end"] == "2025-11-28T19:03:36.123Z"
    assert doc["event"]["start"] == "2025-11-28T19:03:34.123Z"
    assert "outcome" not in doc["event"]


def test_golden_log_event_with_exception() -> None:
    """A plain record with exc_info: event.kind event, error.* from the exception."""
    try:
        raise ValueError("bad input")
    except ValueError:
        exc_info = sys.exc_info()
    record = make_record("it failed", level=logging.ERROR, exc_info=exc_info)
    doc = make_builder(ship_log_records=True).build(record, "it failed", None)
    stack = doc["error"].pop("stack_trace")
    assert doc == {
        "@timestamp": "2025-11-28T19:03:36.123Z",
        "message": "it failed",
        "event": {"kind": "event", "dataset": "shop.metrics"},
        "log": {**LOG, "level": "error"},
        "process": PROCESS,
        **static_parts(doc),
        "error": {"type": "ValueError", "message": "bad input"},
    }
    assert stack.startswith("Traceback (most recent call last):")
    assert stack.rstrip().endswith("ValueError: bad input")
    assert "metrics" not in doc


def test_the_records_formatted_traceback_is_used_as_given() -> None:
    """exc_text (set by a Formatter, or by a copy that dropped exc_info) is the stack trace."""
    record = make_record("x", level=logging.ERROR)
    record.exc_text = "Traceback (most recent call last):\n  ...\nOSError: disk"
    doc = make_builder().build(record, "x", None)
    assert doc["error"] == {"stack_trace": record.exc_text}


def test_an_exception_with_a_hostile_str_still_builds() -> None:
    """error.message never raises."""

    class WeirdError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    try:
        raise WeirdError
    except WeirdError:
        exc_info = sys.exc_info()
    doc = make_builder().build(make_record(exc_info=exc_info), "x", None)
    assert doc["error"]["message"] == "<unprintable WeirdError>"
    assert doc["error"]["type"].endswith("WeirdError")


def test_bad_payloads_propagate_invalid_metric_error() -> None:
    """The builder does not swallow bad payloads: the worker reports them."""
    builder = make_builder()
    for payload in (
        {"value": 1},
        {"name": "x", "value": float("nan")},
        "x",
        {"name": "x", "value": True},
    ):
        with pytest.raises(InvalidMetricError):
            builder.build(make_record(), "m", payload)


def test_service_fields_and_dataset_come_from_the_options() -> None:
    """service.version/environment only when configured; event.dataset overridable."""
    doc = make_builder(
        service_version="2.1.0", service_environment="prod", event_dataset="shop.timings"
    ).build(make_record(), "m", {"name": "x"})
    assert doc["service"] == {"name": "shop", "version": "2.1.0", "environment": "prod"}
    assert doc["event"]["dataset"] == "shop.timings"
    assert "value" not in doc["metrics"]


def test_a_record_without_process_id_uses_the_builders_pid() -> None:
    """logging.logProcesses=False leaves record.process None: the builder's pid is used."""
    record = make_record()
    record.process = None
    record.thread = None
    builder = make_builder()
    assert builder.build(record, "m", {"name": "x"})["process"] == {"pid": 99, "name": PROCESS_NAME}
    assert builder.pid == 99


# ---------------------------------------------------------------------- additional fields


def test_additional_fields_are_deep_merged() -> None:
    """Nested additional fields merge into existing objects and may override built fields."""
    builder = make_builder(
        es_additional_fields={
            "service": {"environment": "staging", "node": {"name": "n1"}},
            "labels": {"team": "payments"},
            "event": {"module": "billing"},
            "cloud": {"region": "eu-west-1"},
            "tags": ["a", "b"],
        }
    )
    doc = builder.build(make_record(), "m", {"name": "x", "labels": {"route": "/pay"}})
    assert doc["service"] == {"name": "shop", "environment": "staging", "node": {"name": "n1"}}
    assert doc["labels"] == {"route": "/pay", "team": "payments"}
    assert doc["event"] == {"kind": "metric", "dataset": "shop.metrics", "module": "billing"}
    assert doc["cloud"] == {"region": "eu-west-1"}
    assert doc["tags"] == ["a", "b"]


def test_additional_fields_win_over_built_fields() -> None:
    """Deep merge order: the document, then es_additional_fields."""
    doc = make_builder(es_additional_fields={"service": {"name": "billing"}}).build(
        make_record(), "m", {"name": "x"}
    )
    assert doc["service"]["name"] == "billing"


def test_env_fields_are_read_at_each_document() -> None:
    """Changing the variable between two documents changes the field."""
    environ = {"APP_BUILD": "101"}
    builder = make_builder(environ, es_additional_fields_in_env={"app": {"build": "APP_BUILD"}})
    assert builder.build(make_record(), "m", {"name": "x"})["app"] == {"build": "101"}
    environ["APP_BUILD"] = "102"
    assert builder.build(make_record(), "m", {"name": "x"})["app"] == {"build": "102"}


def test_a_missing_env_variable_falls_back_to_the_additional_field() -> None:
    """Unset variable -> the same field from es_additional_fields."""
    environ: dict[str, str] = {}
    builder = make_builder(
        environ,
        es_additional_fields={"app": {"build": "fallback", "team": "core"}},
        es_additional_fields_in_env={"app": {"build": "APP_BUILD"}},
    )
    assert builder.build(make_record(), "m", {"name": "x"})["app"] == {
        "build": "fallback",
        "team": "core",
    }
    environ["APP_BUILD"] = "7"
    assert builder.build(make_record(), "m", {"name": "x"})["app"] == {"build": "7", "team": "core"}


def test_a_field_is_absent_when_neither_env_nor_additional_has_it() -> None:
    """No variable, no fallback: the field (and its empty parents) do not appear."""
    builder = make_builder({}, es_additional_fields_in_env={"app": {"build": "APP_BUILD"}})
    doc = builder.build(make_record(), "m", {"name": "x"})
    assert "app" not in doc


def test_env_fields_default_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """environ=None reads os.environ at each document."""
    builder = DocumentBuilder(
        HandlerOptions.from_kwargs(es_additional_fields_in_env={"deploy": {"id": "DEPLOY_ID"}}),
        hostname="h",
        pid=1,
    )
    monkeypatch.delenv("DEPLOY_ID", raising=False)
    assert "deploy" not in builder.build(make_record(), "m", {"name": "x"})
    monkeypatch.setenv("DEPLOY_ID", "d-9")
    assert builder.build(make_record(), "m", {"name": "x"})["deploy"] == {"id": "d-9"}


def test_env_fields_merge_into_built_objects() -> None:
    """An env field inside service or labels joins the existing object."""
    builder = make_builder(
        {"VERSION": "3.0", "REGION": "eu"},
        es_additional_fields_in_env={"service": {"version": "VERSION"}, "labels.region": "REGION"},
    )
    doc = builder.build(make_record(), "m", {"name": "x", "labels": {"a": 1}})
    assert doc["service"] == {"name": "shop", "version": "3.0"}
    assert doc["labels"] == {"a": 1, "region": "eu"}


def test_documents_share_nothing_with_the_options_or_each_other() -> None:
    """Mutating one document changes neither the options nor the next document."""
    additional = {"service": {"node": {"name": "n1"}}, "tags": ["a"], "labels": {"team": "t"}}
    options = HandlerOptions.from_kwargs(
        service_name="shop",
        es_additional_fields=additional,
        es_additional_fields_in_env={"app": {"build": "B"}},
    )
    snapshot = copy.deepcopy(
        {"a": dict(options.es_additional_fields), "e": dict(options.es_additional_fields_in_env)}
    )
    builder = DocumentBuilder(options, environ={"B": "1"}, hostname="h", pid=1)
    payload = {"name": "x", "labels": {"route": "/"}}
    first = builder.build(make_record(), "m", payload)
    expected_second = copy.deepcopy(first)
    for key in ("service", "host", "agent", "ecs", "event", "log", "process", "labels", "app"):
        first[key]["mutated"] = True
    first["service"]["node"]["name"] = "changed"
    first["tags"].append("b")
    second = builder.build(make_record(), "m", payload)
    expected_second["agent"]["ephemeral_id"] = second["agent"]["ephemeral_id"]
    assert second == expected_second
    assert payload == {"name": "x", "labels": {"route": "/"}}
    assert snapshot == copy.deepcopy(
        {"a": dict(options.es_additional_fields), "e": dict(options.es_additional_fields_in_env)}
    )
    assert dict(options.es_additional_fields["service"]["node"]) == {"name": "n1"}


# -------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000.123, "2023-11-14T22:13:20.123Z"),
        (1_704_067_199.999, "2023-12-31T23:59:59.999Z"),
        (1_704_067_200.0, "2024-01-01T00:00:00.000Z"),
        (1_709_164_800.5, "2024-02-29T00:00:00.500Z"),
        (951_782_400.0, "2000-02-29T00:00:00.000Z"),
        (-0.001, "1969-12-31T23:59:59.999Z"),
    ],
)
def test_format_timestamp_is_utc_with_milliseconds(ts: float, expected: str) -> None:
    """@timestamp format: UTC, milliseconds, Z; the cached second prefix stays correct."""
    assert format_timestamp(ts) == expected
    assert format_timestamp(ts) == expected


def test_format_timestamp_matches_datetime_over_many_seconds() -> None:
    """Cross-check the arithmetic against datetime across a range with leap days."""
    import datetime

    start = 946_684_800  # 2000-01-01
    for step in range(0, 400 * 86_400 * 30, 86_400 * 7 + 3_601):
        ts = start + step + 0.25
        expected = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
        assert format_timestamp(ts) == expected.strftime("%Y-%m-%dT%H:%M:%S.250Z")


@pytest.mark.parametrize(
    ("options", "environ", "payload", "exc"),
    [
        ({}, {}, {"name": "m", "value": 1.5, "unit": "ms", "labels": {"a": "b"}}, False),
        (
            {},
            {},
            {"name": "t", "type": "timer", "duration_ns": 2_000_000, "outcome": "failure"},
            False,
        ),
        ({}, {}, None, True),
        (
            {"es_additional_fields": {"team": {"name": "x"}, "labels": {"env": "prod"}}},
            {},
            {"name": "m", "value": 1},
            False,
        ),
        # an environment field under a static key: the slower path keeps it right
        (
            {
                "es_additional_fields": {"service": {"environment": "dev"}},
                "es_additional_fields_in_env": {"service": {"environment": "ENVNAME"}},
            },
            {"ENVNAME": "prod"},
            {"name": "m", "value": 2},
            False,
        ),
        (
            {"es_additional_fields_in_env": {"deploy": {"color": "COLOR"}}},
            {"COLOR": "blue"},
            {"name": "m", "value": 3},
            False,
        ),
    ],
)
def test_build_source_serialises_exactly_what_build_returns(
    options: dict[str, Any], environ: dict[str, str], payload: Any, exc: bool
) -> None:
    import orjson

    builder = make_builder(environ, **options)
    record = make_record()
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
    assert orjson.loads(builder.build_source(record, "msg", payload)) == builder.build(
        record, "msg", payload
    )


def test_build_source_follows_an_overridden_build() -> None:
    import orjson

    class Tenant(DocumentBuilder):
        def build(
            self, record: logging.LogRecord, message: str, payload: object | None
        ) -> dict[str, Any]:
            doc = super().build(record, message, payload)
            doc["tenant"] = "a"
            return doc

    builder = Tenant(HandlerOptions.from_kwargs())
    record = make_record()
    assert (
        orjson.loads(builder.build_source(record, "m", {"name": "m", "value": 1}))["tenant"] == "a"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("metrics-shop-default", ("metrics", "shop", "default")),
        ("metrics-shop.db-production", ("metrics", "shop.db", "production")),
        ("logs-app-ns1", ("logs", "app", "ns1")),
        ("python-metrics", None),  # not the Elastic scheme: no fields
        ("metrics-a-b-c", None),
        ("custom-shop-default", None),
    ],
)
def test_a_data_stream_named_the_elastic_way_is_on_every_document(
    name: str, expected: tuple[str, str, str] | None
) -> None:
    builder = make_builder(data_stream=name)
    doc = builder.build(make_record(), "m", {"name": "x", "value": 1})
    if expected is None:
        assert "data_stream" not in doc
        assert doc["event"]["dataset"] == "shop.metrics"
    else:
        kind, dataset, namespace = expected
        assert doc["data_stream"] == {"type": kind, "dataset": dataset, "namespace": namespace}
        assert doc["event"]["dataset"] == dataset  # event.dataset follows data_stream.dataset
    # the serialised form (static parts rendered once) carries the same fields
    assert orjson.loads(builder.build_source(make_record(), "m", {"name": "x"})) == builder.build(
        make_record(), "m", {"name": "x"}
    )


def test_an_explicit_event_dataset_wins_over_the_data_stream_dataset() -> None:
    builder = make_builder(data_stream="metrics-shop-default", event_dataset="other")
    doc = builder.build(make_record(), "m", {"name": "x", "value": 1})
    assert doc["event"]["dataset"] == "other"
    assert doc["data_stream"]["dataset"] == "shop"
