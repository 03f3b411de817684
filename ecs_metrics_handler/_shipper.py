"""Sending bulk bodies to Elasticsearch or OpenSearch: the two backends behind :class:`Shipper`.

A shipper takes a ready NDJSON body of ``create`` operations and returns the
:class:`~._bulk_outcome.BulkResult` that :func:`~._bulk_outcome.judge` makes of the answer (every
item done, retry or dead letter). A failure of the whole request raises the
:class:`~._bulk_outcome.ShipError` of :func:`~._bulk_outcome.bulk_failure`: connection errors,
timeouts, ``429`` and ``5xx`` are ``retryable``; anything else (``401``, ``403``, ``413``...) is
not, and the caller keeps the documents in the failure folder rather than dead-lettering them,
since the documents themselves are not at fault.

The clients are built lazily on first use, in the worker thread, so that a fork never shares
a connection pool. Requests-based auth (Kerberos, AWS SigV4) goes through ``http_auth=`` with
``node_class="requests"`` (elasticsearch-py 8.2+), or ``connection_class=
RequestsHttpConnection`` for opensearch-py.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from ._bulk_outcome import (
    BulkResult,
    ClientErrors,
    bulk_failure,
    elasticsearch_errors,
    judge,
    opensearch_errors,
)
from ._client_serializers import elasticsearch_serializers
from ._config import AuthType, Backend, HandlerOptions
from .exceptions import ConfigurationError, MissingDependencyError

__all__ = [
    "ElasticsearchShipper",
    "OpenSearchShipper",
    "Shipper",
    "make_shipper",
]

# Only what judging needs comes back from the server: a much smaller answer to parse.
_FILTER_PATH = "errors,items.*.status,items.*.error"


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


def _tls_files(options: HandlerOptions) -> dict[str, str]:
    """The ``ca_certs``, ``client_cert`` and ``client_key`` arguments of either client (paths
    to PEM files), only those set."""
    files = {
        "ca_certs": options.ca_certs,
        "client_cert": options.client_cert,
        "client_key": options.client_key,
    }
    return {name: path for name, path in files.items() if path}


class _LazyClient:
    """A client built on first use (in the worker thread), or an injected one left open.

    Sends bulk bodies and judges the answers; a subclass says how to build its library's
    client, send a body with it, read the answer, and which exceptions the library raises.
    """

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

    def _client_errors(self) -> ClientErrors:
        raise NotImplementedError

    def _send_bulk(self, client: Any, body: bytes) -> Any:
        raise NotImplementedError

    def _answer_body(self, response: Any) -> Mapping[str, Any]:
        """The bulk answer as a mapping; the response itself unless a subclass wraps it."""
        body: Mapping[str, Any] = response
        return body

    def client(self) -> Any:
        """The client, built on first use (in the calling thread)."""
        return self._get()

    def bulk(self, body: bytes, count: int) -> BulkResult:
        """Send ``body`` (``count`` create operations) and judge the answer per item.

        Blocking, bounded by the request timeout. A failure of the whole request raises the
        :class:`~._bulk_outcome.ShipError` of :func:`~._bulk_outcome.bulk_failure`.
        """
        errors = self._client_errors()
        client = self._get()
        try:
            response = self._send_bulk(client, body)
        except Exception as e:
            # The product check or anything unforeseen: never let it kill the worker.
            raise bulk_failure(e, errors, self._options) from e
        return judge(self._answer_body(response), count)

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
        kwargs.update(_tls_files(o))
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

    def _client_errors(self) -> ClientErrors:
        return elasticsearch_errors()

    def _send_bulk(self, client: Any, body: bytes) -> Any:
        return client.bulk(operations=body, filter_path=_FILTER_PATH)

    def _answer_body(self, response: Any) -> Mapping[str, Any]:
        body: Mapping[str, Any] = response.body
        return body

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
        kwargs.update(_tls_files(o))
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

    def _client_errors(self) -> ClientErrors:
        return opensearch_errors()

    def _send_bulk(self, client: Any, body: bytes) -> Any:
        return client.bulk(body=body, filter_path=_FILTER_PATH)

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
