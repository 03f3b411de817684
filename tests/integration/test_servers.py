"""The test servers themselves: each kind and each variant really is what the fixtures claim."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import ecsmh_nodes as nodes  # loaded by tests/conftest.py from scripts/nodes.py
import ecsmh_test_servers as servers
import pytest

es_client_for = servers.es_client_for

REPO = Path(__file__).resolve().parents[2]


def _client_major() -> int:
    import elasticsearch

    return int(str(elasticsearch.__versionstr__).split(".")[0])


def _node_versions(client: Any) -> set[str]:
    # GET / (info) is absent from the Elasticsearch test distribution: ask the nodes API
    info = client.nodes.info(node_id="_local")
    return {node["version"] for node in info["nodes"].values()}


def test_es_smoke(es_server: Any, es_client: Any, unique_name: str) -> None:
    es_client.index(index=unique_name, id="1", document={"message": "hello smoke"}, refresh=True)
    found = es_client.search(index=unique_name, query={"match": {"message": "smoke"}})
    assert found["hits"]["total"]["value"] == 1
    assert found["hits"]["hits"][0]["_source"] == {"message": "hello smoke"}
    versions = _node_versions(es_client)
    if es_server.external:
        assert versions == {es_server.version}
    else:
        pinned = nodes.get_pin("elasticsearch", _client_major()).version
        assert versions == {pinned} == {es_server.version}
        assert es_server.major == _client_major()
        assert es_server.log_file.is_file()
        assert es_server.data_dir.is_dir()


@pytest.mark.opensearch
def test_opensearch_smoke(os_server: Any, os_client: Any, unique_name: str) -> None:
    os_client.index(index=unique_name, id="1", body={"message": "hello smoke"}, refresh=True)
    found = os_client.search(index=unique_name, body={"query": {"match": {"message": "smoke"}}})
    assert found["hits"]["total"]["value"] == 1
    versions = {n["version"] for n in os_client.nodes.info(node_id="_local")["nodes"].values()}
    if os_server.external:
        assert versions == {os_server.version}
    else:
        assert versions == {nodes.get_pin("opensearch").version} == {os_server.version}
        assert os_client.info()["version"]["distribution"] == "opensearch"


def test_three_nodes_form_one_cluster(three_node_es: Any) -> None:
    assert len(three_node_es.urls) == 3
    assert len(set(three_node_es.urls)) == 3
    client = es_client_for(three_node_es)
    try:
        health = client.cluster.health(wait_for_nodes="3", timeout="30s")
        assert health["number_of_nodes"] == 3
        assert health["cluster_name"] == three_node_es.name
        # every node sees the same three members
        for url in three_node_es.urls:
            resp = nodes.http(url + "/_cat/nodes?h=name&format=json")
            assert resp.status == 200
            assert sorted(n["name"] for n in resp.json()) == sorted(
                n.name for n in three_node_es.nodes
            )
    finally:
        client.close()


def test_tiny_queue_answers_429_under_load(tiny_queue_es: Any, unique_name: str) -> None:
    resp = tiny_queue_es.request(
        "PUT", f"/{unique_name}", {"settings": {"number_of_shards": 4, "number_of_replicas": 0}}
    )
    assert resp.status == 200, resp.body
    line = b'{"index":{}}\n{"message":"load","n":1}\n'
    payload = line * 500
    rejections: list[str] = []
    others: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                r = nodes.http(
                    f"{tiny_queue_es.url}/{unique_name}/_bulk",
                    "POST",
                    payload,
                    content_type="application/x-ndjson",
                    timeout=30,
                )
            except OSError:
                continue
            if r.status == 429:
                rejections.append("request")
            elif r.status == 200:
                items = r.json()["items"]
                rejected = [i for i in items if i["index"]["status"] == 429]
                if rejected:
                    reason = rejected[0]["index"]["error"]["type"]
                    rejections.append(reason)
            else:
                others.append(r.status)
            if rejections:
                stop.set()

    threads = [threading.Thread(target=hammer) for _ in range(12)]
    for t in threads:
        t.start()
    stop.wait(60)
    stop.set()
    for t in threads:
        t.join(60)
    assert rejections, f"no 429 under concurrent bulk load (other statuses: {others[:5]})"
    assert set(rejections) <= {"request", "es_rejected_execution_exception"}


def test_secured_node_needs_credentials_over_verified_tls(
    secured_es: Any, unique_name: str
) -> None:
    assert secured_es.url.startswith("https://")
    assert Path(secured_es.ca_file).is_file()
    # without credentials: 401
    resp = nodes.http(secured_es.url + "/_cluster/health", ca_file=secured_es.ca_file)
    assert resp.status == 401
    # the certificate does not verify without the suite's CA
    with pytest.raises(urllib.error.URLError) as err:
        nodes.http(secured_es.url + "/_cluster/health", ca_file=None)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
    # user and password, verified TLS, with the official client
    client = es_client_for(secured_es, verify_certs=True)
    try:
        who = client.security.authenticate()
        assert who["username"] == secured_es.username
        client.index(index=unique_name, document={"message": "secure"}, refresh=True)
        assert client.count(index=unique_name)["count"] == 1
    finally:
        client.close()
    # an API key
    encoded = secured_es.api_key()
    key_client = es_client_for(secured_es, api_key=encoded, verify_certs=True)
    try:
        who = key_client.security.authenticate()
        assert who["authentication_type"] == "api_key"
        assert key_client.count(index=unique_name)["count"] == 1
    finally:
        key_client.close()
    with pytest.raises(Exception) as bad:
        es_client_for(secured_es, basic_auth=(secured_es.username, "wrong-password")).count(
            index=unique_name
        )
    assert getattr(bad.value, "status_code", getattr(bad.value, "status", None)) == 401 or (
        re.search(r"\b401\b", str(bad.value)) is not None
    )


@pytest.mark.slow
def test_node_restart_kill_and_freeze_keep_data(node_factory: Any, unique_name: str) -> None:
    with node_factory.start() as node:
        client = es_client_for(node, max_retries=0)
        try:
            for i in range(5):
                client.index(index=unique_name, id=str(i), document={"n": i})
            client.indices.refresh(index=unique_name)
            assert client.count(index=unique_name)["count"] == 5
            url, data_dir, pid = node.url, node.data_dir, node.pids[0]

            node.restart()  # graceful stop, start on the same data folder and port
            assert (node.url, node.data_dir) == (url, data_dir)
            assert node.pids[0] not in (None, pid)
            assert client.count(index=unique_name)["count"] == 5

            client.index(index=unique_name, id="5", document={"n": 5})  # acked, not refreshed
            node.kill()  # SIGKILL: no clean shutdown
            assert node.pids == [None]
            node.start()
            client.indices.refresh(index=unique_name)
            assert client.count(index=unique_name)["count"] == 6

            node.freeze()
            with pytest.raises(OSError):
                nodes.http(node.url + "/_cluster/health", timeout=2)
            node.thaw()
            node.wait_healthy(60)
            assert client.count(index=unique_name)["count"] == 6
        finally:
            client.close()
    assert not any(nodes.group_pids(p) for p in [pid] if p)


def test_unavailable_policy() -> None:
    assert servers.servers_required(False, {}) is False
    assert servers.servers_required(False, {"CI": "true"}) is True
    assert servers.servers_required(False, {"CI": "false"}) is False
    assert servers.servers_required(True, {}) is True
    assert servers.unavailable_outcome("no java", False) == (
        "skip",
        "test server unavailable: no java",
    )
    outcome, message = servers.unavailable_outcome("no java", True)
    assert outcome == "fail" and "no java" in message


def _run_without_java(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("mvn", "openssl", "useradd"):  # everything but java
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).unlink(missing_ok=True)
            (bin_dir / tool).symlink_to(found)
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "JAVA_HOME",
            "ES_JAVA_HOME",
            "OPENSEARCH_JAVA_HOME",
            "CI",
            "ELASTICSEARCH_URL",
            "OPENSEARCH_URL",
            "PYTEST_ADDOPTS",
        }
    }
    env["PATH"] = str(bin_dir)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            f"{Path(__file__).relative_to(REPO)}::test_es_smoke",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_missing_java_skips_locally_and_fails_in_ci(tmp_path: Path) -> None:
    started = time.monotonic()
    local = _run_without_java(tmp_path, ci=False)
    out = local.stdout + local.stderr
    assert local.returncode == 0, out
    assert "1 skipped" in out, out
    assert "test server unavailable: Java not found" in out, out

    ci = _run_without_java(tmp_path, ci=True)
    out = ci.stdout + ci.stderr
    assert ci.returncode == 1, out
    assert "1 error" in out, out
    assert "test server unavailable: Java not found" in out, out
    assert time.monotonic() - started < 120
