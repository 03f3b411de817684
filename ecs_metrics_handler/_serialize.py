"""JSON and NDJSON bulk encoding with orjson; total, predictable, never raising for a dict.

:func:`dumps` converts what JSON cannot carry instead of failing, so one odd value never costs a
batch:

======================================= ============================================
value                                   becomes
======================================= ============================================
``datetime``, ``date``, ``time``        ISO 8601 string (orjson, natively)
``uuid.UUID``, ``Enum``, dataclass      string / the member's value / an object (natively)
``float('nan')``, ``inf``               ``null`` (JSON has no NaN)
``Decimal``                             float when finite, else its string
``set``, ``frozenset``                  list (sorted when the items sort)
``bytes``, ``bytearray``, ``memoryview`` text, decoded as UTF-8 with replacement characters
other mappings and sequences            object / array
int beyond 64 bits                      its decimal string
str with lone surrogates                the string with the surrogates replaced
non-string keys                         ``str(key)``
reference cycles, nesting deeper than   ``"<cycle>"`` / ``str(value)`` at the limit
:data:`MAX_DEPTH`
anything else                           ``str(value)`` (``repr`` if that fails)
======================================= ============================================

All functions are thread-safe.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

__all__ = ["MAX_DEPTH", "action_line", "bulk_pair", "dumps"]

#: Nesting depth kept by the sanitising fallback; deeper values become strings.
MAX_DEPTH: Final = 100
_OPTIONS: Final = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_INT64_MIN: Final = -(1 << 63)
_UINT64_MAX: Final = (1 << 64) - 1
_ACTION_CACHE_SIZE: Final = 512
_action_prefixes: dict[str, bytes] = {}


def _safe_str(value: object) -> str:
    try:
        text = str(value)
    except Exception:
        try:
            text = repr(value)
        except Exception:
            text = f"<unprintable {type(value).__name__}>"
    return _clean_str(text)


def _clean_str(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _default(value: Any) -> Any:
    """orjson's hook for the types it does not know (see the module table)."""
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return _safe_str(value)


def _sanitise(value: Any, depth: int, active: set[int]) -> Any:
    """A plain copy of ``value`` that orjson always accepts (the slow path)."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return int(value) if _INT64_MIN <= value <= _UINT64_MAX else str(value)
    if isinstance(value, str):
        return _clean_str(str(value))
    if depth >= MAX_DEPTH:
        return _safe_str(value)
    if isinstance(value, Mapping):
        marker = id(value)
        if marker in active:
            return "<cycle>"
        active.add(marker)
        try:
            return {_key(k): _sanitise(v, depth + 1, active) for k, v in list(value.items())}
        finally:
            active.discard(marker)
    if isinstance(value, (list, tuple, set, frozenset)):
        marker = id(value)
        if marker in active:
            return "<cycle>"
        active.add(marker)
        try:
            items = _default(value) if isinstance(value, (set, frozenset)) else value
            return [_sanitise(v, depth + 1, active) for v in items]
        finally:
            active.discard(marker)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _sanitise(
            {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)},
            depth + 1,
            active,
        )
    try:
        orjson.dumps(value, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return _sanitise(_default(value), depth + 1, active)
    return value


def _key(key: object) -> str:
    """A key as the fast path writes it (``None`` -> ``"null"``...), else ``str(key)``."""
    if isinstance(key, str):
        return _clean_str(key)
    try:
        written: dict[str, None] = orjson.loads(orjson.dumps({key: None}, option=_OPTIONS))
    except (TypeError, orjson.JSONEncodeError):
        return _safe_str(key)
    return next(iter(written))


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Serialise ``doc`` to compact JSON bytes, converting what JSON cannot carry.

    Never raises for a mapping: the fast path is one ``orjson.dumps`` call; when orjson refuses
    (an int beyond 64 bits, a lone surrogate, a cycle, an odd key...) a sanitised copy is
    encoded instead; as a last resort the document is replaced by one with the message and an
    ``error`` object describing the failure.
    """
    try:
        return orjson.dumps(doc, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return orjson.dumps(_sanitise(doc, 0, set()), option=_OPTIONS)
    except Exception as error:  # pragma: no cover - _sanitise only yields JSON types
        fallback = {
            "message": _safe_str(doc.get("message", "")) if isinstance(doc, Mapping) else "",
            "error": {"type": type(error).__qualname__, "message": _safe_str(error)},
        }
        return orjson.dumps(fallback)


def action_line(index: str, doc_id: str) -> bytes:
    """The bulk action line ``{"create":{"_index":index,"_id":doc_id}}`` plus ``\\n``.

    ``create`` makes a replayed document a 409 instead of a duplicate, and is what data streams
    require. The per-index prefix is cached (up to 512 indices).
    """
    prefix = _action_prefixes.get(index)
    if prefix is None:
        if len(_action_prefixes) >= _ACTION_CACHE_SIZE:
            _action_prefixes.clear()
        prefix = b'{"create":{"_index":' + orjson.dumps(index) + b',"_id":'
        _action_prefixes[index] = prefix
    return prefix + orjson.dumps(doc_id) + b"}}\n"


def bulk_pair(index: str, doc_id: str, source: bytes) -> bytes:
    """One bulk item: :func:`action_line` then the serialised ``source`` and ``\\n``."""
    return action_line(index, doc_id) + source + b"\n"
