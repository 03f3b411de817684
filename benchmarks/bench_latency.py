"""Time from ``emit`` to searchable, at the handler's default settings.

A handler with default options (only ``hosts`` and ``es_index_name`` given:
``buffer_size=1000``, ``flush_frequency_in_sec=1.0``) logs one probe metric
carrying a unique label; the benchmark then polls
``GET /{index}*/_count`` with a ``match`` query on that label every 10 ms, with
the index's default refresh (``refresh_interval`` 1 s; the polling keeps the
shard search-active), until the document is counted. One probe at a time, a
random pause of 0-1 s between probes so the probes fall at every phase of the
flush timer. The first probe (which creates the index) is not counted.

The floor: the same probe document POSTed directly with one ``_bulk`` request
(urllib3), then polled the same way: the server's own refresh latency.

Expected: about ``flush_frequency_in_sec`` (0-1 s waiting for the timer, 0.5 s
on average) plus the server's refresh (0-1 s), no more.

Against the local bulk endpoint (``--endpoint``, used by the smoke run) there
is no search: it measures emit-to-acknowledged instead.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    bench_logger,
    bulk_endpoint,
    endpoint_docs,
    es_delete,
    find_es_url,
    handler_options,
    http_json,
    machine_info,
    median,
    percentile,
    unique_prefix,
)


def count_probe(url: str, prefix: str, marker: str) -> int:
    status, body = http_json(
        url,
        "POST",
        f"/{prefix}*/_count?ignore_unavailable=true&allow_no_indices=true",
        {"query": {"match": {"labels.probe": marker}}},
        timeout=10,
    )
    return int(body.get("count", 0)) if status == 200 and isinstance(body, dict) else 0


def wait_visible(check: Any, timeout: float, interval: float = 0.01) -> float | None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if check():
            return time.perf_counter()
        time.sleep(interval)
    return None


def run_es(url: str, probes: int, log: Any) -> dict[str, Any]:
    import urllib3

    from ecs_metrics_handler import ElasticECSHandler

    prefix = unique_prefix("latency")
    handler = ElasticECSHandler(**handler_options(hosts=[url], es_index_name=prefix))
    logger = bench_logger("bench.latency", handler)
    parts = urllib.parse.urlsplit(url)
    pool = urllib3.HTTPConnectionPool(parts.hostname or "127.0.0.1", parts.port, maxsize=1)
    rng = random.Random(5)
    ours: list[float] = []
    floor: list[float] = []
    try:
        for k in range(probes + 1):
            # ours
            marker = "p" + uuid.uuid4().hex
            t0 = time.perf_counter()
            logger.info(
                "latency probe",
                extra={
                    "metric": {"name": "bench.latency", "value": k, "labels": {"probe": marker}}
                },
            )
            t1 = wait_visible(lambda m=marker: count_probe(url, prefix, m) == 1, 30)
            if k:
                ours.append(float("inf") if t1 is None else t1 - t0)
            time.sleep(rng.random())
            # floor: one direct bulk request, same index family
            marker = "f" + uuid.uuid4().hex
            body = (
                json.dumps({"create": {"_index": f"{prefix}-floor"}})
                + "\n"
                + json.dumps(
                    {
                        "@timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                        "labels": {"probe": marker},
                        "metrics": {"name": "bench.latency", "value": k},
                    }
                )
                + "\n"
            ).encode()
            t0 = time.perf_counter()
            pool.urlopen(
                "POST", "/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"}
            )
            t1 = wait_visible(lambda m=marker: count_probe(url, prefix, m) == 1, 30)
            if k:
                floor.append(float("inf") if t1 is None else t1 - t0)
            print(
                f"[latency] probe {k}: ours {ours[-1] if k else float('nan'):.3f}s, "
                f"direct {floor[-1] if k else float('nan'):.3f}s",
                file=log,
                flush=True,
            )
            time.sleep(rng.random())
    finally:
        handler.close()
        es_delete(url, prefix)
    return {"target": "es", "ours": ours, "floor": floor}


def run_endpoint(url: str, probes: int, log: Any) -> dict[str, Any]:
    from ecs_metrics_handler import ElasticECSHandler

    prefix = unique_prefix("latency")
    handler = ElasticECSHandler(**handler_options(hosts=[url], es_index_name=prefix))
    logger = bench_logger("bench.latency", handler)
    rng = random.Random(5)
    ours: list[float] = []
    try:
        for k in range(probes + 1):
            t0 = time.perf_counter()
            logger.info("latency probe", extra={"metric": {"name": "bench.latency", "value": k}})
            t1 = wait_visible(lambda k=k: endpoint_docs(url, prefix) >= k + 1, 30)
            if k:
                ours.append(float("inf") if t1 is None else t1 - t0)
            time.sleep(rng.random() * 0.2)
    finally:
        handler.close()
    print(f"[latency] endpoint: {[round(x, 3) for x in ours]}", file=log, flush=True)
    return {"target": "endpoint", "ours": ours, "floor": []}


def describe(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    if not s:
        return {}
    return {
        "median_s": median(s),
        "p90_s": percentile(s, 90),
        "max_s": s[-1],
        "min_s": s[0],
        "n": len(s),
    }


def run(probes: int, use_es: bool, log: Any = sys.stderr) -> dict[str, Any]:
    es = find_es_url() if use_es else None
    if es:
        res = run_es(es, probes, log)
    else:
        with bulk_endpoint() as ep:
            res = run_endpoint(ep, probes, log)
    res["ours_summary"] = describe(res["ours"])
    res["floor_summary"] = describe(res["floor"])
    res["machine"] = machine_info()
    return res


def print_table(res: dict[str, Any], file: Any = sys.stdout) -> None:
    what = (
        "emit -> searchable (ES 9 node)"
        if res["target"] == "es"
        else "emit -> acknowledged (endpoint)"
    )
    for name, key in (
        ("ElasticECSHandler, defaults", "ours_summary"),
        ("direct _bulk POST (floor)", "floor_summary"),
    ):
        s = res.get(key)
        if s:
            print(
                f"{what}: {name}: median {s['median_s']:.3f}s, p90 {s['p90_s']:.3f}s, "
                f"min {s['min_s']:.3f}s, max {s['max_s']:.3f}s over {s['n']} probes",
                file=file,
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probes", type=int, default=15)
    ap.add_argument("--endpoint", action="store_true", help="no real node: emit-to-acknowledged")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    res = run(args.probes, not args.endpoint)
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    bad = [x for x in res["ours"] if x == float("inf")]
    return 1 if bad or not res["ours"] else 0


if __name__ == "__main__":
    sys.exit(main())
