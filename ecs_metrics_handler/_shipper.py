"""Sending bulk bodies to Elasticsearch or OpenSearch, and judging the answer per item.

A :class:`Shipper` takes a ready NDJSON body of ``create`` operations and returns a
:class:`BulkResult` that sorts every item into done, retry or dead letter:

* ``2xx``, and ``409`` on ``create`` (the document id is ours: a retry or a replay whose
  first send had landed) -> done;
* ``429`` and ``5xx`` -> retry;
* any other status (a mapping conflict, a document the server refuses) -> dead letter, with
  the server's reason.

A failure of the whole request raises :class:`ShipError`: connection errors, timeouts, ``429``
and ``5xx`` are ``retryable``; anything else (``401``, ``403``, ``413``...) is not, and the
caller keeps the documents in the failure folder rather than dead-lettering them, since the
documents themselves are not at fault.

The clients are built lazily on first use, in the worker thread, so that a fork never shares
a connection pool. Requests-based auth (Kerberos, AWS SigV4) goes through ``http_auth=`` with
``node_class="requests"`` (elasticsearch-py 8.2+), or ``connection_class=
RequestsHttpConnection`` for opensearch-py.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._client_serializers import elasticsearch_serializers
from ._config import AuthType, Backend, HandlerOptions
from ._redact import redact_text
from ._tls import tls_failure_cause
from .exceptions import ConfigurationError, MissingDependencyError

__all__ = [
    "BulkResult",
    "ElasticsearchShipper",
    "OpenSearchShipper",
    "ShipError",
    "Shipper",
    "describe_error",
    "judge",
    "make_shipper",
]

# Only what judging needs comes back from the server: a much smaller answer to parse.
_FILTER_PATH = "errors,items.*.status,items.*.error"


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


class Shipper(Protocol):
    """The seam between the worker and a cluster. Implementations are used from one thread."""

    def bulk(self, body: bytes, count: int) -> BulkResult:
        """Send ``body`` (``count`` create operations). Blocking, bounded by the request timeout."""
        ...

    def put_templates(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        """Install the component and index templates (``{"component": ..., "index": ...}``)."""
        ...

    def check(self) -> bool:
        """Whether the cluster answers (``GET /_cluster/health``)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _requests_auth(options: HandlerOptions) -> Any:
    """The requests auth object of Kerberos or AWS SigV4, or None for other auth types."""
    if options.auth_type is AuthType.KERBEROS_AUTH:
        try:
            from requests_kerberos import OPTIONAL, HTTPKerberosAuth
        except ImportError as e:
            raise MissingDependencyError(
                "Kerberos authentication", "requests-kerberos", "kerberos"
            ) from e
        return HTTPKerberosAuth(mutual_authentication=OPTIONAL)
    if options.auth_type is AuthType.AWS_SIGNED_AUTH:
        try:
            from requests_aws4auth import AWS4Auth
        except ImportError as e:
            raise MissingDependencyError(
                "AWS SigV4 authentication", "requests-aws4auth", "aws"
            ) from e
        return AWS4Auth(
            options.aws_access_key,
            options.aws_secret_key,
            options.aws_region,
            options.aws_service,
            session_token=options.aws_session_token,
        )
    return None


_REQUESTS_NODE: type | None = None


def requests_node_class() -> type:
    """elastic-transport's requests node, deaf to the environment like the default node.

    Its requests session would otherwise let ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` replace
    ``ca_certs`` (a private CA then fails with "TLS error") and turn ``verify_ssl=False`` back
    on, and would pick up proxy variables and ``~/.netrc`` that the default node ignores.
    Built once, on first use (imports elastic-transport).
    """
    global _REQUESTS_NODE
    if _REQUESTS_NODE is None:
        from elastic_transport import NodeConfig, RequestsHttpNode

        class _RequestsNode(RequestsHttpNode):
            def __init__(self, config: NodeConfig) -> None:
                super().__init__(config)
                self.session.trust_env = False

        _REQUESTS_NODE = _RequestsNode
    return _REQUESTS_NODE


_REQUESTS_CONNECTION: type | None = None


def requests_connection_class() -> type:
    """opensearch-py's ``RequestsHttpConnection``, deaf to the environment for the same reasons
    as :func:`requests_node_class`. Built once, on first use (imports opensearch-py)."""
    global _REQUESTS_CONNECTION
    if _REQUESTS_CONNECTION is None:
        from opensearchpy import RequestsHttpConnection

        class _RequestsConnection(RequestsHttpConnection):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.session.trust_env = False

        _REQUESTS_CONNECTION = _RequestsConnection
    return _REQUESTS_CONNECTION


def check_optional_dependencies(options: HandlerOptions) -> None:
    """Raise :class:`MissingDependencyError` now, at construction, for a missing extra."""
    _requests_auth(options)
    if options.backend is Backend.OPENSEARCH:
        try:
            import opensearchpy  # noqa: F401
        except ImportError as e:
            raise MissingDependencyError(
                "the OpenSearch backend", "opensearch-py", "opensearch"
            ) from e


class _LazyClient:
    """A client built on first use (in the worker thread), or an injected one left open."""

    def __init__(self, options: HandlerOptions, client: Any = None) -> None:
        self._options = options
        self._injected = client is not None
        self._client: Any = client
        self._lock = threading.Lock()

    def _build(self) -> Any:
        raise NotImplementedError

    def _get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
        return self._client

    def client(self) -> Any:
        """The client, built on first use (in the calling thread)."""
        return self._get()

    def close(self) -> None:
        """Close the client this object built; an injected client is the caller's to close."""
        client, self._client = self._client, None
        if client is not None and not self._injected:
            with contextlib.suppress(Exception):  # closing is best effort
                client.close()


class ElasticsearchShipper(_LazyClient):
    """Ships through elasticsearch-py 8.x or 9.x; a ready client may be injected."""

    def _build(self) -> Any:
        from elasticsearch import Elasticsearch

        o = self._options
        kwargs: dict[str, Any] = {
            "hosts": list(o.hosts),
            "request_timeout": o.request_timeout,
            # Connection errors move on to the next host; anything else is judged by us.
            "max_retries": max(0, len(o.hosts) - 1),
            "retry_on_timeout": False,
            "retry_on_status": (),
            "verify_certs": o.verify_ssl,
        }
        if not o.verify_ssl:
            kwargs["ssl_show_warn"] = False
        if o.ca_certs:
            kwargs["ca_certs"] = o.ca_certs
        if o.client_cert:
            kwargs["client_cert"] = o.client_cert
        if o.client_key:
            kwargs["client_key"] = o.client_key
        kwargs["serializers"] = elasticsearch_serializers()
        if o.auth_type is AuthType.BASIC_AUTH:
            kwargs["basic_auth"] = tuple(o.auth_details or ("", ""))
        elif o.auth_type is AuthType.API_KEY:
            details = o.auth_details
            kwargs["api_key"] = tuple(details) if isinstance(details, (tuple, list)) else details
        else:
            auth = _requests_auth(o)
            if auth is not None:
                kwargs["http_auth"] = auth
                kwargs["node_class"] = requests_node_class()
        return Elasticsearch(**kwargs)

    def bulk(self, body: bytes, count: int) -> BulkResult:
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        client = self._get()
        try:
            resp = client.bulk(operations=body, filter_path=_FILTER_PATH)
        except ApiError as e:
            status = getattr(e, "status_code", None) or getattr(
                getattr(e, "meta", None), "status", None
            )
            raise ShipError(
                f"bulk request refused: HTTP {status}: {_auth_hint(self._options, status)}"
                f"{describe_error(e)}",
                retryable=is_retryable_status(status),
                status=status,
            ) from e
        except (TransportConnectionError, TransportError) as e:
            raise ShipError(f"cluster unreachable: {describe_error(e)}", retryable=True) from e
        except Exception as e:
            # The product check or anything unforeseen: never let it kill the worker.
            raise ShipError(
                f"bulk request failed: {type(e).__name__}: {describe_error(e)}", retryable=True
            ) from e
        return judge(resp.body, count)

    def put_templates(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        client = self._get()
        client.perform_request(
            "PUT",
            f"/_component_template/{templates['component_name']}",
            body=dict(templates["component"]),
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        client.perform_request(
            "PUT",
            f"/_index_template/{templates['index_name']}",
            body=dict(templates["index"]),
            headers={"content-type": "application/json", "accept": "application/json"},
        )

    def check(self) -> bool:
        try:
            self._get().cluster.health(request_timeout=min(5.0, self._options.request_timeout))
        except Exception:
            return False
        return True


class OpenSearchShipper(_LazyClient):
    """Ships through opensearch-py (elasticsearch-py refuses OpenSearch's answers)."""

    def _build(self) -> Any:
        from opensearchpy import OpenSearch

        o = self._options
        kwargs: dict[str, Any] = {
            "hosts": list(o.hosts),
            "timeout": o.request_timeout,
            "max_retries": max(0, len(o.hosts) - 1),
            "retry_on_timeout": False,
            "verify_certs": o.verify_ssl,
            "ssl_show_warn": o.verify_ssl,
        }
        if any(h.startswith("https://") for h in o.hosts):
            kwargs["use_ssl"] = True
        if o.ca_certs:
            kwargs["ca_certs"] = o.ca_certs
        if o.client_cert:
            kwargs["client_cert"] = o.client_cert
        if o.client_key:
            kwargs["client_key"] = o.client_key
        if o.auth_type is AuthType.BASIC_AUTH:
            kwargs["http_auth"] = tuple(o.auth_details or ("", ""))
        elif o.auth_type is AuthType.API_KEY:
            details = o.auth_details
            key = ":".join(details) if isinstance(details, (tuple, list)) else details
            kwargs["headers"] = {"authorization": f"ApiKey {key}"}
        else:
            auth = _requests_auth(o)
            if auth is not None:
                kwargs["http_auth"] = auth
                kwargs["connection_class"] = requests_connection_class()
        return OpenSearch(**kwargs)

    def bulk(self, body: bytes, count: int) -> BulkResult:
        from opensearchpy.exceptions import ConnectionError as OSConnectionError
        from opensearchpy.exceptions import TransportError as OSTransportError

        client = self._get()
        try:
            resp = client.bulk(body=body, filter_path=_FILTER_PATH)
        except OSConnectionError as e:  # includes timeouts
            raise ShipError(f"cluster unreachable: {describe_error(e)}", retryable=True) from e
        except OSTransportError as e:
            status = e.status_code if isinstance(e.status_code, int) else None
            raise ShipError(
                f"bulk request refused: HTTP {status}: {_auth_hint(self._options, status)}"
                f"{describe_error(e)}",
                retryable=is_retryable_status(status),
                status=status,
            ) from e
        except Exception as e:
            raise ShipError(
                f"bulk request failed: {type(e).__name__}: {describe_error(e)}", retryable=True
            ) from e
        return judge(resp, count)

    def put_templates(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        client = self._get()
        client.transport.perform_request(
            "PUT",
            f"/_component_template/{templates['component_name']}",
            body=dict(templates["component"]),
        )
        client.transport.perform_request(
            "PUT", f"/_index_template/{templates['index_name']}", body=dict(templates["index"])
        )

    def check(self) -> bool:
        try:
            self._get().cluster.health(params={"timeout": "5s"})
        except Exception:
            return False
        return True


def make_shipper(options: HandlerOptions, client: Any = None) -> Shipper:
    """The shipper for ``options.backend``, or for the type of an injected ``client``."""
    if client is not None:
        module = type(client).__module__
        if module.startswith("opensearchpy"):
            return OpenSearchShipper(options, client)
        if module.startswith("elasticsearch"):
            return ElasticsearchShipper(options, client)
        if not callable(getattr(client, "bulk", None)):
            raise ConfigurationError("client", "an Elasticsearch or OpenSearch client", client)
    if options.backend is Backend.OPENSEARCH:
        return OpenSearchShipper(options, client)
    return ElasticsearchShipper(options, client)


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
