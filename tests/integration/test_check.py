"""``python -m ecs_metrics_handler check`` against real nodes: a plain one, the secured one."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ELASTICSEARCH_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ecs_metrics_handler", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        check=False,
    )


def _line(out: str, topic: str) -> str:
    (line,) = [line for line in out.splitlines() if line[3:].startswith(topic)]
    return line


def test_check_says_a_plain_node_has_no_security_and_no_template(es_server: Any) -> None:
    """Reachable, its version, plain http, no security: delivery works (exit 0)."""
    proc = _check("--hosts", es_server.url, "--index", f"chk-{uuid.uuid4().hex[:8]}")
    out = proc.stdout
    assert proc.returncode == 0, (out, proc.stderr)
    assert f"yes: Elasticsearch {es_server.version}" in _line(out, "reachable")
    assert "none: plain http" in _line(out, "tls")
    assert "without security" in _line(out, "authentication")
    assert "NOT installed" in _line(out, "index template")
    assert out.rstrip().endswith("check: OK, nothing stops delivery")


def test_check_with_the_right_password_and_with_a_wrong_one(secured_es: Any) -> None:
    """Right: TLS verified, the user, write privileges, exit 0. Wrong: refused, exit 1, and
    the password is not printed. Without the CA: the unknown CA is named."""
    prefix = f"chk-{uuid.uuid4().hex[:8]}"
    # The key also creates the security index; a node just started answers 503 about its
    # privileges until that index's shard is up.
    api_key = secured_es.api_key(name=prefix)
    health = secured_es.request(
        "GET", "/_cluster/health/.security*?wait_for_status=green&timeout=60s", timeout=70
    )
    assert health.status == 200, health.body
    base = ["--hosts", secured_es.url, "--ca-certs", secured_es.ca_file, "--index", prefix]
    good = _check(
        *base, "--user", secured_es.username, env={"ELASTICSEARCH_PASSWORD": secured_es.password}
    )
    out = good.stdout
    assert good.returncode == 0, (out, good.stderr)
    assert f"yes: Elasticsearch {secured_es.version}" in _line(out, "reachable")
    assert "certificate verified against ca_certs" in _line(out, "tls")
    assert f"ok: user '{secured_es.username}'" in _line(out, "authentication")
    assert f"may write to {prefix}-*" in _line(out, "privileges")
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    bad = _check(
        *base, "--user", secured_es.username, env={"ELASTICSEARCH_PASSWORD": wrong_password}
    )
    assert bad.returncode == 1
    assert _line(bad.stdout, "authentication").startswith("!! authentication  refused (HTTP 401)")
    assert "delivery would FAIL" in bad.stdout
    assert wrong_password not in bad.stdout + bad.stderr
    keyed = _check(*base, env={"ELASTICSEARCH_API_KEY": api_key})
    assert keyed.returncode == 0, keyed.stdout
    assert "api_key" in _line(keyed.stdout, "authentication")
    no_ca = _check(
        "--hosts", secured_es.url, "--user", secured_es.username,
        env={"ELASTICSEARCH_PASSWORD": secured_es.password},
    )  # fmt: skip
    assert no_ca.returncode == 1
    assert "unknown CA" in _line(no_ca.stdout, "tls")
