"""Metric payloads: the extra-building helper, validation and documented conversions."""

from __future__ import annotations

import decimal
import fractions
import math
import pickle
from collections import OrderedDict
from typing import Any, NamedTuple

import pytest

from ecs_metrics_handler._metric import MetricType, normalize_labels, normalize_metric_fields
from ecs_metrics_handler._metric_extra import exception_type_name, metric
from ecs_metrics_handler.exceptions import InvalidMetricError


class Metric(NamedTuple):
    """The fields normalize_metric_fields returns, named for readable assertions."""

    name: str
    value: float | int | None
    unit: str | None
    type: MetricType
    labels: dict[str, Any]
    duration_ns: int | None
    start: float | None
    end: float | None
    outcome: str | None
    error_type: str | None = None


def normalize_metric(payload: object) -> Metric:
    return Metric(*normalize_metric_fields(payload))


def test_metric_builds_the_extra_mapping_without_none_entries() -> None:
    """metric() returns {'metric': {...}} with only what was given."""
    assert metric("queue.depth", 17) == {
        "metric": {"name": "queue.depth", "value": 17, "type": "gauge"}
    }
    labels = {"queue": "emails"}
    extra = metric("orders", 2, unit="orders", type=MetricType.COUNTER, labels=labels, key="m")
    assert extra == {
        "m": {
            "name": "orders",
            "value": 2,
            "unit": "orders",
            "type": "counter",
            "labels": {"queue": "emails"},
        }
    }
    labels["queue"] = "changed"
    assert extra["m"]["labels"] == {"queue": "emails"}


def test_metric_output_normalises_back_to_the_same_metric() -> None:
    """What metric() builds is what normalize_metric accepts."""
    payload = metric("db.query", 12.5, unit="ms", type="timer", labels={"table": "users"})
    assert normalize_metric(payload["metric"]) == Metric(
        name="db.query",
        value=12.5,
        unit="ms",
        type=MetricType.TIMER,
        labels={"table": "users"},
        duration_ns=None,
        start=None,
        end=None,
        outcome=None,
    )


def test_a_timer_payload_gets_its_value_from_the_duration() -> None:
    """duration_ns without value: value in ms, unit ms, type timer."""
    result = normalize_metric(
        {"name": "t", "duration_ns": 2_500_000, "start": 10, "end": 10.0025, "outcome": "Failure"}
    )
    assert (result.value, result.unit, result.type) == (2.5, "ms", MetricType.TIMER)
    assert (result.start, result.end, result.outcome) == (10.0, 10.0025, "failure")
    assert isinstance(result.start, float)


def test_negative_durations_are_clamped_to_zero() -> None:
    """A negative duration_ns (a clock going backwards) becomes 0."""
    assert normalize_metric({"name": "t", "duration_ns": -5}).duration_ns == 0
    assert normalize_metric({"name": "t", "duration_ns": -2.5}).duration_ns == 0
    assert normalize_metric({"name": "t", "duration_ns": 1500.9}).duration_ns == 1500
    assert normalize_metric({"name": "t", "duration_ns": 2**70}).duration_ns == 2**63 - 1


def test_type_is_case_insensitive_and_defaults_to_gauge() -> None:
    """' COUNTER ' is a counter; no type is a gauge."""
    assert normalize_metric({"name": "c", "type": " COUNTER "}).type is MetricType.COUNTER
    assert normalize_metric({"name": "g", "value": 1}).type is MetricType.GAUGE
    assert normalize_metric({"name": "h", "type": MetricType.HISTOGRAM}).type is (
        MetricType.HISTOGRAM
    )


def test_any_mapping_is_a_payload() -> None:
    """Mappings other than dict are accepted."""
    assert normalize_metric(OrderedDict(name="x", value=1)).value == 1


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (None, "mapping"),
        ("db.query", "mapping"),
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 42}, "name"),
        ({"name": "x", "value": "12.5"}, "number"),
        ({"name": "x", "value": [1]}, "number"),
        ({"name": "x", "value": True}, "number"),
        ({"name": "x", "value": False}, "number"),
        ({"name": "x", "value": math.nan}, "finite"),
        ({"name": "x", "value": math.inf}, "finite"),
        ({"name": "x", "value": -math.inf}, "finite"),
        ({"name": "x", "value": decimal.Decimal("NaN")}, "finite"),
        ({"name": "x", "value": decimal.Decimal("sNaN")}, "finite"),
        ({"name": "x", "value": 10**400}, "finite"),
        ({"name": "x", "value": complex(1, 1)}, "number"),
        ({"name": "x", "unit": 5}, "unit"),
        ({"name": "x", "type": "meter"}, "type"),
        ({"name": "x", "type": 3}, "type"),
        ({"name": "x", "labels": ["a"]}, "labels"),
        ({"name": "x", "labels": "a=b"}, "labels"),
        ({"name": "x", "duration_ns": "5"}, "duration_ns"),
        ({"name": "x", "duration_ns": math.nan}, "duration_ns"),
        ({"name": "x", "start": "yesterday"}, "start"),
        ({"name": "x", "end": math.inf}, "end"),
        ({"name": "x", "outcome": "maybe"}, "outcome"),
        ({"name": "x", "outcome": ["success"]}, "outcome"),
    ],
)
def test_bad_payloads_raise_invalid_metric_error(payload: object, words: str) -> None:
    """Each bad payload is an InvalidMetricError (a ValueError) carrying the payload."""
    with pytest.raises(InvalidMetricError) as caught:
        normalize_metric(payload)
    error = caught.value
    assert isinstance(error, ValueError)
    assert words in error.reason
    assert error.payload is payload


def test_invalid_metric_error_pickles_with_its_payload() -> None:
    """The worker may send errors across processes: reason and payload survive."""
    with pytest.raises(InvalidMetricError) as caught:
        normalize_metric({"value": 1})
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.reason, copy.payload) == (caught.value.reason, {"value": 1})


def test_other_real_numbers_become_floats_and_big_ints_floats() -> None:
    """Decimal and Fraction become floats; ints beyond 64 bits too (metrics.value is a double)."""
    assert normalize_metric({"name": "x", "value": decimal.Decimal("1.25")}).value == 1.25
    assert normalize_metric({"name": "x", "value": fractions.Fraction(1, 4)}).value == 0.25
    big = normalize_metric({"name": "x", "value": 2**70}).value
    assert isinstance(big, float)
    assert big == float(2**70)
    small = normalize_metric({"name": "x", "value": 2**62}).value
    assert (small, type(small)) == (2**62, int)


def test_labels_are_flattened_and_converted_as_documented() -> None:
    """Dotted keys -> underscores; None dropped; odd values -> str; scalars kept."""

    class Tenant:
        def __str__(self) -> str:
            return "tenant-7"

    labels = normalize_labels(
        {
            "http.route": "/x",
            "attempt": 3,
            "ratio": 0.5,
            "cached": True,
            "missing": None,
            "tenant": Tenant(),
            "tags": ["a", "b"],
            "nan": math.nan,
            "huge": 2**70,
            7: "seven",
        }
    )
    assert labels == {
        "http_route": "/x",
        "attempt": 3,
        "ratio": 0.5,
        "cached": True,
        "tenant": "tenant-7",
        "tags": "['a', 'b']",
        "nan": "nan",
        "huge": str(2**70),
        "7": "seven",
    }


def test_a_label_whose_str_raises_is_still_converted() -> None:
    """An unprintable label value never raises: repr, then a placeholder."""

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert normalize_labels({"x": Hostile()}) == {"x": "<unprintable Hostile>"}


def test_payload_is_not_mutated() -> None:
    """Validation copies: the caller's labels keep their dotted keys."""
    payload: dict[str, Any] = {"name": "x", "labels": {"a.b": 1}}
    result = normalize_metric(payload)
    assert payload == {"name": "x", "labels": {"a.b": 1}}
    assert result.labels == {"a_b": 1}
    assert result.labels is not payload["labels"]


def test_unknown_keys_are_ignored() -> None:
    """Forward compatibility: keys this version does not know do not fail the metric."""
    assert normalize_metric({"name": "x", "value": 1, "colour": "red"}).value == 1


def test_exception_type_names() -> None:
    """Builtins by name, others with their module."""
    assert exception_type_name(ValueError) == "ValueError"
    assert exception_type_name(decimal.InvalidOperation) == "decimal.InvalidOperation"
