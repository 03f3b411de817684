"""The option declarations: one per option, and the typed keyword list agrees with them."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest

from ecs_metrics_handler import _handler
from ecs_metrics_handler._coerce import integer, number
from ecs_metrics_handler._config import OPTION_NAMES, HandlerKwargs, HandlerOptions
from ecs_metrics_handler.exceptions import ConfigurationError

DEFAULTS = HandlerOptions()
KWARG_TYPES = typing.get_type_hints(HandlerKwargs)


def _accepts(annotation: Any, value: object) -> bool:
    """Whether ``value`` is an instance of ``annotation`` (Any, unions, None and generics)."""
    if annotation is Any:
        return True
    if annotation is None or annotation is types.NoneType:
        return value is None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    origin = typing.get_origin(annotation)
    return isinstance(value, origin if origin is not None else annotation)


def test_the_keyword_list_names_exactly_the_options() -> None:
    """HandlerKwargs (what mypy checks calls against) has one key per HandlerOptions field."""
    assert set(HandlerKwargs.__annotations__) == OPTION_NAMES
    assert {field.name for field in dataclasses.fields(HandlerOptions)} == OPTION_NAMES
    assert _handler.HandlerKwargs is HandlerKwargs


@pytest.mark.parametrize("name", sorted(OPTION_NAMES))
def test_the_keyword_type_accepts_the_default(name: str) -> None:
    """Passing an option's own default type-checks: its annotation admits the default."""
    assert _accepts(KWARG_TYPES[name], getattr(DEFAULTS, name)), (name, KWARG_TYPES[name])


@pytest.mark.parametrize("name", sorted(OPTION_NAMES))
def test_passing_the_default_gives_the_default(name: str) -> None:
    """Each declaration's coercion takes its own default back unchanged."""
    assert HandlerOptions.from_kwargs(**{name: getattr(DEFAULTS, name)}) == DEFAULTS


def test_the_annotation_check_refuses_other_types() -> None:
    """The check above is not vacuous."""
    assert not _accepts(KWARG_TYPES["buffer_size"], None)
    assert not _accepts(KWARG_TYPES["ca_certs"], 3)
    assert not _accepts(KWARG_TYPES["es_additional_fields"], [])


def test_bounded_coercers_take_exactly_one_bound() -> None:
    """integer()/number() are built with above= or at_least=, and state the bound they check."""
    with pytest.raises(TypeError):
        integer()
    with pytest.raises(TypeError):
        number(above=0, at_least=1)
    with pytest.raises(ConfigurationError, match="an integer >= 1"):
        integer(at_least=1)("max_queue_records", 0)
    with pytest.raises(ConfigurationError, match="a finite number > 0"):
        number(above=0)("flush_timeout", 0)
