"""Delivering one live batch: send, judge, retry with backoff, and say where every item went.

:func:`deliver` is the whole retry policy of the live path as a function of the items, a
:class:`~._shipper.Shipper`, the :class:`~._breaker.OutageBreaker` and a few callables (how to
wait, whether the handler is closing, how to record progress). It starts no thread and reads
no clock of its own, so it is tested with a scripted shipper and a fake clock; the worker
runs it on the sender thread and then does the accounting, the reporting and the disk writes
the :class:`Delivery` asks for.

Every item of the batch ends in exactly one of ``done`` (acknowledged, 409 duplicates
included), ``letters`` (refused for good, item by item) and ``left`` (to spool, with
``reason``), unless ``taken`` is true: then the worker's ``close()`` took the batch's
unacknowledged items itself, and ``left`` is empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ._breaker import OutageBreaker
from ._bulk_outcome import ShipError
from ._dead_letter import DeadLetter, refusal_reason
from ._shipper import Shipper

__all__ = ["CLOSING", "REFUSED", "UNAVAILABLE", "Delivery", "RetryPolicy", "deliver"]

#: the spool reasons :func:`deliver` gives
CLOSING = "handler closed before delivery"
UNAVAILABLE = "cluster unavailable"
REFUSED = "refused"
#: HTTP status of a request over the cluster's ``http.max_content_length``; the failure folder's
#: replay splits such a request (see :func:`~._resend.send_items`)
_TOO_LARGE = 413


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a batch is retried and how long to wait before each retry.

    ``max_retries`` retries at most (``>= 0``); ``backoff(attempt)`` is the delay in seconds
    before retry number ``attempt`` (1 for the first).
    """

    max_retries: int
    backoff: Callable[[int], float]


@dataclass(slots=True)
class Delivery:
    """Where the items of one :func:`deliver` call went, and what the worker must report."""

    done: int = 0
    duplicates: int = 0
    #: items retried (counted once per retry)
    retried: int = 0
    letters: list[DeadLetter] = field(default_factory=list)
    #: items to put in the failure folder (or count dropped), for ``reason``
    left: list[bytes] = field(default_factory=list)
    reason: str = ""
    #: the breaker was open when this batch came up: spool it with those waiting behind it
    outage: bool = False
    #: ``close()`` took the batch while it was being sent: nothing more to do with it
    taken: bool = False
    #: the cluster answered after the breaker had been open (report "answers again")
    recovered: bool = False
    #: a non-retryable request failure (401, 403...), to report as an error
    refusal: str | None = None
    #: retries exhausted: the last failure, to report as a warning
    gave_up: str | None = None


def deliver(
    items: list[bytes],
    shipper: Shipper,
    *,
    policy: RetryPolicy,
    breaker: OutageBreaker,
    hand_over: Callable[[list[bytes]], bool],
    wait: Callable[[float], bool],
    halted: Callable[[], bool],
    before_each: Callable[[], None] = lambda: None,
) -> Delivery:
    """Send ``items`` (bulk pairs), retrying what the cluster answers 429/5xx. Blocking I/O.

    ``hand_over(unacknowledged)`` records, before each request and after each answer, which
    items are not acknowledged yet; it returns False when ``close()`` has taken the batch, and
    then the answer that has just come back is not counted (the spool holds those items).
    ``wait(seconds)`` sleeps before a retry and returns True when woken because the handler is
    closing; ``halted()`` says whether it is. ``before_each`` runs before each request (the
    worker installs its templates there; it may raise :class:`ShipError`).

    After the breaker has opened, a batch is a single probe: no retry cycle. While it is open
    and no probe is due, nothing is sent (``outage``).
    """
    out = Delivery()
    remaining = items
    attempt = 0
    probing = breaker.down
    while True:
        if halted():
            return _leave(out, remaining, CLOSING)
        if not breaker.allows_request():
            out.outage = True
            return _leave(out, remaining, UNAVAILABLE)
        if not hand_over(remaining):
            out.taken = True
            return out
        failure: ShipError | None = None
        try:
            before_each()
            result = shipper.bulk(b"".join(remaining), len(remaining))
        except ShipError as e:
            failure = e
            retry = remaining
        else:
            out.recovered = breaker.answered() or out.recovered
            retry = [remaining[pos] for pos in result.retry]
            if not hand_over(retry):
                out.taken = True
                return out
            out.done += result.done
            out.duplicates += result.duplicates
            out.letters.extend(
                DeadLetter(
                    refusal_reason(status, error), status=status, error=error, item=remaining[p]
                )
                for p, status, error in result.dead
            )
        if not retry:
            return out
        if failure is not None and not failure.retryable:
            out.refusal = failure.reason
            if failure.status != _TOO_LARGE:  # a request too large is no outage: the rest ships
                breaker.failed()
            return _leave(out, retry, REFUSED)
        attempt += 1
        if failure is not None and probing:
            breaker.failed()
            return _leave(out, retry, UNAVAILABLE)
        if attempt > policy.max_retries:
            out.gave_up = (
                failure.reason if failure else f"{len(retry)} item(s) still rejected (429/5xx)"
            )
            if failure is not None:
                breaker.failed()
            return _leave(out, retry, UNAVAILABLE)
        out.retried += len(retry)
        remaining = retry
        wait(policy.backoff(attempt))  # woken early when closing: the next check spools


def _leave(out: Delivery, items: list[bytes], reason: str) -> Delivery:
    out.left = items
    out.reason = reason
    return out
