"""Dead letters: what the failure folder keeps of a document or record that cannot be delivered.

A :class:`DeadLetter` becomes one JSON line of a ``dead-letter-*.ndjson`` file: documents the
cluster refused for a reason a retry cannot fix (``status``, ``error`` as the server gave it,
``index``, ``id``, ``document``) and records whose payload could not become a document
(``reason``, ``record``). :meth:`DeadLetter.to_json` serialises any of them, whatever the
record held (:func:`plain` rewrites what orjson cannot carry), so a dead letter is never lost
to its own content. Pure.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["DeadLetter", "plain", "plain_key", "refusal_reason", "safe_repr"]


def refusal_reason(status: int, error: Any) -> str:
    """The ``reason`` of a document the cluster refused: its status, error type and cause.

    For example ``refused by the cluster: HTTP 400 document_parsing_exception
    (illegal_argument_exception: time series index @timestamp value [...] must be larger than
    ...)``, what Elasticsearch 8.19 and 9.5 answer for a document outside a time-series index's
    time bounds. At most about 400 characters; the full error stays in ``error``.
    """
    text = f"refused by the cluster: HTTP {status}"
    if isinstance(error, dict):
        text += f" {error.get('type', '')}".rstrip()
        cause = error.get("caused_by")
        detail = cause if isinstance(cause, dict) else None
        if detail is not None:
            text += f" ({detail.get('type', '')}: {str(detail.get('reason', ''))[:300]})"
        elif error.get("reason"):
            text += f": {str(error['reason'])[:300]}"
    elif error is not None:
        text += f": {str(error)[:300]}"
    return text


@dataclass(slots=True)
class DeadLetter:
    """One entry of a dead-letter file."""

    reason: str
    status: int | None = None
    error: Any = None
    item: bytes | None = None  # the bulk pair (action line + source line) when there is one
    record: dict[str, Any] | None = None  # for invalid payloads: what the record held

    def to_json(self, now: str) -> bytes:
        entry: dict[str, Any] = {"time": now, "reason": self.reason}
        if self.status is not None:
            entry["status"] = self.status
        if self.error is not None:
            entry["error"] = self.error
        if self.item is not None:
            action, _, source = self.item.partition(b"\n")
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                meta = next(iter(orjson.loads(action).values()))
                entry["index"] = meta.get("_index")
                entry["id"] = meta.get("_id")
            entry["document"] = orjson.Fragment(source.rstrip(b"\n") or b"null")
        if self.record is not None:
            entry["record"] = self.record
        try:
            return orjson.dumps(entry, option=orjson.OPT_NON_STR_KEYS, default=safe_repr)
        except (TypeError, ValueError, RecursionError):
            # Something orjson cannot carry (a lone surrogate, an int over 64 bits, deep
            # nesting): the entry is rewritten into plain JSON values, so it is never lost.
            entry["record"] = plain(self.record)
            entry["error"] = plain(self.error)
            entry.pop("document", None)
            if self.item is not None:
                entry["document_raw"] = self.item.decode("utf-8", "replace")
            return orjson.dumps({k: v for k, v in entry.items() if v is not None})


#: how deep :func:`plain` follows containers before it summarises what is below
_PLAIN_DEPTH = 32


def safe_repr(value: object) -> str:
    """``repr(value)``, or a description of the failure when ``__repr__`` itself raises."""
    try:
        text = repr(value)
    except Exception as e:  # a user's __repr__ may do anything
        return f"<{type(value).__name__} object, repr() failed: {type(e).__name__}>"
    return text.encode("utf-8", "replace").decode("utf-8")


def plain(value: object, depth: int = 0) -> Any:
    """``value`` as JSON that orjson always accepts: str keys, 64-bit ints, valid UTF-8.

    Pure; never raises. Containers deeper than 32 levels and unknown objects become their
    :func:`safe_repr`.
    """
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if depth >= _PLAIN_DEPTH:
        return f"<{type(value).__name__} nested deeper than {_PLAIN_DEPTH} levels>"
    if isinstance(value, dict):
        return {plain_key(k): plain(v, depth + 1) for k, v in list(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in list(value)]
    return safe_repr(value)


def plain_key(key: object) -> str:
    """A dict key as a valid UTF-8 string (see :func:`plain`)."""
    if isinstance(key, str):
        return key.encode("utf-8", "replace").decode("utf-8")
    return safe_repr(key)
