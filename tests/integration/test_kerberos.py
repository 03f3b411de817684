"""KERBEROS_AUTH against a real MIT KDC and a real Elasticsearch Kerberos realm.

``kerberos_es`` is a secured node with a Kerberos realm and its own KDC (``scripts/kdc.py``,
realm ``ECSMH.TEST``); its client principal is mapped to README's least-privilege writer role.
The handler runs in a subprocess: ``KRB5_CONFIG`` and ``KRB5CCNAME`` must be set before the
Kerberos library reads them, and the test process keeps its own environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

# Runs in the subprocess: ship (or replay) with KERBEROS_AUTH, print stats and the reports.
_SCRIPT = r"""
import json, logging, sys
from ecs_metrics_handler import ElasticECSHandler, metric, replay

args = json.loads(sys.argv[1])
reports = []

class Collect(logging.Handler):
    def emit(self, record):
        reports.append(record.getMessage())

package = logging.getLogger("ecs_metrics_handler")
package.addHandler(Collect())
package.setLevel(logging.INFO)
connection = {"hosts": [args["url"]], "auth_type": "KERBEROS_AUTH", "ca_certs": args["ca"]}
if args["replay"]:
    result = replay(args["folder"], es_index_name=args["prefix"], **connection)
    print(json.dumps({"indexed": result.indexed, "left": result.left, "reports": reports}))
    sys.exit(0)
handler = ElasticECSHandler(
    es_index_name=args["prefix"], flush_failure_folder=args["folder"],
    flush_frequency_in_sec=0.2, **connection,
)
log = logging.getLogger("app")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(handler)
for i in range(args["count"]):
    log.info("m", extra=metric("kerberos.test", i))
handler.flush(30)
log.removeHandler(handler)
handler.close()
print(json.dumps({"stats": handler.stats(), "reports": reports}))
"""


@pytest.fixture(scope="module")
def kerberos_writer(kerberos_es: Any, writer_role: dict[str, Any]) -> Any:
    """The Kerberos node with README's writer role mapped to the KDC's client principal."""
    resp = kerberos_es.request("PUT", "/_security/role/ecs_metrics_writer", writer_role)
    assert resp.status == 200, resp.body[:300]
    kerberos_es.map_principal(kerberos_es.kdc.client_principal, ["ecs_metrics_writer"])
    return kerberos_es


def _run(node: Any, ccache: Path, **args: Any) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(node.kdc.env(ccache))
    args.setdefault("replay", False)
    args.update(url=node.kerberos_urls[0], ca=node.ca_file)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _count(node: Any, prefix: str) -> int:
    node.request("POST", f"/{prefix}-*/_refresh")
    resp = node.request("GET", f"/{prefix}-*/_count")
    assert resp.status == 200, resp.body[:300]
    return int(resp.json()["count"])


def _prefix() -> str:
    return f"python_metrics-krb-{uuid.uuid4().hex[:10]}"  # README's writer pattern


def test_the_kerberos_node_runs_a_trial_licence_and_the_kerberos_realm(kerberos_es: Any) -> None:
    """The realm needs platinum or trial: the test distribution grants the trial."""
    resp = kerberos_es.request("GET", "/_license")
    assert resp.status == 200
    assert resp.json()["license"]["type"] == "trial"


@pytest.mark.parametrize("with_keytab", [True, False], ids=["keytab", "password"])
def test_metrics_arrive_with_kerberos_auth_after_kinit(
    kerberos_writer: Any, tmp_path: Path, with_keytab: bool
) -> None:
    """kinit (keytab or password) then KERBEROS_AUTH: every metric arrives, as the principal."""
    node = kerberos_writer
    ccache = tmp_path / "ccache"
    node.kdc.kinit(ccache, keytab=with_keytab)
    prefix = _prefix()
    out = _run(node, ccache, prefix=prefix, count=30, folder=str(tmp_path / "failed"))
    stats = out["stats"]
    assert (stats["shipped"], stats["spooled"], stats["dead_lettered"]) == (30, 0, 0), out
    assert _count(node, prefix) == 30


@pytest.mark.parametrize("cache", ["absent", "empty"])
def test_without_a_ticket_the_failure_says_kerberos_and_metrics_wait_in_the_folder(
    kerberos_writer: Any, tmp_path: Path, cache: str
) -> None:
    """No ticket (an absent or empty ccache): the report says the Kerberos authentication
    failed and what to check; the 20 metrics are in the failure folder, and a replay after
    kinit indexes all 20."""
    node = kerberos_writer
    ccache = tmp_path / "ccache"
    if cache == "empty":
        ccache.write_bytes(b"")
    folder = tmp_path / "failed"
    prefix = _prefix()
    out = _run(node, ccache, prefix=prefix, count=20, folder=str(folder))
    stats = out["stats"]
    assert (stats["shipped"], stats["spooled"], stats["dead_lettered"]) == (0, 20, 0), out
    failures = [r for r in out["reports"] if "Kerberos authentication failed" in r]
    assert failures, out["reports"]
    assert "HTTP 401" in failures[0] and "kinit" in failures[0]
    assert not _index_exists(node, prefix)

    node.kdc.kinit(ccache)
    replayed = _run(node, ccache, prefix=prefix, folder=str(folder), replay=True)
    assert (replayed["indexed"], replayed["left"]) == (20, 0), replayed
    assert _count(node, prefix) == 20


def _index_exists(node: Any, prefix: str) -> bool:
    resp = node.request("GET", f"/_resolve/index/{prefix}-*")
    return resp.status == 200 and bool(resp.json().get("indices"))


def test_a_principal_without_a_role_mapping_is_refused_not_lost(
    kerberos_writer: Any, tmp_path: Path
) -> None:
    """A valid ticket for a principal no role mapping covers: 403, documents kept."""
    node = kerberos_writer
    principal = f"nobody{os.getpid()}@{node.kdc.realm}"
    node.kdc.kadmin(f"addprinc -pw {node.kdc.client_password} {principal}")
    ccache = tmp_path / "ccache"
    node.kdc.kinit(ccache, keytab=False, principal=principal)
    out = _run(node, ccache, prefix=_prefix(), count=5, folder=str(tmp_path / "failed"))
    stats = out["stats"]
    assert (stats["shipped"], stats["spooled"]) == (0, 5), out
    assert any("HTTP 403" in r for r in out["reports"]), out["reports"]
