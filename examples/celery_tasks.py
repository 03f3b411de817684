"""Celery tasks timed with ``timed()``, run by a worker with a prefork pool.

The worker's logging comes from the ``setup_logging`` signal: connecting to it tells Celery to
leave logging to the application, which applies its ``dictConfig`` (the handler included) in
the worker's main process before the pool forks. Each pool process inherits the handler and
starts it afresh (empty buffer, its own threads). A pool process ends with ``os._exit()``,
which skips ``atexit`` and ``multiprocessing``'s exit hooks alike, whether Celery recycles it
(``--max-tasks-per-child``) or stops the pool; the ``worker_process_shutdown`` signal, sent in
the pool process just before, is where it ships what it still holds. Run the worker as you
would in production::

    celery -A celery_tasks worker --pool prefork --concurrency 2 --max-tasks-per-child 3

Run as a script, this file starts such a worker (with the filesystem transport, so no broker
server is needed), sends 12 tasks, waits for their results, stops the worker with ``SIGTERM``
(a warm shutdown) and checks that the cluster holds one timer per task.

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX``
(default ``examples-metrics``) the index prefix, ``CELERY_EXAMPLE_FOLDER`` (default: a folder
under the temporary directory) where the transport and the results live. Exits 0 only when all
12 were indexed.
"""

from __future__ import annotations

import logging
import logging.config
import os
import tempfile
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_shutdown

from ecs_metrics_handler import timed

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")
FOLDER = Path(
    os.environ.get("CELERY_EXAMPLE_FOLDER") or Path(tempfile.gettempdir(), "celery-example")
)
TASKS = 12

for sub in ("queue", "processed", "results"):
    (FOLDER / sub).mkdir(parents=True, exist_ok=True)

app = Celery("celery_tasks", broker="filesystem://", backend=f"file://{FOLDER / 'results'}")
app.conf.broker_transport_options = {
    "data_folder_in": str(FOLDER / "queue"),
    "data_folder_out": str(FOLDER / "queue"),
    "processed_folder": str(FOLDER / "processed"),
}


@setup_logging.connect
def configure_logging(**_: Any) -> None:
    """Runs in the worker only: the application's logging, the handler included."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "console": {"class": "logging.StreamHandler"},
                "metrics": {
                    "class": "ecs_metrics_handler.ElasticECSHandler",
                    "hosts": [URL],
                    "es_index_name": PREFIX,
                    "service_name": "thumbnailer",
                },
            },
            "loggers": {"celery": {"level": "INFO", "handlers": ["console"]}},
            "root": {"level": "INFO", "handlers": ["metrics"]},
        }
    )


@worker_process_shutdown.connect
def ship_what_is_left(**_: Any) -> None:
    """Runs in each pool process as it ends: flush (within flush_timeout) and close."""
    logging.shutdown()


@app.task
@timed("task.resize", labels={"queue": "celery"})
def resize(image: int) -> int:
    """A task; ``timed()`` inside ``app.task`` times each run in the pool process."""
    return os.getpid()


def main() -> int:
    import signal
    import subprocess
    import sys

    from _serve import count_documents

    here = Path(__file__).resolve().parent
    env = dict(os.environ, CELERY_EXAMPLE_FOLDER=str(FOLDER))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here), env.get("PYTHONPATH")]))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "prefork",
         "--concurrency", "2", "--max-tasks-per-child", "3", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        env=env,
    )  # fmt: skip
    try:
        results = [resize.delay(n) for n in range(TASKS)]
        pids = {result.get(timeout=60) for result in results}
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish first
        code = worker.wait(60)
    indexed = count_documents()
    print(f"celery_tasks: {TASKS} tasks run by {len(pids)} pool processes")
    print(f"celery_tasks: the worker exited {code}; {indexed} documents indexed")
    return 0 if code == 0 and indexed == TASKS else 1


if __name__ == "__main__":
    raise SystemExit(main())
