"""Fork safety: a parent with a live handler forks worker processes that log metrics too.

The handler notices the fork (``os.register_at_fork``): each child starts with an empty buffer
and its own worker threads and connection, so nothing the parent buffered is shipped twice and
no lock or socket is shared. A ``multiprocessing`` child ends with ``os._exit()``, which skips
``logging.shutdown()``; the handler closes (and so flushes) itself through a ``multiprocessing``
finalizer instead. The children below flush explicitly anyway, to check and report delivery.

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX``
(default ``examples-metrics``) the index prefix. Ships 2 metrics from the parent and 5 from each
of 3 children: 17 documents. Exits 0 only when all were indexed. POSIX only (``fork``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os

from ecs_metrics_handler import ElasticECSHandler, metric

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")
WORKERS = 3
JOBS_PER_WORKER = 5

log = logging.getLogger("jobs")
handler = ElasticECSHandler(hosts=[URL], es_index_name=PREFIX, service_name="jobs")


def work(worker: int) -> None:
    """Runs in a forked child: logs through the handler inherited from the parent."""
    for job in range(JOBS_PER_WORKER):
        log.info("job done", extra=metric("job.items", job + 1, labels={"worker": worker}))
    # Closed at the child's exit anyway; flushing here lets the child check its own delivery.
    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    print(f"fork_workers: child {worker} (pid {os.getpid()}): {stats['shipped']} shipped")
    if not (delivered and stats["shipped"] == JOBS_PER_WORKER):
        raise SystemExit(f"child {worker} could not deliver: {stats}")


def main() -> int:
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    # The parent's worker threads are running (and holding records) when it forks.
    log.info("pool starting", extra=metric("pool.workers", WORKERS))

    context = multiprocessing.get_context("fork")
    children = [context.Process(target=work, args=(n,)) for n in range(WORKERS)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)

    log.info("pool stopped", extra=metric("pool.workers", 0))
    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    log.removeHandler(handler)
    handler.close()
    codes = [child.exitcode for child in children]
    print(f"fork_workers: parent shipped {stats['shipped']}; children exit codes {codes}")
    print(f"fork_workers: {stats['shipped'] + WORKERS * JOBS_PER_WORKER} metrics in {PREFIX}-*")
    return 0 if delivered and stats["shipped"] == 2 and codes == [0] * WORKERS else 1


if __name__ == "__main__":
    raise SystemExit(main())
