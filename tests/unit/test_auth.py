"""What each auth type puts on the wire, seen by a local HTTP endpoint, and missing extras.

The endpoint only answers ``_bulk`` like Elasticsearch does (with the product header the
client checks); what is tested is the request the handler's client sends.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from ecs_metrics_handler import ElasticECSHandler, MissingDependencyError, metric


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = self.rfile.read(length)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        count = sum(1 for line in body.splitlines() if line.startswith(b'{"create"'))
        answer = json.dumps(
            {"errors": False, "items": [{"create": {"status": 201}}] * count}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("x-elastic-product", "Elasticsearch")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_PUT = do_POST  # noqa: N815 - the clients send _bulk with PUT

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: ClassVar[list[dict[str, str]]] = []
    handler_cls = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _ship_one(url: str, **options: Any) -> dict[str, Any]:
    handler = ElasticECSHandler(hosts=[url], es_index_name="auth", **options)
    log = logging.getLogger(f"auth.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.info("m", extra=metric("m", 1))
    assert handler.flush(10)
    log.removeHandler(handler)
    handler.close()
    return handler.stats()


def test_basic_auth_sends_the_user_and_password(endpoint: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = endpoint
    stats = _ship_one(url, auth_type="BASIC_AUTH", auth_details=["elastic", "s3cret"])
    assert stats["shipped"] == 1
    assert seen[-1]["authorization"] == "Basic " + base64.b64encode(b"elastic:s3cret").decode()


def test_api_key_auth_sends_the_encoded_key(endpoint: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = endpoint
    _ship_one(url, auth_type="api_key", auth_details="ZW5jb2RlZA==")
    assert seen[-1]["authorization"] == "ApiKey ZW5jb2RlZA=="


def test_api_key_given_as_id_and_key_is_encoded(endpoint: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = endpoint
    _ship_one(url, auth_type="API_KEY", auth_details=("key-id", "key-secret"))
    assert seen[-1]["authorization"] == "ApiKey " + base64.b64encode(b"key-id:key-secret").decode()


def test_aws_sigv4_signs_each_request(endpoint: tuple[str, list[dict[str, str]]]) -> None:
    pytest.importorskip("requests_aws4auth")
    url, seen = endpoint
    stats = _ship_one(
        url,
        auth_type="AWS_SIGNED_AUTH",
        aws_access_key="AKIDEXAMPLE",
        aws_secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_region="eu-west-1",
        aws_session_token="session-token-value",
    )
    assert stats["shipped"] == 1
    auth = seen[-1]["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/es/aws4_request" in auth
    assert "Signature=" in auth
    assert seen[-1]["x-amz-security-token"] == "session-token-value"
    assert "x-amz-date" in seen[-1]


def test_no_auth_sends_no_credentials(endpoint: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = endpoint
    _ship_one(url)
    assert "authorization" not in seen[-1]


@pytest.mark.parametrize(
    ("auth_type", "module", "extra", "options"),
    [
        ("KERBEROS_AUTH", "requests_kerberos", "kerberos", {}),
        (
            "AWS_SIGNED_AUTH",
            "requests_aws4auth",
            "aws",
            {"aws_access_key": "a", "aws_secret_key": "b", "aws_region": "us-east-1"},
        ),
    ],
)
def test_a_missing_extra_fails_at_construction_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    auth_type: str,
    module: str,
    extra: str,
    options: dict[str, str],
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(MissingDependencyError) as info:
        ElasticECSHandler(auth_type=auth_type, **options)
    assert info.value.extra == extra
    assert f"ecs-metrics-handler[{extra}]" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_opensearch_backend_without_opensearch_py_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opensearchpy", None)
    with pytest.raises(MissingDependencyError, match=r"ecs-metrics-handler\[opensearch\]"):
        ElasticECSHandler(backend="opensearch")


@pytest.mark.parametrize("backend", ["elasticsearch", "opensearch"])
def test_requests_based_auth_ignores_proxy_and_ca_bundle_variables(
    endpoint: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """The requests session of Kerberos/SigV4 is as deaf to the environment as the default
    node: a proxy variable pointing nowhere does not divert the request."""
    url, seen = endpoint
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca-bundle.crt")
    stats = _ship_one(
        url,
        backend=backend,
        auth_type="AWS_SIGNED_AUTH",
        aws_access_key="AKIDEXAMPLE",
        aws_secret_key="secret",
        aws_region="us-east-1",
    )
    assert stats["shipped"] == 1
    assert seen[-1]["authorization"].startswith("AWS4-HMAC-SHA256")


class _Refuser(http.server.BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        answer = json.dumps(
            {"error": {"type": "security_exception", "reason": "missing credentials"}}
        ).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("x-elastic-product", "Elasticsearch")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("auth_type", "hinted"), [("KERBEROS_AUTH", True), ("NO_AUTH", False)])
def test_a_401_under_kerberos_says_the_kerberos_authentication_failed(
    auth_type: str, hinted: bool
) -> None:
    """A refused request names Kerberos and what to check (kinit, KRB5CCNAME), only under
    KERBEROS_AUTH; the error stays not retryable (the documents go to the failure folder)."""
    pytest.importorskip("requests_kerberos")
    from ecs_metrics_handler._bulk_outcome import ShipError
    from ecs_metrics_handler._config import HandlerOptions
    from ecs_metrics_handler._shipper import make_shipper

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuser)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        options = HandlerOptions.from_kwargs(
            hosts=[f"http://127.0.0.1:{server.server_address[1]}"], auth_type=auth_type
        )
        shipper = make_shipper(options)
        with pytest.raises(ShipError) as info:
            shipper.bulk(b'{"create":{"_index":"x"}}\n{}\n', 1)
        shipper.close()
    finally:
        server.shutdown()
        server.server_close()
    assert info.value.status == 401
    assert not info.value.retryable
    assert ("Kerberos authentication failed" in info.value.reason) is hinted
    assert ("kinit" in info.value.reason) is hinted
