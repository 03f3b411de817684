"""The failure folder: metrics written while the cluster is unreachable, replayed later.

A handler pointed at a host where nothing listens writes its documents to
``flush_failure_folder`` as bulk-ready NDJSON segments; ``replay()`` (or ``python -m
ecs_metrics_handler replay FOLDER``) then sends them to the real cluster, keeping their ids so
that a second replay never duplicates them. ``ELASTICSEARCH_URL`` (default
``http://localhost:9200``) is the real cluster, ``ECSMH_EXAMPLE_INDEX`` (default
``examples-metrics``) the index prefix. Five metrics. Exits 0 only when all were replayed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

from ecs_metrics_handler import ElasticECSHandler, metric, replay

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def main() -> int:
    folder = tempfile.mkdtemp(prefix="ecs-metrics-failures-")
    handler = ElasticECSHandler(
        hosts=[UNREACHABLE],
        es_index_name=PREFIX,
        flush_failure_folder=folder,
        max_retries=0,  # don't retry a host that refuses: spool at once
        request_timeout=2,
    )
    log = logging.getLogger("sensors")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    # The handler reports the outage through the "ecs_metrics_handler" logger; quiet it here.
    logging.getLogger("ecs_metrics_handler").setLevel(logging.CRITICAL)

    for room, celsius in (("a", 21.5), ("b", 19.0), ("c", 23.25), ("d", 20.0), ("e", 18.5)):
        log.info(
            "temperature",
            extra=metric("room.temperature", celsius, unit="celsius", labels={"room": room}),
        )
    settled = handler.flush(timeout=30)  # settled: every record is now in the failure folder
    stats = handler.stats()
    log.removeHandler(handler)
    handler.close()
    print(f"replay_folder: {stats['spooled']} metrics spooled to {folder}:")
    for name in sorted(os.listdir(folder)):
        print(f"replay_folder:   {name}")
    if not (settled and stats["spooled"] == 5):
        print(f"replay_folder: expected 5 spooled documents, counters {stats}")
        return 1

    result = replay(folder, hosts=[URL], es_index_name=PREFIX)  # only its own indices
    print(f"replay_folder: replayed into {URL}: {result}")
    again = replay(folder, hosts=[URL], es_index_name=PREFIX)  # nothing left: segments deleted
    print(f"replay_folder: a second replay finds {again.segments} segment(s)")
    if not (result.complete and result.indexed == 5 and again.segments == 0):
        return 1
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
