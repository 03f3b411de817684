"""Sending stored documents again: the one path of both the handler's replay and :func:`replay`.

:func:`send_items` ships bulk pairs in chunks through a :class:`~._shipper.Shipper` and sorts
every document into exactly one of: acknowledged, dead letter, quarantined (the cluster
refuses the request as a whole) or left (to try later). No threads, no clock, no disk: the
callers decide about waiting, accounting and files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._bulk_outcome import ShipError
from ._dead_letter import DeadLetter, refusal_reason
from ._shipper import Shipper

__all__ = ["SendOutcome", "send_items"]

#: Whole-request refusals that say nothing of the documents: the credentials (or the user's
#: privileges) are wrong, so the documents wait in the folder instead of quarantine.
_NOT_THE_DOCUMENTS_FAULT: Final = frozenset({401, 403})
#: HTTP status of a request over the cluster's ``http.max_content_length``
_TOO_LARGE = 413


@dataclass(slots=True)
class SendOutcome:
    """Where each document of one :func:`send_items` call went."""

    done: int = 0
    duplicates: int = 0
    letters: list[DeadLetter] = field(default_factory=list)
    #: refused as a whole request, with the cluster's reason: keep for a person, never retry
    refused: list[bytes] = field(default_factory=list)
    refused_reason: str = ""
    #: not sent or still retryable (429/5xx items, the cluster unreachable)
    left: list[bytes] = field(default_factory=list)
    #: why sending stopped early (the cluster unreachable or busy), else ``None``
    stopped: str | None = None
    #: whether the cluster answered at least once
    answered: bool = False


def send_items(
    shipper: Shipper,
    items: Sequence[bytes],
    chunk_size: int,
    *,
    before_each: Callable[[], None] | None = None,
    halted: Callable[[], bool] = lambda: False,
) -> SendOutcome:
    """Send ``items`` (bulk pairs) in chunks of ``chunk_size``, oldest first. Blocking I/O.

    Stops sending at the first chunk that cannot be delivered now (the cluster unreachable,
    items answered 429/5xx, the credentials refused with ``401``/``403``: not the documents'
    fault, they wait for the credentials to be fixed) or when ``halted()`` is true: that
    chunk's undelivered items and every later chunk are ``left``. A ``413`` splits the
    request in halves down to single documents (a single document too large is a dead
    letter); any other non-retryable request-level refusal (``400``) moves the chunk to
    ``refused``. ``before_each`` runs before each request (the handler installs its templates
    there).
    """
    outcome = SendOutcome()
    pending = [list(items[i : i + chunk_size]) for i in range(0, len(items), max(1, chunk_size))]
    pending.reverse()  # a stack: split halves go back on top, in order
    while pending:
        chunk = pending.pop()
        if outcome.stopped is not None or halted():
            outcome.left.extend(chunk)
            continue
        try:
            if before_each is not None:
                before_each()
            result = shipper.bulk(b"".join(chunk), len(chunk))
        except ShipError as e:
            if e.retryable or e.status in _NOT_THE_DOCUMENTS_FAULT:
                outcome.stopped = e.reason
                outcome.left.extend(chunk)
                continue
            outcome.answered = True
            if e.status == _TOO_LARGE and len(chunk) > 1:
                half = len(chunk) // 2
                pending.append(chunk[half:])
                pending.append(chunk[:half])
            elif e.status == _TOO_LARGE:
                outcome.letters.append(
                    DeadLetter("larger than the cluster accepts", status=e.status, item=chunk[0])
                )
            else:
                outcome.refused.extend(chunk)
                outcome.refused_reason = outcome.refused_reason or e.reason
            continue
        outcome.answered = True
        outcome.done += result.done
        outcome.duplicates += result.duplicates
        outcome.letters.extend(
            DeadLetter(refusal_reason(status, error), status=status, error=error, item=chunk[pos])
            for pos, status, error in result.dead
        )
        if result.retry:
            outcome.left.extend(chunk[pos] for pos in result.retry)
            outcome.stopped = f"{len(result.retry)} item(s) answered 429/5xx"
    return outcome
