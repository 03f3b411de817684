"""The SigV4 gateway's verifier (tests/_servers/sigv4_gateway.py) can fail, and passes good
requests signed by the handler's signer (requests-aws4auth) and by botocore alike."""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
from typing import Any

import pytest

pytest.importorskip("botocore")
requests = pytest.importorskip("requests")
aws4auth = pytest.importorskip("requests_aws4auth")

gateway = sys.modules["ecsmh_test_servers"].load_helper("sigv4_gateway")

KEY, SECRET, TOKEN, REGION = (
    "AKIDEXAMPLE",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "tok",
    "eu-west-1",
)
BODY = b'{"create":{"_index":"m-2026.12.03"}}\n{"metrics":{"name":"a","value":1}}\n'


def _signed(
    service: str = "es",
    token: str | None = None,
    body: bytes = BODY,
    url: str = "http://127.0.0.1:9200/_bulk?filter_path=errors,items.*.status,items.*.error",
    secret: str = SECRET,
) -> tuple[str, str, dict[str, str], bytes]:
    """(method, target, headers, body) as requests-aws4auth would send them."""
    auth = aws4auth.AWS4Auth(KEY, secret, REGION, service, session_token=token)
    prepared = requests.Request(
        "POST", url, data=body, headers={"Content-Type": "application/x-ndjson"}
    ).prepare()
    prepared = auth(prepared)
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in prepared.headers.items()}
    headers["Host"] = "127.0.0.1:9200"
    target = prepared.path_url
    return "POST", target, headers, prepared.body or b""


def _verify(req: tuple[str, str, dict[str, str], bytes], **kw: Any) -> Any:
    creds = kw.pop("credentials", gateway.Credentials(KEY, SECRET, kw.pop("token", None)))
    return gateway.verify(*req, creds, REGION, **kw)


@pytest.mark.parametrize("service", ["es", "aoss"])
@pytest.mark.parametrize("token", [None, TOKEN])
def test_a_request_signed_with_the_right_key_passes(service: str, token: str | None) -> None:
    verdict = _verify(_signed(service, token), token=token)
    assert verdict.ok, verdict
    assert verdict.service == service


def test_a_request_signed_by_botocore_passes() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest("POST", "http://127.0.0.1:9200/_bulk", data=BODY, params={"refresh": "true"})
    SigV4Auth(Credentials(KEY, SECRET, TOKEN), "es", REGION).add_auth(req)
    headers = dict(req.headers.items())
    headers["Host"] = "127.0.0.1:9200"
    assert _verify(("POST", "/_bulk?refresh=true", headers, BODY), token=TOKEN).ok


def test_a_wrong_secret_key_fails_with_the_aws_message() -> None:
    verdict = _verify(_signed(secret="not-the-secret"))
    assert (verdict.ok, verdict.status) == (False, 403)
    assert verdict.message.startswith("The request signature we calculated does not match")


def test_a_tampered_body_fails() -> None:
    method, target, headers, body = _signed()
    tampered = body.replace(b'"value":1', b'"value":2')
    verdict = _verify((method, target, headers, tampered))
    assert not verdict.ok
    assert "x-amz-content-sha256" in verdict.message  # the payload hash no longer matches
    # Without the payload-hash header the signature itself catches it.
    del headers["x-amz-content-sha256"]
    assert not _verify((method, target, headers, tampered)).ok


def test_a_body_tampered_together_with_its_hash_fails_on_the_signature() -> None:
    method, target, headers, body = _signed()
    tampered = body.replace(b'"value":1', b'"value":2')
    headers["x-amz-content-sha256"] = hashlib.sha256(tampered).hexdigest()
    verdict = _verify((method, target, headers, tampered))
    assert (verdict.ok, verdict.message) == (False, gateway.MISMATCH)


@pytest.mark.parametrize(
    ("header", "value"),
    [("Content-Type", "application/json"), ("Host", "127.0.0.1:9201")],
)
def test_a_tampered_signed_header_fails(header: str, value: str) -> None:
    method, target, headers, body = _signed()
    headers[header] = value
    verdict = _verify((method, target, headers, body))
    assert (verdict.ok, verdict.message) == (False, gateway.MISMATCH)


def test_a_tampered_query_or_path_fails() -> None:
    method, target, headers, body = _signed()
    assert not _verify((method, target.replace("errors,", ""), headers, body)).ok
    assert not _verify((method, target.replace("_bulk", "other/_bulk"), headers, body)).ok


def test_session_token_must_match_the_configured_one() -> None:
    assert not _verify(_signed(token="other"), token=TOKEN).ok
    assert not _verify(_signed(token=None), token=TOKEN).ok
    assert not _verify(_signed(token=TOKEN), token=None).ok


def test_service_and_region_of_the_scope_are_checked() -> None:
    verdict = _verify(_signed("s3"))
    assert not verdict.ok and "service" in verdict.message
    only_es = _verify(_signed("aoss"), services=("es",))
    assert not only_es.ok
    req = _signed()
    assert not gateway.verify(*req, gateway.Credentials(KEY, SECRET), "us-east-1").ok


def test_a_stale_or_future_date_is_refused_like_aws() -> None:
    req = _signed()
    signed_at = datetime.datetime.strptime(req[2]["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    late = _verify(req, now=signed_at + datetime.timedelta(minutes=5, seconds=1))
    assert (late.ok, late.status) == (False, 403)
    assert late.message.startswith("Signature expired: ")
    early = _verify(req, now=signed_at - datetime.timedelta(minutes=6))
    assert not early.ok and "later than" in early.message
    assert _verify(req, now=signed_at + datetime.timedelta(minutes=4, seconds=59)).ok


def test_unsigned_and_malformed_requests_are_refused() -> None:
    method, target, headers, body = _signed()
    unsigned = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    assert _verify((method, target, unsigned, body)).message == "Missing Authentication Token"
    basic = dict(unsigned, Authorization="Basic dTpw")
    assert not _verify((method, target, basic, body)).ok


def test_the_gateway_answers_403_json_and_does_not_forward() -> None:
    """Over HTTP: a bad signature gets AWS's 403 body; the (dead) upstream is never called."""
    creds = gateway.Credentials(KEY, SECRET)
    with gateway.SigV4Gateway("http://127.0.0.1:9", creds, REGION) as gw:
        url = gw.url + "/_bulk"
        auth = aws4auth.AWS4Auth(KEY, "wrong", REGION, "es")
        resp = requests.post(url, data=BODY, auth=auth, timeout=10)
        assert resp.status_code == 403
        assert json.loads(resp.content) == {"message": gateway.MISMATCH}
        good = requests.post(url, data=BODY, auth=aws4auth.AWS4Auth(KEY, SECRET, REGION, "es"))
        assert good.status_code == 502  # verified, then forwarded to a port nobody listens on
        assert [v.ok for v in gw.verdicts] == [False, True]
