"""``python -m ecs_metrics_handler check``: would the handler deliver with these options?

:func:`check_cluster` connects with the handler's own options (and its own client, built the
same way) and answers, for a person: is the cluster reachable, which product and version
answered, how TLS went, who the credentials authenticate as, whether that user may write to
the handler's indices (``_security/user/_has_privileges`` on Elasticsearch; "unknown" on
OpenSearch, whose security plugin has no such question), and whether the handler's index
template is installed. Each answer is a :class:`Finding`; ``blocking`` ones would stop
delivery (unreachable, TLS failure, refused credentials, no write privilege). A missing
template does not: documents then ship with dynamic mappings.

Blocking: a handful of requests, each bounded by ``request_timeout``. Every text is redacted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._bulk_outcome import describe_error
from ._config import Backend, HandlerOptions
from ._shipper import ElasticsearchShipper, OpenSearchShipper, make_shipper

__all__ = ["Finding", "check_cluster"]


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One answer: ``topic`` (``"reachable"``, ``"tls"``...), what was found, and whether it
    would stop delivery."""

    topic: str
    text: str
    blocking: bool = False


def _status_of(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "meta", None), "status", None)
    return status if isinstance(status, int) else None


class _Requests:
    """``request(method, path, body) -> (status, body)`` over either client; an HTTP error
    status comes back as a status, a connection failure raises."""

    def __init__(self, client: Any, backend: Backend) -> None:
        self._client = client
        self._backend = backend

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            if self._backend is Backend.OPENSEARCH:
                answer = self._client.transport.perform_request(method, path, body=body)
                return 200, answer
            headers = {"accept": "application/json"}
            if body is not None:
                headers["content-type"] = "application/json"
            response = self._client.perform_request(method, path, headers=headers, body=body)
            return int(response.meta.status), response.body
        except Exception as e:
            status = _status_of(e)
            if status is None:
                raise
            info = getattr(e, "info", None)
            return status, info if info is not None else getattr(e, "body", None)


def _tls_finding(options: HandlerOptions) -> Finding:
    https = [h for h in options.hosts if h.startswith("https://")]
    if not https:
        return Finding("tls", "none: plain http")
    if not options.verify_ssl:
        return Finding("tls", "https, certificate NOT verified (verify_ssl=False)")
    against = f"ca_certs {options.ca_certs}" if options.ca_certs else "the system's CAs"
    client = ", client certificate sent" if options.client_cert else ""
    return Finding("tls", f"https, certificate verified against {against}{client}")


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("reason") or error.get("type") or "")[:200]
        if isinstance(error, str):
            return error[:200]
    return ""


def check_cluster(options: HandlerOptions, client: Any = None) -> list[Finding]:
    """Ask the cluster what :mod:`this module <ecs_metrics_handler._check>` says; never raises
    for a cluster's answer or absence (those are findings)."""
    shipper = make_shipper(options, client)
    assert isinstance(shipper, (ElasticsearchShipper, OpenSearchShipper))
    findings: list[Finding] = []
    try:
        request = _Requests(shipper.client(), options.backend)
        findings.extend(_check(options, request))
    finally:
        if client is None:
            shipper.close()
    return findings


def _check(options: HandlerOptions, request: _Requests) -> list[Finding]:
    product = "OpenSearch" if options.backend is Backend.OPENSEARCH else "Elasticsearch"
    try:
        status, info = request("GET", "/")
    except Exception as e:
        tls = _tls_finding(options)
        cause = describe_error(e)
        if cause.startswith("TLS "):
            return [
                Finding("reachable", "no: the TLS handshake failed", blocking=True),
                Finding("tls", cause, blocking=True),
            ]
        hint = ""
        if type(e).__name__ == "UnsupportedProductError":
            hint = " (is it OpenSearch? then use --opensearch)"
        return [Finding("reachable", f"no: {type(e).__name__}: {cause}{hint}", blocking=True), tls]
    findings = [_tls_finding(options)]
    if status in (401, 403):
        findings.insert(0, Finding("reachable", f"yes ({product} answered HTTP {status})"))
        findings.append(
            Finding(
                "authentication",
                f"refused (HTTP {status}): {_reason(info) or 'wrong credentials?'}",
                blocking=True,
            )
        )
        return findings
    if status in (404, 405):
        # Some distributions (the integ-test ones) have no "GET /": ask the node instead.
        status, nodes = request("GET", "/_nodes/_local?filter_path=cluster_name,nodes.*.version")
        if status == 200 and isinstance(nodes, dict):
            versions = [n.get("version") for n in (nodes.get("nodes") or {}).values()]
            info = {"cluster_name": nodes.get("cluster_name"), "version": {"number": versions[0]}}
    if status >= 400 or not isinstance(info, dict):
        findings.insert(
            0, Finding("reachable", f"answered HTTP {status}: {_reason(info)}", blocking=True)
        )
        return findings
    version = info.get("version") or {}
    name = "OpenSearch" if version.get("distribution") == "opensearch" else product
    number = version.get("number", "?")
    findings.insert(
        0, Finding("reachable", f"yes: {name} {number} (cluster {info.get('cluster_name')!r})")
    )
    if options.backend is Backend.OPENSEARCH:
        findings.extend(_opensearch_security(request))
    else:
        findings.extend(_elasticsearch_security(options, request))
    findings.append(_template(options, request))
    return findings


def _targets(options: HandlerOptions) -> list[str]:
    return [options.data_stream] if options.data_stream else [f"{options.es_index_name}-*"]


def _elasticsearch_security(options: HandlerOptions, request: _Requests) -> list[Finding]:
    status, body = request("GET", "/_security/_authenticate")
    if status != 200:
        reason = _reason(body)
        # No security endpoint (integ-test distributions: 400, 404, or 405 from another route)
        # or security switched off (500 "security must be enabled").
        if status in (400, 404, 405) or (status == 500 and "security" in reason.lower()):
            return [
                Finding("authentication", f"none: the cluster runs without security ({reason})"),
                Finding("privileges", "anyone may write (no security)"),
            ]
        return [
            Finding(
                "authentication",
                f"refused (HTTP {status}): {reason or '?'}",
                blocking=status == 401,
            )
        ]
    realm = (body.get("authentication_realm") or {}).get("name", "?")
    kind = body.get("authentication_type", "?")
    findings = [
        Finding("authentication", f"ok: user {body.get('username')!r} ({kind}, realm {realm})")
    ]
    wanted = ["create_doc", "create_index"] if not options.data_stream else ["create_doc"]
    query: dict[str, Any] = {"index": [{"names": _targets(options), "privileges": wanted}]}
    if options.install_template:
        query["cluster"] = ["manage_index_templates"]
    status, answer = request("POST", "/_security/user/_has_privileges", query)
    if status != 200 or not isinstance(answer, dict):
        findings.append(Finding("privileges", f"unknown (HTTP {status}: {_reason(answer)})"))
        return findings
    missing = [
        f"{privilege} on {index}"
        for index, privileges in (answer.get("index") or {}).items()
        for privilege, granted in privileges.items()
        if not granted
    ]
    missing += [f"cluster {p}" for p, ok in (answer.get("cluster") or {}).items() if not ok]
    targets = ", ".join(_targets(options))
    if missing:
        findings.append(
            Finding("privileges", f"may NOT write to {targets}: missing {', '.join(missing)}", True)
        )
    else:
        findings.append(Finding("privileges", f"may write to {targets} ({', '.join(wanted)})"))
    return findings


def _opensearch_security(request: _Requests) -> list[Finding]:
    status, body = request("GET", "/_plugins/_security/authinfo")
    if status == 200 and isinstance(body, dict):
        return [
            Finding("authentication", f"ok: user {body.get('user_name')!r}"),
            Finding("privileges", "unknown (OpenSearch has no privilege check to ask)"),
        ]
    if status in (401, 403):
        return [Finding("authentication", f"refused (HTTP {status})", blocking=True)]
    return [
        Finding("authentication", "none: no security plugin answered"),
        Finding("privileges", "unknown (no security plugin)"),
    ]


def _template(options: HandlerOptions, request: _Requests) -> Finding:
    prefix = options.data_stream or options.es_index_name
    name = f"{prefix}-ecs-metrics"
    status, _ = request("GET", f"/_index_template/{name}")
    if status == 200:
        return Finding("index template", f"{name}: installed")
    if status == 404:
        hint = (
            "installed when the handler starts"
            if options.install_template
            else ("python -m ecs_metrics_handler install-template installs it")
        )
        return Finding("index template", f"{name}: NOT installed ({hint})")
    return Finding("index template", f"{name}: unknown (HTTP {status})")
