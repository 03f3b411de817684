"""Additional fields: nested mappings copied, with dotted keys expanded, and frozen.

``es_additional_fields`` and ``es_additional_fields_in_env`` are held as :class:`FrozenDict`
trees (lists become tuples) so that options are immutable and safe to share between threads;
:func:`thaw` gives back plain, independent dicts and lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn

from .exceptions import ConfigurationError

__all__ = [
    "FrozenDict",
    "coerce_env_fields",
    "coerce_fields",
    "empty_mapping",
    "iter_leaves",
    "thaw",
]


def _expand_fields(option: str, fields: object, *, leaves_are_env_names: bool) -> dict[str, Any]:
    """Copy a nested mapping into plain dicts, expanding dotted keys (``"a.b"`` -> a -> b)."""
    if not isinstance(fields, Mapping):
        raise ConfigurationError(option, "a mapping (nested dict) or None", fields)
    result: dict[str, Any] = {}
    for key, given in fields.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ConfigurationError(option, "field names that are non-empty strings", key)
        path = key.split(".")
        value: object
        if isinstance(given, Mapping):
            value = _expand_fields(option, given, leaves_are_env_names=leaves_are_env_names)
        elif leaves_are_env_names:
            if not isinstance(given, str) or not given:
                raise ConfigurationError(
                    option, f"an environment variable name for field {key!r}", given
                )
            value = given
        else:
            value = _copy_value(given)
        target = result
        for part in path[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigurationError(option, f"no conflicting values for field {key!r}", fields)
            target = child
        last = path[-1]
        if last in target:
            if isinstance(target[last], dict) and isinstance(value, dict):
                _merge_plain(target[last], value, option, key)
                continue
            raise ConfigurationError(option, f"no conflicting values for field {key!r}", fields)
        target[last] = value
    return result


def _merge_plain(target: dict[str, Any], source: dict[str, Any], option: str, key: str) -> None:
    for name, value in source.items():
        if name in target:
            if isinstance(target[name], dict) and isinstance(value, dict):
                _merge_plain(target[name], value, option, key)
                continue
            raise ConfigurationError(option, f"no conflicting values for field {key!r}", source)
        target[name] = value


def _copy_value(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _copy_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy_value(v) for v in value]
    return value


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes: the read-only nested mappings held by the options.

    Still a ``dict`` (orjson, ``json`` and ``copy`` handle it), picklable, and its copies are
    itself since it cannot change.
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


_EMPTY: Final = FrozenDict()


def _freeze(value: object) -> Any:
    """Read-only copy of a tree of plain dicts/lists (FrozenDict / tuple)."""
    if isinstance(value, dict):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: object) -> Any:
    """Plain, independent dicts and lists from a frozen tree (the inverse of the freezing)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def empty_mapping() -> Mapping[str, Any]:
    """The shared empty :class:`FrozenDict`: the default of both additional-fields options."""
    return _EMPTY


def coerce_fields(option: str, value: object) -> Mapping[str, Any]:
    """``es_additional_fields``: a frozen copy of a nested mapping, dotted keys expanded.

    None gives the empty mapping. Leaves may be any value; lists become tuples.
    """
    if value is None:
        return _EMPTY
    frozen: Mapping[str, Any] = _freeze(_expand_fields(option, value, leaves_are_env_names=False))
    return frozen


def coerce_env_fields(option: str, value: object) -> Mapping[str, Any]:
    """``es_additional_fields_in_env``: as :func:`coerce_fields`, leaves are variable names.

    Every leaf must be a non-empty string: the name of the environment variable read for the
    field at each document.
    """
    if value is None:
        return _EMPTY
    frozen: Mapping[str, Any] = _freeze(_expand_fields(option, value, leaves_are_env_names=True))
    return frozen


def iter_leaves(
    tree: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterable[tuple[tuple[str, ...], Any]]:
    """Yield ``(path, leaf)`` for every non-mapping value of a nested mapping, in order."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from iter_leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value
