"""AWS_SIGNED_AUTH against real nodes behind a gateway that verifies SigV4 like AWS does.

The gateway (tests/_servers/sigv4_gateway.py) recomputes each request's signature with
botocore, independently of the handler's signer (requests-aws4auth), checks the payload hash,
session token, service/region scope and clock, and forwards only what passes. Both backends:
elasticsearch-py (``node_class="requests"``) in front of the Elasticsearch node, opensearch-py
(``RequestsHttpConnection``) in front of the OpenSearch node.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler._spool import read_items

pytest.importorskip("botocore")
pytest.importorskip("requests_aws4auth")

gateway_mod = sys.modules["ecsmh_test_servers"].load_helper("sigv4_gateway")

KEY = "AKIAECSMHTEST0000001"
SECRET = "ecsmh/test+secret/key0000000000000000000"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//session+token=="
REGION = "eu-central-1"
COUNT = 37


@pytest.fixture(params=["elasticsearch", "opensearch"])
def backend(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(backend name, the real node behind the gateway)."""
    if request.param == "opensearch":
        request.applymarker(pytest.mark.opensearch)
        return "opensearch", request.getfixturevalue("os_server")
    return "elasticsearch", request.getfixturevalue("es_server")


def _count(node: Any, pattern: str) -> int:
    node.request("POST", f"/{pattern}/_refresh?allow_no_indices=true&ignore_unavailable=true")
    resp = node.request("GET", f"/{pattern}/_count?allow_no_indices=true&ignore_unavailable=true")
    assert resp.status == 200, resp.body[:300]
    return int(resp.json()["count"])


@pytest.fixture
def gateway_for() -> Iterator[Any]:
    opened: list[Any] = []

    def start(node: Any, token: str | None) -> Any:
        gw = gateway_mod.SigV4Gateway(node.url, gateway_mod.Credentials(KEY, SECRET, token), REGION)
        opened.append(gw.start())
        return gw

    yield start
    for gw in opened:
        gw.close()


def _handler(gw: Any, backend_name: str, prefix: str, **options: Any) -> ElasticECSHandler:
    options.setdefault("aws_access_key", KEY)
    options.setdefault("aws_secret_key", SECRET)
    return ElasticECSHandler(
        hosts=[gw.url],
        backend=backend_name,
        es_index_name=prefix,
        auth_type="AWS_SIGNED_AUTH",
        aws_region=REGION,
        flush_frequency_in_sec=0.2,
        **options,
    )


@pytest.mark.parametrize("service", ["es", "aoss"])
@pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "session-token"])
def test_signed_metrics_arrive_through_the_verifying_gateway(
    backend: tuple[str, Any],
    gateway_for: Any,
    logger: logging.Logger,
    service: str,
    token: str | None,
) -> None:
    backend_name, node = backend
    gw = gateway_for(node, token)
    prefix = f"sigv4-{uuid.uuid4().hex[:8]}"
    handler = _handler(gw, backend_name, prefix, aws_service=service, aws_session_token=token)
    logger.addHandler(handler)
    for i in range(COUNT):
        logger.info("m", extra=metric("sigv4.metric", float(i)))
    assert handler.flush(30)
    logger.removeHandler(handler)
    handler.close()
    stats = handler.stats()
    assert (stats["shipped"], stats["spooled"], stats["dropped"]) == (COUNT, 0, 0), stats
    assert gw.refused == []
    bulks = [v for v in gw.verdicts if v.path == "/_bulk"]
    assert bulks  # every bulk request was verified (the refused list is empty)
    assert {v.service for v in bulks} == {service}
    assert sum(v.body_bytes for v in bulks) > COUNT * 100  # the payload hash covered them
    assert _count(node, f"{prefix}-*") == COUNT


def test_a_wrong_secret_key_is_a_clear_403_and_the_metrics_are_spooled(
    backend: tuple[str, Any],
    gateway_for: Any,
    logger: logging.Logger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend_name, node = backend
    gw = gateway_for(node, None)
    prefix = f"sigv4-{uuid.uuid4().hex[:8]}"
    handler = _handler(
        gw,
        backend_name,
        prefix,
        aws_secret_key="not-the-secret-key",
        flush_failure_folder=str(tmp_path),
    )
    logger.addHandler(handler)
    with caplog.at_level(logging.WARNING, logger="ecs_metrics_handler"):
        for i in range(COUNT):
            logger.info("m", extra=metric("sigv4.metric", float(i)))
        handler.flush(10)
        logger.removeHandler(handler)
        handler.close()
    stats = handler.stats()
    assert (stats["shipped"], stats["spooled"], stats["dead_lettered"]) == (0, COUNT, 0), stats
    segments = sorted(tmp_path.glob("segment-*.ndjson"))
    assert sum(len(read_items(p)) for p in segments) == COUNT
    reports = [r.getMessage() for r in caplog.records if r.name == "ecs_metrics_handler"]
    # "HTTP 403", not a bare "403": the random port in a URL may hold those digits.
    refusals = [m for m in reports if "HTTP 403" in m]
    assert refusals, reports
    assert "signature we calculated does not match" in refusals[0], refusals[0]
    assert gw.refused and all(v.status == 403 for v in gw.refused)
    assert not any(v.ok and v.path == "/_bulk" for v in gw.verdicts)
    assert _count(node, f"{prefix}-*") == 0
