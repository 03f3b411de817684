"""What a bulk request came to: the outcome of each item, or the failure of the whole request.

:func:`judge` sorts the items of a bulk answer into a :class:`BulkResult`:

* ``2xx``, and ``409`` on ``create`` (the document id is ours: a retry or a replay whose
  first send had landed) -> done;
* ``429`` and ``5xx`` -> retry;
* any other status (a mapping conflict, a document the server refuses) -> dead letter, with
  the server's reason.

:func:`bulk_failure` turns an exception of the whole request into a :class:`ShipError`, for
either client library, through the library's :class:`ClientErrors` (its exception classes and
how to read an HTTP status from them): connection errors, timeouts, ``429`` and ``5xx`` are
``retryable``; anything else (``401``, ``403``, ``413``...) is not.

Pure apart from the client imports of :func:`elasticsearch_errors` and
:func:`opensearch_errors`, which happen on first call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import AuthType, HandlerOptions
from ._redact import redact_text
from ._tls import tls_failure_cause

__all__ = [
    "BulkResult",
    "ClientErrors",
    "ShipError",
    "bulk_failure",
    "describe_error",
    "elasticsearch_errors",
    "is_retryable_status",
    "judge",
    "opensearch_errors",
]


class ShipError(Exception):
    """The whole bulk request failed. ``retryable`` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool, status: int | None = None) -> None:
        self.reason = reason
        self.retryable = retryable
        self.status = status
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_ship_error, (self.reason, self.retryable, self.status))


def _rebuild_ship_error(reason: str, retryable: bool, status: int | None) -> ShipError:
    return ShipError(reason, retryable=retryable, status=status)


@dataclass(slots=True)
class BulkResult:
    """Per-item outcome of one bulk request; positions index the request's items."""

    done: int = 0
    duplicates: int = 0
    retry: list[int] = field(default_factory=list)
    dead: list[tuple[int, int, Any]] = field(default_factory=list)  # (position, status, error)


def judge(body: Mapping[str, Any], count: int) -> BulkResult:
    """Sort the ``count`` items of a bulk answer ``body`` into done / retry / dead letter.

    Pure. An answer with ``errors: false`` and one item per document sent is all done. An
    answer that is not a bulk answer (no ``errors`` flag, no ``items`` list: a proxy's ``{}``)
    proves nothing, so every item is marked retry; so are the items missing from an answer
    with fewer items than sent (a proxy that truncates).
    """
    result = BulkResult()
    items = body.get("items")
    if "errors" not in body or not isinstance(items, list):
        result.retry = list(range(count))
        return result
    if not body["errors"] and len(items) == count:
        result.done = count
        return result
    for position in range(count):
        if position >= len(items):
            result.retry.append(position)
            continue
        item = items[position]
        op: Any = next(iter(item.values()), {}) if isinstance(item, Mapping) else {}
        status = _status_of(op)
        if 200 <= status < 300:
            result.done += 1
        elif status == 409:
            result.done += 1
            result.duplicates += 1
        elif status == 429 or status >= 500 or status == 0:
            result.retry.append(position)
        else:
            result.dead.append((position, status, op.get("error")))
    return result


def _status_of(op: Any) -> int:
    """An item's HTTP status; 0 (retry) when the item is not what a bulk answer holds."""
    if not isinstance(op, Mapping):
        return 0
    try:
        return int(op.get("status", 0) or 0)
    except (TypeError, ValueError):
        return 0


def is_retryable_status(status: int | None) -> bool:
    """Whether a whole-request HTTP status is worth retrying."""
    return status is None or status == 429 or status >= 500


@dataclass(frozen=True, slots=True)
class ClientErrors:
    """One client library's exceptions, as :func:`bulk_failure` needs them.

    ``unreachable``: the classes of a request that got no answer (connection errors, timeouts);
    checked first, as they may subclass ``refused``. ``refused``: the classes of an HTTP error
    answer, whose status ``status_of`` reads (None when it has none).
    """

    unreachable: tuple[type[BaseException], ...]
    refused: tuple[type[BaseException], ...]
    status_of: Callable[[BaseException], int | None]


def bulk_failure(e: Exception, errors: ClientErrors, options: HandlerOptions) -> ShipError:
    """The :class:`ShipError` for exception ``e`` of a whole bulk request. Pure.

    No answer -> "cluster unreachable", retryable; an HTTP error answer -> "bulk request
    refused" with its status, retryable per :func:`is_retryable_status`; anything else (the
    product check, anything unforeseen) -> "bulk request failed", retryable, so that it never
    kills the worker.
    """
    if isinstance(e, errors.unreachable):
        return ShipError(f"cluster unreachable: {describe_error(e)}", retryable=True)
    if isinstance(e, errors.refused):
        status = errors.status_of(e)
        return ShipError(
            f"bulk request refused: HTTP {status}: {_auth_hint(options, status)}"
            f"{describe_error(e)}",
            retryable=is_retryable_status(status),
            status=status,
        )
    return ShipError(
        f"bulk request failed: {type(e).__name__}: {describe_error(e)}", retryable=True
    )


@functools.cache
def elasticsearch_errors() -> ClientErrors:
    """elasticsearch-py's exceptions (imports it and elastic-transport on first call)."""
    from elastic_transport import TransportError  # connection errors and timeouts included
    from elasticsearch import ApiError

    def status_of(e: BaseException) -> int | None:
        status = getattr(e, "status_code", None) or getattr(
            getattr(e, "meta", None), "status", None
        )
        return status

    return ClientErrors(unreachable=(TransportError,), refused=(ApiError,), status_of=status_of)


@functools.cache
def opensearch_errors() -> ClientErrors:
    """opensearch-py's exceptions (imports it on first call)."""
    from opensearchpy.exceptions import ConnectionError as OSConnectionError  # with timeouts
    from opensearchpy.exceptions import TransportError as OSTransportError

    def status_of(e: BaseException) -> int | None:
        status = getattr(e, "status_code", None)
        return status if isinstance(status, int) else None

    return ClientErrors(
        unreachable=(OSConnectionError,), refused=(OSTransportError,), status_of=status_of
    )


def _auth_hint(options: HandlerOptions, status: int | None) -> str:
    """What a ``401`` means under ``KERBEROS_AUTH`` (requests-kerberos sends the request
    without a token when the process has no usable ticket), else ``""``."""
    if status == 401 and options.auth_type is AuthType.KERBEROS_AUTH:
        return (
            "Kerberos authentication failed (no usable Kerberos credentials for the cluster's "
            "HTTP/<host> service: run kinit or check KRB5CCNAME, the keytab and the URL's "
            "host name): "
        )
    return ""


def describe_error(e: BaseException, limit: int = 300) -> str:
    """What a report says of a client error: a TLS failure's cause (``_tls.py``) or the error's
    text, redacted, at most ``limit`` characters."""
    text = redact_text(tls_failure_cause(e) or str(e) or type(e).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."
