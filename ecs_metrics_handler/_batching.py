"""Batching: captured entries in, one batch of bulk pairs and the rejects out.

:func:`build_batch` is pure apart from what the builder and namer do: each entry becomes
either one ``create`` pair in the batch or one :class:`~._spool.DeadLetter` (a payload that is
not a metric, a builder that raises), so one bad record never costs the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from ._capture import Entry, RecordLike
from ._dead_letter import DeadLetter, plain, safe_repr
from ._ledger import Batch
from ._serialize import bulk_pair
from .exceptions import InvalidMetricError

__all__ = ["build_batch", "describe"]

BuildSource = Callable[[RecordLike, Any, Any], bytes]


def build_batch(
    entries: Sequence[Entry],
    build_source: BuildSource,
    index_of: Callable[[float], str],
    id_prefix: str,
    encode: Callable[[Entry], bytes | None] | None = None,
) -> tuple[Batch | None, list[DeadLetter]]:
    """Build the documents of ``entries``; return the batch (None if empty) and the rejects.

    ``build_source(record, message, payload)`` returns a serialised document,
    ``index_of(created)`` the index for an event time (epoch seconds); each document's id is
    ``id_prefix`` followed by its sequence number in hex, so a retry or a replay cannot index
    it twice. The batch's ``min_seq`` is the lowest sequence number of the entries.
    ``encode(entry)``, when given, is tried first (:meth:`~._encoder.BulkEncoder.encode`: the
    same bytes, faster); where it returns ``None`` the builder and namer are used.
    """
    items: list[bytes] = []
    rejected: list[DeadLetter] = []
    nbytes = 0
    for entry in entries:
        try:
            item = None if encode is None else encode(entry)
            if item is None:
                source = build_source(entry.source, entry.message, entry.payload)
                item = bulk_pair(index_of(entry.created), f"{id_prefix}{entry.seq:x}", source)
        except InvalidMetricError as e:
            rejected.append(DeadLetter(f"invalid metric: {e.reason}", record=describe(entry)))
            continue
        except Exception as e:
            reason = f"cannot build document: {type(e).__name__}: {e}"
            rejected.append(DeadLetter(reason, record=describe(entry)))
            continue
        items.append(item)
        nbytes += len(item)
    if not items:
        return None, rejected
    return Batch(items=items, min_seq=min(e.seq for e in entries), nbytes=nbytes), rejected


def describe(entry: Entry) -> dict[str, Any]:
    """What a dead letter keeps of a record that could not become a document. Never raises."""
    message = entry.message
    try:
        text = message if isinstance(message, str) else str(message)
    except Exception:
        text = safe_repr(message)
    return {
        "logger": plain(entry.name),
        "level": plain(entry.levelname),
        "created": plain(entry.created),
        "message": plain(text),
        "payload": plain(entry.payload),
        "pid": os.getpid(),
    }
