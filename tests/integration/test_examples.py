"""Every script in ``examples/`` runs against a real Elasticsearch node and ships what it says.

Each example runs as a subprocess of the interpreter under test, with ``ELASTICSEARCH_URL``
pointing at the session's node and ``ECSMH_EXAMPLE_INDEX`` set to a prefix unique to the test,
so the documents it ships can be counted under ``<prefix>-*``.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 120


def _no_check(docs: list[dict[str, Any]]) -> None:
    return None


def _check_basic(docs: list[dict[str, Any]]) -> None:
    names = sorted(d["metrics"]["name"] for d in docs)
    assert names == ["cache.size", "db.query", "orders.placed", "queue.depth"]
    db = next(d for d in docs if d["metrics"]["name"] == "db.query")
    assert db["metrics"] == {"name": "db.query", "value": 12.5, "unit": "ms", "type": "gauge"}
    assert db["labels"] == {"table": "orders"}
    assert db["service"]["name"] == "shop"
    assert all(d["event"]["kind"] == "metric" for d in docs)


def _check_dictconfig_dict(docs: list[dict[str, Any]]) -> None:
    assert all(d["labels"]["team"] == "payments" for d in docs)
    assert all(d["service"] == {"name": "billing", "environment": "example"} for d in docs)
    timer = next(d for d in docs if d["metrics"]["name"] == "invoice.render")
    assert timer["log"]["logger"] == "ecs_metrics_handler.metrics"
    assert timer["metrics"]["type"] == "timer"


def _check_dictconfig_yaml(docs: list[dict[str, Any]]) -> None:
    assert sorted(d["labels"]["sku"] for d in docs) == ["A-1", "B-2"]
    assert all(d["host"]["id"] == "host-42" for d in docs)
    assert all(d["service"] == {"name": "inventory", "environment": "example"} for d in docs)


def _check_timed(docs: list[dict[str, Any]]) -> None:
    outcomes = sorted((d["metrics"]["name"], d["event"]["outcome"]) for d in docs)
    assert outcomes == [
        ("cart.total", "success"),
        ("cart.total", "success"),
        ("cart.total", "success"),
        ("payment.authorize", "failure"),
        ("payment.authorize", "success"),
        ("receipt.render", "success"),
        ("stock.reserve", "failure"),
    ]
    for doc in docs:
        assert doc["metrics"]["type"] == "timer"
        assert doc["metrics"]["unit"] == "ms"
        assert doc["event"]["duration"] >= 0
        assert doc["metrics"]["duration"]["us"] == doc["event"]["duration"] // 1000
        assert doc["event"]["start"] <= doc["event"]["end"]
    errors = sorted(d["error"]["type"] for d in docs if d["event"]["outcome"] == "failure")
    assert errors == ["LookupError", "RuntimeError"]
    assert all(
        d["labels"] == {"currency": "EUR"} for d in docs if d["metrics"]["name"] == "cart.total"
    )


def _check_migrate(docs: list[dict[str, Any]]) -> None:
    by_name = {d["metrics"]["name"]: d for d in docs}
    assert set(by_name) == {"testTimer", "testMetric"}
    assert by_name["testTimer"]["metrics"]["duration"]["us"] >= 1_000_000
    assert by_name["testMetric"]["metrics"]["duration"]["us"] == 1500
    assert by_name["testMetric"]["event"]["duration"] == 1_500_000


def _check_fork(docs: list[dict[str, Any]]) -> None:
    pids = {d["process"]["pid"] for d in docs}
    assert len(pids) == 4, pids  # the parent and three children
    workers = sorted(d["labels"]["worker"] for d in docs if d["metrics"]["name"] == "job.items")
    assert workers == sorted([0, 1, 2] * 5)


def _check_replay(docs: list[dict[str, Any]]) -> None:
    assert sorted(d["labels"]["room"] for d in docs) == ["a", "b", "c", "d", "e"]


def _check_structlog(docs: list[dict[str, Any]]) -> None:
    by_name = {d["metrics"]["name"]: d for d in docs}
    assert set(by_name) == {"db.query", "checkout.total", "queue.depth"}
    db = by_name["db.query"]
    assert db["log"]["logger"] == "shop"
    assert db["log"]["origin"]["function"] == "checkout"  # structlog keeps the caller
    assert db["message"] == "db query"
    assert by_name["checkout.total"]["metrics"]["type"] == "timer"
    assert by_name["checkout.total"]["labels"] == {"channel": "web"}


def _check_loguru(docs: list[dict[str, Any]]) -> None:
    by_name = {d["metrics"]["name"]: d for d in docs}
    assert set(by_name) == {"db.query", "queue.depth", "orders.placed", "invoice.render"}
    assert by_name["db.query"]["message"] == "db query"  # format="{message}": no decoration
    assert by_name["orders.placed"]["metrics"]["type"] == "counter"
    assert by_name["invoice.render"]["labels"] == {"format": "pdf"}
    assert all(d["log"]["origin"]["file"]["name"] == "loguru_sink.py" for d in docs)


def _check_server(server: str, min_processes: int) -> Callable[[list[dict[str, Any]]], None]:
    def check(docs: list[dict[str, Any]]) -> None:
        assert all(d["metrics"]["name"] == "http.request" for d in docs)
        assert all(d["metrics"]["type"] == "timer" for d in docs)
        assert all(d["labels"] == {"server": server} for d in docs)
        pids = {d["process"]["pid"] for d in docs}
        assert len(pids) >= min_processes, pids

    return check


def _check_django(docs: list[dict[str, Any]]) -> None:
    names = sorted(d["metrics"]["name"] for d in docs)
    assert names == ["books.viewed"] * 10 + ["view.book_detail"] * 10
    assert all(d["service"] == {"name": "bookshop", "environment": "example"} for d in docs)
    views = [d for d in docs if d["metrics"]["name"] == "view.book_detail"]
    assert all(d["labels"] == {"framework": "django"} for d in views)


def _check_celery(docs: list[dict[str, Any]]) -> None:
    assert all(d["metrics"]["name"] == "task.resize" for d in docs)
    assert all(d["event"]["outcome"] == "success" for d in docs)
    # 12 tasks, at most 3 per pool process: at least 4 processes shipped, each its own.
    assert len({d["process"]["pid"] for d in docs}) >= 4


@dataclass(frozen=True)
class Example:
    script: str
    documents: int
    check: Callable[[list[dict[str, Any]]], None] = field(default=_no_check)
    needs_fork: bool = False


CASES = {
    "basic": Example("basic.py", 4, _check_basic),
    "dictconfig_dict": Example("dictconfig_dict.py", 3, _check_dictconfig_dict),
    "dictconfig_yaml": Example("dictconfig_yaml.py", 2, _check_dictconfig_yaml),
    "timed_sync_async": Example("timed_sync_async.py", 7, _check_timed),
    "migrate_from_original": Example("migrate_from_original.py", 2, _check_migrate),
    "fork_workers": Example("fork_workers.py", 17, _check_fork, needs_fork=True),
    "replay_folder": Example("replay_folder.py", 5, _check_replay),
    "structlog_stdlib": Example("structlog_stdlib.py", 3, _check_structlog),
    "loguru_sink": Example("loguru_sink.py", 4, _check_loguru),
    # 20 requests, 2 workers recycled every 4 requests: at least 5 worker processes.
    "gunicorn_app": Example("gunicorn_app.py", 20, _check_server("gunicorn", 5), needs_fork=True),
    "uvicorn_app": Example("uvicorn_app.py", 20, _check_server("uvicorn", 1)),
    "django_site": Example("django_site.py", 20, _check_django),
    "celery_tasks": Example("celery_tasks.py", 12, _check_celery, needs_fork=True),
}

#: Files in examples/ that are not examples themselves: what the server examples load.
SUPPORT_FILES = {"_serve.py", "gunicorn.conf.py", "logging.yaml", "uvicorn_logging.yaml"}


def test_every_example_is_exercised() -> None:
    """Each script in examples/ has a case here, so a new example cannot go untested."""
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - SUPPORT_FILES
    assert scripts == {c.script for c in CASES.values()}
    assert all((EXAMPLES / name).is_file() for name in SUPPORT_FILES)


def _search(es_client: Any, pattern: str) -> list[dict[str, Any]]:
    es_client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    resp = es_client.search(
        index=pattern, size=1000, ignore_unavailable=True, allow_no_indices=True
    )
    return [hit["_source"] for hit in resp["hits"]["hits"]]


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_and_its_documents_arrive(
    name: str, es_server: Any, es_client: Any, unique_name: str, tmp_path: Path
) -> None:
    """The example exits 0 and exactly its documents are searchable under ``<prefix>-*``."""
    case = CASES[name]
    if case.needs_fork and "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the 'fork' start method is not available on this platform")
    env = dict(os.environ)
    env.update(
        ELASTICSEARCH_URL=es_server.url,
        ECSMH_EXAMPLE_INDEX=unique_name,
        PYTHONUNBUFFERED="1",
        TMPDIR=str(tmp_path),
    )
    env.pop("EXAMPLE_HOST_ID", None)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / case.script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, output
    assert proc.stdout.strip(), "an example says what it did"

    docs = _search(es_client, f"{unique_name}-*")
    assert len(docs) == case.documents, output
    case.check(docs)
