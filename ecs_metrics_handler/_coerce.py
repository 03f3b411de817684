"""Value coercion: turn what a caller or a config file gives into a typed option value.

Every function takes the option's name first and raises
:class:`~ecs_metrics_handler.exceptions.ConfigurationError` naming it, what it accepts and what
was given. Strings are accepted wherever :func:`logging.config.dictConfig` may deliver one
(ini and YAML files). :func:`integer`, :func:`number` and :func:`member_of` build the
two-argument coercers that option declarations hold.
"""

from __future__ import annotations

import enum
import functools
import math
import os
from collections.abc import Callable
from typing import Final, TypeVar

from .exceptions import ConfigurationError

__all__ = [
    "Coercer",
    "coerce_bool",
    "coerce_enum",
    "coerce_float",
    "coerce_int",
    "coerce_optional_str",
    "coerce_path",
    "coerce_str",
    "integer",
    "member_of",
    "number",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

#: ``coercer(option_name, given_value) -> value``; raises :class:`ConfigurationError`.
Coercer = Callable[[str, object], T]

_TRUE_STRINGS: Final = frozenset({"true", "yes", "y", "on", "1"})
_FALSE_STRINGS: Final = frozenset({"false", "no", "n", "off", "0"})


def coerce_enum(option: str, value: object, enum_cls: type[E]) -> E:
    """Return the member of ``enum_cls`` that ``value`` designates.

    Accepted: a member of ``enum_cls``; a string equal to a member's name or value, ignoring
    case and surrounding spaces (``"daily"``, ``" DAILY "``); a member of another enum class of
    the same class name whose ``name`` matches (so ``ElasticECSMetricsLogger.AuthType.NO_AUTH``
    from the original library works). Anything else raises :class:`ConfigurationError` listing
    the accepted names.
    """
    if isinstance(value, enum_cls):
        return value
    key: str | None = None
    if isinstance(value, str):
        key = value.strip().upper()
    elif isinstance(value, enum.Enum) and type(value).__name__ == enum_cls.__name__:
        key = value.name.upper()
    if key is not None:
        for member in enum_cls:
            if key in (member.name, str(member.value).upper()):
                return member
    names = ", ".join(member.name for member in enum_cls)
    raise ConfigurationError(option, f"one of {names} (case-insensitive)", value)


def coerce_bool(option: str, value: object) -> bool:
    """Return ``value`` as a bool.

    Accepted: a bool, the ints 0 and 1, and the strings ``true/false``, ``yes/no``, ``y/n``,
    ``on/off``, ``1/0`` in any case (what ini and YAML files give to dictConfig).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_STRINGS:
            return True
        if text in _FALSE_STRINGS:
            return False
    raise ConfigurationError(option, "a boolean (true/false, yes/no, 1/0)", value)


def _describe_bound(minimum: float | None, exclusive: bool) -> str:
    if minimum is None:
        return ""
    word = ">" if exclusive else ">="
    bound = int(minimum) if float(minimum).is_integer() else minimum
    return f" {word} {bound}"


def _check_bound(
    option: str, number: float, given: object, kind: str, *, minimum: float | None, exclusive: bool
) -> None:
    if minimum is None:
        return
    if number < minimum or (exclusive and number == minimum):
        raise ConfigurationError(option, f"{kind}{_describe_bound(minimum, exclusive)}", given)


def coerce_int(
    option: str, value: object, *, minimum: int | None = None, exclusive: bool = False
) -> int:
    """Return ``value`` as an int, optionally checked against a lower bound.

    Accepted: an int, a float with no fractional part, or a string holding either (``"1000"``,
    ``"1e3"``). A bool is refused: ``True`` is not a number of records. ``exclusive=True``
    makes the bound strict (``> minimum``).
    """
    kind = "an integer"
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = int(value)
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                number = None
            else:
                if math.isfinite(as_float) and as_float.is_integer():
                    number = int(as_float)
    if number is None:
        raise ConfigurationError(option, f"{kind}{_describe_bound(minimum, exclusive)}", value)
    _check_bound(option, number, value, kind, minimum=minimum, exclusive=exclusive)
    return number


def coerce_float(
    option: str, value: object, *, minimum: float | None = None, exclusive: bool = False
) -> float:
    """Return ``value`` as a finite float, optionally checked against a lower bound.

    Accepted: an int, a float, or a numeric string. A bool, NaN and infinities are refused.
    """
    kind = "a finite number"
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigurationError(option, f"{kind}{_describe_bound(minimum, exclusive)}", value)
    _check_bound(option, number, value, kind, minimum=minimum, exclusive=exclusive)
    return number


def coerce_optional_str(option: str, value: object) -> str | None:
    """Return ``value`` when it is None or a string that is not blank, unchanged."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return value
    raise ConfigurationError(option, "a non-empty string or None", value)


def coerce_str(option: str, value: object) -> str:
    """Return ``value`` when it is a string that is not blank, unchanged."""
    if isinstance(value, str) and value.strip():
        return value
    raise ConfigurationError(option, "a non-empty string", value)


def coerce_path(option: str, value: object) -> str | None:
    """Return a non-empty ``str`` or :class:`os.PathLike` as a ``str``; None stays None."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str) and path:
            return path
    raise ConfigurationError(option, "a file system path (str or os.PathLike) or None", value)


def integer(*, above: int | None = None, at_least: int | None = None) -> Coercer[int]:
    """A :func:`coerce_int` coercer bounded by ``> above`` or by ``>= at_least`` (one of them)."""
    if (above is None) == (at_least is None):
        raise TypeError("integer() takes exactly one of above= and at_least=")
    if above is not None:
        return functools.partial(coerce_int, minimum=above, exclusive=True)
    return functools.partial(coerce_int, minimum=at_least)


def number(*, above: float | None = None, at_least: float | None = None) -> Coercer[float]:
    """A :func:`coerce_float` coercer bounded by ``> above`` or by ``>= at_least`` (one of them)."""
    if (above is None) == (at_least is None):
        raise TypeError("number() takes exactly one of above= and at_least=")
    if above is not None:
        return functools.partial(coerce_float, minimum=above, exclusive=True)
    return functools.partial(coerce_float, minimum=at_least)


def member_of(enum_cls: type[E]) -> Coercer[E]:
    """A :func:`coerce_enum` coercer for the members of ``enum_cls``."""
    return functools.partial(coerce_enum, enum_cls=enum_cls)
