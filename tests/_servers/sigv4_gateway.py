"""A local AWS SigV4-verifying reverse proxy in front of a real Elasticsearch/OpenSearch node.

AWS OpenSearch Service (``es``) and OpenSearch Serverless (``aoss``) check every request's
Signature Version 4 before it reaches the cluster. This gateway does the same checks, with an
implementation independent of the handler's signer (requests-aws4auth): botocore's
``SigV4Auth`` recomputes the signature over an ``AWSRequest`` rebuilt from what was received
(method, path, query, the headers named in ``SignedHeaders``, the body) with the credentials
the test configured, and the two are compared. It also checks

* the credential scope: access key, date, region and service (``es`` or ``aoss``);
* the clock: an ``X-Amz-Date`` more than 5 minutes away from now is refused, as AWS does;
* the payload hash: ``X-Amz-Content-SHA256``, when sent (required for ``aoss``), must be the
  SHA-256 of the body actually received;
* the session token: ``X-Amz-Security-Token`` must be the configured one (and signed) when a
  session token is configured, and absent otherwise.

A request that fails is answered ``403`` with an AWS-like JSON body (``{"message": ...}``) and
is not forwarded; a request that passes is forwarded to the upstream node and its answer
relayed. Every verdict is recorded (:attr:`SigV4Gateway.verdicts`) so tests can prove that
requests were checked.

Usage::

    with SigV4Gateway(upstream_url, Credentials("AKID", "secret", token), "eu-west-1") as gw:
        ...  # point the client at gw.url

Thread-safe: one thread per connection (``ThreadingHTTPServer``); the verdict list is guarded
by a lock. Needs ``botocore`` (the ``tests`` extra).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Credentials", "SigV4Gateway", "Verdict", "verify"]

MAX_SKEW = datetime.timedelta(minutes=5)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The AWS credentials the gateway accepts (``token``: the session token, or None)."""

    access_key: str
    secret_key: str
    token: str | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome for one request: ``ok``, or the ``status``/``message`` it was refused with."""

    method: str
    path: str
    ok: bool
    status: int = 200
    message: str = ""
    service: str = ""
    body_bytes: int = 0


def _refuse(method: str, path: str, message: str, status: int = 403, **kw: Any) -> Verdict:
    return Verdict(method, path, ok=False, status=status, message=message, **kw)


def verify(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    services: tuple[str, ...] = ("es", "aoss"),
    *,
    now: datetime.datetime | None = None,
) -> Verdict:
    """Check one received request's SigV4 signature; pure apart from botocore.

    ``target`` is the request target as received (path and raw query); ``headers`` are the
    received headers (names in any case); ``now`` (UTC) defaults to the current time.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    lower = {k.lower(): v for k, v in headers.items()}
    path, _, query = target.partition("?")
    refuse: Callable[..., Verdict] = lambda msg, **kw: _refuse(  # noqa: E731
        method, path, msg, body_bytes=len(body), **kw
    )
    auth = lower.get("authorization", "")
    if not auth:
        return refuse("Missing Authentication Token", status=403)
    match = _AUTH_RE.match(auth)
    if match is None:
        return refuse(f"Authorization header requires the AWS4-HMAC-SHA256 form: {auth[:60]!r}")
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return refuse(f"Credential should be scoped correctly: {match['credential']!r}")
    access_key, scope_date, scope_region, service, _ = parts
    if access_key != credentials.access_key:
        return refuse("The security token included in the request is invalid.")
    if scope_region != region:
        return refuse(
            f"Credential should be scoped to a valid region, not '{scope_region}'.", service=service
        )
    if service not in services:
        return refuse(
            f"Credential should be scoped to correct service: {'/'.join(services)}.",
            service=service,
        )
    amz_date = lower.get("x-amz-date", "")
    try:
        signed_at = datetime.datetime.strptime(amz_date, _AMZ_DATE).replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return refuse(f"X-Amz-Date is missing or malformed: {amz_date!r}", service=service)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(now - signed_at) > MAX_SKEW:
        return refuse(
            f"Signature expired: {amz_date} is now earlier than "
            f"{(now - MAX_SKEW).strftime(_AMZ_DATE)} ({now.strftime(_AMZ_DATE)} - 5 min.)"
            if signed_at < now
            else f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(_AMZ_DATE)} ({now.strftime(_AMZ_DATE)} + 5 min.)",
            service=service,
        )
    if scope_date != amz_date[:8]:
        return refuse(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{amz_date[:8]}'",
            service=service,
        )
    signed = match["signed"].split(";")
    if "host" not in signed:
        return refuse("'Host' must be a 'SignedHeader' in the AWS Authorization.", service=service)
    missing = [name for name in signed if name not in lower]
    if missing:
        return refuse(f"signed header(s) not in the request: {missing}", service=service)
    content_sha = lower.get("x-amz-content-sha256")
    if content_sha is None and service == "aoss":
        return refuse("x-amz-content-sha256 header is required for aoss", service=service)
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        return refuse(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            service=service,
        )
    token = lower.get("x-amz-security-token")
    if credentials.token is not None:
        if token != credentials.token:
            return refuse("The security token included in the request is invalid.", service=service)
        if "x-amz-security-token" not in signed:
            return refuse("X-Amz-Security-Token must be signed.", service=service)
    elif token is not None:
        return refuse("The security token included in the request is invalid.", service=service)

    # Recompute with botocore over the request as received.
    request = AWSRequest(
        method=method,
        url=f"http://{lower['host']}{path}",
        data=body,
        headers={name: lower[name] for name in signed},
        params=urllib.parse.parse_qsl(query, keep_blank_values=True) if query else None,
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(
        BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token),
        service,
        region,
    )
    headers_to_sign = signer.headers_to_sign(request)
    if signer.signed_headers(headers_to_sign) != match["signed"]:
        return refuse(
            f"SignedHeaders {match['signed']!r} differ from what can be signed "
            f"({signer.signed_headers(headers_to_sign)!r})",
            service=service,
        )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return refuse(MISMATCH, service=service)
    return Verdict(method, path, ok=True, service=service, body_bytes=len(body))


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        gateway = self.server.gateway
        verdict = verify(
            self.command,
            self.path,
            dict(self.headers.items()),
            body,
            gateway.credentials,
            gateway.region,
            gateway.services,
        )
        gateway.record(verdict)
        if not verdict.ok:
            payload = json.dumps({"message": verdict.message}).encode()
            self.send_response(verdict.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("x-amzn-ErrorType", "InvalidSignatureException")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        upstream = self.server.gateway.upstream
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        try:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() not in ("host", "authorization")
            }
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as err:
            payload = json.dumps({"message": f"upstream unreachable: {err}"}).encode()
            self.send_response(502)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        finally:
            conn.close()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    gateway: SigV4Gateway


class SigV4Gateway:
    """The verifying proxy on ``127.0.0.1:<free port>`` (``url``), forwarding to ``upstream``.

    ``services``: the service names accepted in the credential scope. Start/stop with the
    context manager or :meth:`start`/:meth:`close`.
    """

    def __init__(
        self,
        upstream: str,
        credentials: Credentials,
        region: str,
        services: tuple[str, ...] = ("es", "aoss"),
    ) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        if self.upstream.scheme != "http":
            raise ValueError(f"the gateway forwards to plain-HTTP nodes only, not {upstream}")
        self.credentials = credentials
        self.region = region
        self.services = services
        self._lock = threading.Lock()
        self._verdicts: list[Verdict] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.gateway = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, verdict: Verdict) -> None:
        with self._lock:
            self._verdicts.append(verdict)

    @property
    def verdicts(self) -> list[Verdict]:
        """Every verdict so far, oldest first (a copy)."""
        with self._lock:
            return list(self._verdicts)

    @property
    def refused(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.ok]

    def start(self) -> SigV4Gateway:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sigv4-gateway", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SigV4Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
