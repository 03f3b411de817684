"""The optional compiled build: its switch, its module list, and what the package reports.

Whether the compiled modules give the same bytes as the pure-Python ones is not tested here
but by running the whole unit suite on the compiled build (``scripts/run-tests``' ``compiled``
run, where ``ECSMH_EXPECT_COMPILED=1`` makes the suite refuse to test anything else).
"""

from __future__ import annotations

import importlib
import runpy
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any

import pytest

import ecs_metrics_handler

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup_hook() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("off", False), ("1", True), ("true", True), (" YES ", True)],
)
def test_the_switch_reads_the_usual_spellings(
    setup_hook: dict[str, Any], monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("ECS_METRICS_HANDLER_COMPILE", value)
    assert setup_hook["_compile_requested"]() is expected


def test_a_wrong_switch_value_stops_the_build_naming_the_variable(
    setup_hook: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECS_METRICS_HANDLER_COMPILE", "fast")
    with pytest.raises(SystemExit, match="ECS_METRICS_HANDLER_COMPILE must be 1 or 0, not 'fast'"):
        setup_hook["_compile_requested"]()


def test_a_plain_build_compiles_nothing(
    setup_hook: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ECS_METRICS_HANDLER_COMPILE", raising=False)
    assert setup_hook["_ext_modules"]() == []


def test_the_compiled_modules_are_the_package_s_own_files(setup_hook: dict[str, Any]) -> None:
    names = [path.removesuffix(".py").replace("/", ".") for path in setup_hook["COMPILED"]]
    assert names == ["ecs_metrics_handler._encoder", "ecs_metrics_handler._metric"]
    for path in setup_hook["COMPILED"]:
        assert (ROOT / path).is_file()


def test_compiled_modules_names_exactly_the_modules_loaded_from_extensions(
    setup_hook: dict[str, Any],
) -> None:
    candidates = [p.removesuffix(".py").replace("/", ".") for p in setup_hook["COMPILED"]]
    loaded = [
        name
        for name in candidates
        if str(importlib.import_module(name).__file__).endswith(tuple(EXTENSION_SUFFIXES))
    ]
    assert list(ecs_metrics_handler.COMPILED_MODULES) == loaded
    assert "COMPILED_MODULES" in ecs_metrics_handler.__all__


def test_the_application_s_helpers_accept_what_their_annotations_do_not_say() -> None:
    """``metric()`` and ``exception_type_name()`` run on the application's threads and stay
    pure Python in every build: a compiled function would raise TypeError for a ``Decimal``
    value or a name that is not a string, where the handler reports a bad metric instead."""
    from decimal import Decimal
    from fractions import Fraction

    from ecs_metrics_handler import metric
    from ecs_metrics_handler._metric_extra import exception_type_name

    assert metric(42, Decimal("1.5"), unit=7, labels={"a": object}) == {  # type: ignore[arg-type]
        "metric": {
            "name": 42,
            "value": Decimal("1.5"),
            "unit": 7,
            "type": "gauge",
            "labels": {"a": object},
        }
    }
    assert metric("x", Fraction(1, 3))["metric"]["value"] == Fraction(1, 3)  # type: ignore[arg-type]

    class Named:
        __module__ = "somewhere"
        __qualname__ = "Odd"

    assert exception_type_name(Named) == "somewhere.Odd"  # type: ignore[arg-type]
