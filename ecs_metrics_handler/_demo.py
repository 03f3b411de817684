"""``python -m ecs_metrics_handler demo``: ship a few realistic metrics, say where they went
and show their report.

With hosts in the options the metrics go there; with none (and not ``offline``) a local node is
started with the project's ``scripts/nodes.py`` when run from a source checkout with Java
available; otherwise the documents go to the failure folder, ready to replay. When they reached
a cluster the index is refreshed and the report of the last 15 minutes
(:mod:`ecs_metrics_handler._metrics_report`) is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._bulk_outcome import describe_error
from ._config import HandlerOptions
from ._handler import ElasticECSHandler
from ._metric_extra import metric
from ._metrics_report import metrics_report, report_target
from ._report_format import render_table, time_range
from ._timing import timed

__all__ = ["run_demo"]

_DEMO_NODE = "ecs-metrics-demo"


def _find_nodes_script() -> Path | None:
    for base in (Path(__file__).resolve().parent.parent, Path.cwd()):
        candidate = base / "scripts" / "nodes.py"
        if candidate.is_file():
            return candidate
    return None


def _start_local_node() -> tuple[str | None, str]:
    """Start a node with scripts/nodes.py; return (url or None, what happened)."""
    script = _find_nodes_script()
    if script is None:
        return None, "scripts/nodes.py not found (not a source checkout)"
    if shutil.which("java") is None:
        return None, "Java is not installed"
    print(
        f"demo: starting a local Elasticsearch node with {script} (first start downloads it)",
        flush=True,
    )
    proc = subprocess.run(
        [sys.executable, str(script), "start", "--name", _DEMO_NODE],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    urls = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("http")]
    if proc.returncode != 0 or not urls:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return None, "the local node did not start: " + " | ".join(tail)
    return urls[-1], f"a local node runs ({sys.executable} {script} stop {_DEMO_NODE} stops it)"


def run_demo(options: dict[str, Any], *, index: str, folder: str | None, offline: bool) -> int:
    """Ship the demo's metrics with ``options`` (the CLI's connection options), say where they
    went and end with their report; 0 unless the report failed. Blocking (up to a node's start,
    15 minutes, when no host is given and ``offline`` is false)."""
    note = "using the cluster given"
    if "hosts" not in options:
        note = "--offline: no cluster"
        if not offline:
            url, note = _start_local_node()
            if url:
                options["hosts"] = [url]
    folder = folder or tempfile.mkdtemp(prefix="ecs-metrics-demo-")
    no_cluster = "hosts" not in options
    if no_cluster:
        # Nothing answers there: the documents land in the failure folder, ready to replay.
        options["hosts"] = ["http://127.0.0.1:9"]
        options["max_retries"] = 0
    handler = ElasticECSHandler(
        es_index_name=index,
        flush_failure_folder=folder,
        service_name="checkout-demo",
        es_additional_fields={"service": {"environment": "demo"}},
        install_template=not no_cluster,
        **options,
    )
    log = logging.getLogger("ecs_metrics_handler.metrics.demo")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)

    @timed("db.query", logger=log, labels={"table": "orders"})
    def query_orders() -> int:
        time.sleep(random.uniform(0.002, 0.01))
        return 3

    @timed("payment.authorize", logger=log)
    async def authorize(amount: float) -> bool:
        await asyncio.sleep(0.005)
        if amount > 100:
            raise RuntimeError("card declined")
        return True

    for _ in range(5):
        query_orders()
    for amount in (20.0, 50.0, 250.0):
        with contextlib.suppress(RuntimeError):
            asyncio.run(authorize(amount))
    log.info(
        "queue depth",
        extra=metric("queue.depth", 17, unit="jobs", type="gauge", labels={"queue": "emails"}),
    )
    log.info("orders placed", extra=metric("orders.placed", 2, type="counter"))
    with timed("report.render", logger=log):
        time.sleep(0.003)

    delivered = handler.flush(timeout=20)
    stats = handler.stats()
    handler.close()
    log.removeHandler(handler)
    print(f"demo: {stats['emitted']} metrics emitted; {note}")
    indexed = not no_cluster and delivered and stats["spooled"] == 0
    if indexed:
        print(
            f"demo: {stats['shipped']} documents indexed into {handler.options.hosts[0]} "
            f"index pattern {index}-*"
        )
        print(f"demo: look: curl -s '{handler.options.hosts[0]}/{index}-*/_search?size=3&pretty'")
    else:
        print(f"demo: {stats['spooled']} documents written to the failure folder {folder}")
        print(
            "demo: replay them with: python -m ecs_metrics_handler replay "
            f"{folder} --index {index} --hosts URL"
        )
    print("demo: counters: " + json.dumps(stats, sort_keys=True))
    if not indexed:
        print("demo: no report: the documents did not reach a cluster (replay them, then run "
              "python -m ecs_metrics_handler report)")  # fmt: skip
        return 0
    return _show_report(handler.options, index)


def _show_report(options: HandlerOptions, index: str) -> int:
    """Refresh the demo's indices and print the report of the last 15 minutes; 1 if it failed."""
    window = time_range(since="15m", start=None, end=None, now=datetime.now(timezone.utc))
    print(
        "demo: the report of the last 15 minutes (python -m ecs_metrics_handler report "
        f"--index {index} --since 15m --hosts {options.hosts[0]}):"
    )
    try:
        rows = metrics_report(options, window, refresh=True)
    except Exception as e:
        print(f"demo: the report failed: {type(e).__name__}: {describe_error(e)}", file=sys.stderr)
        return 1
    print(render_table(rows, report_target(options), window, 30))
    return 0
