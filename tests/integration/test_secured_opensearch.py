"""backend="opensearch" against a real OpenSearch node with its security plugin.

The node (``secured_os``: OpenSearch 2.19.4 with opensearch-security 2.19.4.0, the suite's own
CA and users, see scripts/nodes.py) serves HTTPS only and authenticates with Basic auth; the
suite's writer user holds only the permissions that shipping metrics needs.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import ecsmh_test_servers as servers
import pytest

from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler._spool import read_items

pytestmark = pytest.mark.opensearch
nodes = servers.nodes
COUNT = 29


def _handler(node: Any, prefix: str, user: str, password: str, **options: Any) -> Any:
    return ElasticECSHandler(
        hosts=[node.url],
        backend="opensearch",
        es_index_name=prefix,
        auth_type="BASIC_AUTH",
        auth_details=(user, password),
        ca_certs=node.ca_file,
        flush_frequency_in_sec=0.2,
        **options,
    )


def _count(node: Any, pattern: str) -> int:
    node.request("POST", f"/{pattern}/_refresh?allow_no_indices=true&ignore_unavailable=true")
    resp = node.request("GET", f"/{pattern}/_count?allow_no_indices=true&ignore_unavailable=true")
    assert resp.status == 200, resp.body[:300]
    return int(resp.json()["count"])


def _ship(handler: Any, logger: logging.Logger, count: int = COUNT) -> dict[str, Any]:
    logger.addHandler(handler)
    try:
        for i in range(count):
            logger.info("m", extra=metric("secured.metric", float(i), labels={"run": "x"}))
        handler.flush(30)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return dict(handler.stats())


def test_the_node_serves_https_only_and_wants_credentials(secured_os: Any) -> None:
    assert secured_os.url.startswith("https://")
    assert secured_os.request("GET", "/_cluster/health", auth=False).status == 401
    assert secured_os.request("GET", "/_cluster/health").status == 200
    with pytest.raises(OSError):  # the suite's CA is needed: the certificates are its own
        nodes.http(secured_os.url + "/_cluster/health", auth=secured_os.auth)


def test_metrics_arrive_over_https_with_basic_auth(secured_os: Any, logger: logging.Logger) -> None:
    prefix = f"secos-{uuid.uuid4().hex[:8]}"
    handler = _handler(
        secured_os, prefix, secured_os.username, secured_os.password, install_template=True
    )
    stats = _ship(handler, logger)
    assert (stats["shipped"], stats["spooled"], stats["dead_lettered"]) == (COUNT, 0, 0), stats
    assert _count(secured_os, f"{prefix}-*") == COUNT


def test_a_wrong_password_is_a_clear_401_and_the_metrics_are_spooled(
    secured_os: Any, logger: logging.Logger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"secos-{uuid.uuid4().hex[:8]}"
    handler = _handler(
        secured_os, prefix, secured_os.username, "wrong-password", flush_failure_folder=tmp_path
    )
    with caplog.at_level(logging.WARNING, logger="ecs_metrics_handler"):
        stats = _ship(handler, logger)
    assert (stats["shipped"], stats["spooled"], stats["dead_lettered"]) == (0, COUNT, 0), stats
    segments = sorted(tmp_path.glob("segment-*.ndjson"))
    assert sum(len(read_items(p)) for p in segments) == COUNT
    reports = [r.getMessage() for r in caplog.records if r.name == "ecs_metrics_handler"]
    assert any(re.search(r"\b401\b", m) for m in reports), reports  # not a port's digits
    assert _count(secured_os, f"{prefix}-*") == 0


def test_a_least_privilege_writer_ships_metrics(secured_os: Any, logger: logging.Logger) -> None:
    """The writer role holds only bulk/index/create-index/put-mapping on ``writer-*``."""
    role = secured_os.request("GET", f"/_plugins/_security/api/roles/{nodes.OS_WRITER_ROLE}")
    assert role.status == 200, role.body[:300]
    granted = role.json()[nodes.OS_WRITER_ROLE]
    assert granted["cluster_permissions"] == nodes.OS_WRITER_CLUSTER_PERMISSIONS
    assert granted["index_permissions"][0]["allowed_actions"] == nodes.OS_WRITER_INDEX_PERMISSIONS

    prefix = f"writer-{uuid.uuid4().hex[:8]}"
    handler = _handler(secured_os, prefix, nodes.OS_WRITER_USERNAME, nodes.OS_WRITER_PASSWORD)
    stats = _ship(handler, logger)
    assert (stats["shipped"], stats["spooled"], stats["dead_lettered"]) == (COUNT, 0, 0), stats
    assert _count(secured_os, f"{prefix}-*") == COUNT

    # ... and nothing more: no reading, no cluster state, no other indices.
    writer = (nodes.OS_WRITER_USERNAME, nodes.OS_WRITER_PASSWORD)
    for method, path in [("GET", f"/{prefix}-*/_search"), ("GET", "/_cluster/health")]:
        resp = nodes.http(secured_os.url + path, method, auth=writer, ca_file=secured_os.ca_file)
        assert resp.status == 403, (path, resp.status)
    elsewhere = nodes.http(
        secured_os.url + "/_bulk",
        "POST",
        b'{"create":{"_index":"not-writer-x"}}\n{"a":1}\n',
        auth=writer,
        ca_file=secured_os.ca_file,
        content_type="application/x-ndjson",
    )
    item = elsewhere.json()["items"][0]["create"]
    assert item["status"] == 403, item
