"""The least-privilege writer role of README.rst against the secured Elasticsearch node.

The role body is read from README.rst (``writer_role`` fixture), so that the role documented
is the role tested: a user with only that role ships every document, each of its privileges
is needed, and template installation by that user is refused once, clearly, while shipping
goes on.
"""

from __future__ import annotations

import copy
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ecs_metrics_handler import ElasticECSHandler, metric

WRITER_PASSWORD = "ecsmh-writer-password"


def _admin(node: Any, method: str, path: str, body: Any = None) -> Any:
    resp = node.request(method, path, body)
    assert resp.status in (200, 201), (method, path, resp.status, resp.body[:500])
    return resp.json()


def _make_writer(node: Any, role_name: str, role: dict[str, Any]) -> str:
    """A native user holding only ``role_name`` (created from ``role``); returns its name."""
    _admin(node, "PUT", f"/_security/role/{role_name}", role)
    user = f"{role_name}_user_{os.getpid()}"
    _admin(
        node, "PUT", f"/_security/user/{user}", {"password": WRITER_PASSWORD, "roles": [role_name]}
    )
    return user


@pytest.fixture(scope="module")
def writer(secured_es: Any, writer_role: dict[str, Any]) -> Iterator[str]:
    """A user with only README's ``ecs_metrics_writer`` role on the secured node."""
    user = _make_writer(secured_es, "ecs_metrics_writer", writer_role)
    yield user
    secured_es.request("DELETE", f"/_security/user/{user}")


def _prefix() -> str:
    # within README's pattern python_metrics-*
    return f"python_metrics-lp-{uuid.uuid4().hex[:10]}"


def _ship(node: Any, user: str, prefix: str, count: int, **options: Any) -> ElasticECSHandler:
    handler = ElasticECSHandler(
        hosts=[node.url],
        es_index_name=prefix,
        auth_type="BASIC_AUTH",
        auth_details=(user, WRITER_PASSWORD),
        ca_certs=node.ca_file,
        flush_frequency_in_sec=0.2,
        **options,
    )
    log = logging.getLogger(f"lp.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    for i in range(count):
        # a new field now and then: the index's mapping grows (auto_configure covers that)
        log.info("m", extra=metric("lp", i, labels={f"extra_{i % 3}": str(i)}))
    assert handler.flush(30)
    log.removeHandler(handler)
    return handler


def _count(node: Any, prefix: str) -> int:
    _admin(node, "POST", f"/{prefix}-*/_refresh")
    return int(_admin(node, "GET", f"/{prefix}-*/_count")["count"])


def test_a_user_with_only_the_readme_writer_role_ships_every_metric(
    secured_es: Any, writer: str
) -> None:
    """40 metrics, new fields among them: all 40 arrive, none refused nor spooled."""
    prefix = _prefix()
    handler = _ship(secured_es, writer, prefix, 40)
    handler.close()
    stats = handler.stats()
    assert (stats["shipped"], stats["dead_lettered"], stats["spooled"]) == (40, 0, 0), stats
    assert _count(secured_es, prefix) == 40


def test_the_readme_role_needs_no_cluster_privilege(writer_role: dict[str, Any]) -> None:
    """What is tested above is the whole role: indices privileges only."""
    assert set(writer_role) == {"indices"}
    assert sorted(writer_role["indices"][0]["privileges"]) == ["auto_configure", "create_doc"]


@pytest.mark.parametrize("dropped", ["create_doc", "auto_configure"])
def test_each_privilege_of_the_readme_role_is_needed(
    secured_es: Any, writer_role: dict[str, Any], dropped: str
) -> None:
    """Without any one of them, the documents are refused (the role is the minimum)."""
    role = copy.deepcopy(writer_role)
    for entry in role["indices"]:
        entry["privileges"] = [p for p in entry["privileges"] if p != dropped]
    name = f"ecsmh_without_{dropped}"
    user = _make_writer(secured_es, name, role)
    prefix = _prefix()
    try:
        handler = _ship(secured_es, user, prefix, 5, max_retries=0)
        handler.close()
    finally:
        secured_es.request("DELETE", f"/_security/user/{user}")
    stats = handler.stats()
    assert stats["shipped"] == 0, stats
    assert stats["dead_lettered"] + stats["spooled"] + stats["dropped"] == 5, stats


def test_template_installation_by_the_writer_is_refused_once_and_shipping_goes_on(
    secured_es: Any, writer: str, caplog: pytest.LogCaptureFixture
) -> None:
    """install_template=True with the writer: one report saying the template was refused and
    to install it as an administrator; every document still arrives; no template is made."""
    prefix = _prefix()
    with caplog.at_level(logging.INFO, logger="ecs_metrics_handler"):
        handler = _ship(secured_es, writer, prefix, 10, install_template=True)
        log = logging.getLogger(f"lp.{uuid.uuid4().hex[:8]}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        for i in range(10):  # a second batch: no second attempt, no second report
            log.info("m", extra=metric("lp", i))
        assert handler.flush(30)
        log.removeHandler(handler)
        templates = handler.templates()
        handler.close()
    refusals = [r for r in caplog.records if "template was refused" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]
    message = refusals[0].getMessage()
    assert "HTTP 403" in message and "administrator" in message
    stats = handler.stats()
    assert (stats["shipped"], stats["dead_lettered"], stats["spooled"]) == (20, 0, 0), stats
    assert _count(secured_es, prefix) == 20
    resp = secured_es.request("GET", f"/_index_template/{templates['index_name']}")
    assert resp.status == 404


def test_the_writer_ships_to_a_data_stream_an_administrator_prepared(
    secured_es: Any, writer: str
) -> None:
    """The administrator installs the data stream template once; the writer's first document
    creates the data stream (auto_configure) and every document lands in it."""
    name = f"python_metrics-ds-{uuid.uuid4().hex[:10]}"  # within README's pattern
    admin = ElasticECSHandler(
        hosts=[secured_es.url],
        data_stream=name,
        auth_type="BASIC_AUTH",
        auth_details=secured_es.auth,
        ca_certs=secured_es.ca_file,
    )
    admin.install_template()
    admin.close()
    handler = ElasticECSHandler(
        hosts=[secured_es.url],
        data_stream=name,
        auth_type="BASIC_AUTH",
        auth_details=(writer, WRITER_PASSWORD),
        ca_certs=secured_es.ca_file,
        flush_frequency_in_sec=0.2,
    )
    log = logging.getLogger(f"lp.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    for i in range(15):
        log.info("m", extra=metric("lp.ds", i))
    assert handler.flush(30)
    log.removeHandler(handler)
    handler.close()
    stats = handler.stats()
    assert (stats["shipped"], stats["dead_lettered"], stats["spooled"]) == (15, 0, 0), stats
    _admin(secured_es, "POST", f"/{name}/_refresh")
    assert _admin(secured_es, "GET", f"/{name}/_count")["count"] == 15
    resolved = _admin(secured_es, "GET", f"/_resolve/index/{name}")
    assert [d["name"] for d in resolved["data_streams"]] == [name]
