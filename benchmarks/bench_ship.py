"""End-to-end cost of shipping a metric: process CPU per metric and metrics per second.

For each variant a fresh child process logs (or posts) ``--n`` metrics after a
flushed warm-up, and measures ``time.process_time()`` (every thread of the
process: application thread, worker, the client's threads) and
``time.perf_counter()`` from the first emit until the server has acknowledged
the last metric. Servers run in other processes, so their CPU is not counted.

Targets (servers):

* ``endpoint``: ``bulk_endpoint.py``, a local bulk endpoint that only
  acknowledges (the client's own cost);
* ``es``: a real Elasticsearch 9.x node (``scripts/nodes.py start`` or
  ``ELASTICSEARCH_URL``), when one is available.

Variants:

* ``null_emit`` (floor): the same ``logger.info`` calls on a ``logging.NullHandler``
  (no server involved: CPU per call).
* ``orjson_floor`` (floor): the same documents, built beforehand (not timed),
  serialised with ``orjson.dumps`` into ``create`` bulk bodies of 1000 and POSTed
  with ``urllib3.HTTPConnectionPool.urlopen`` on one keep-alive connection; the
  answer is parsed with orjson and its ``errors`` flag checked. No logging at all.
* ``helpers_bulk`` (peer): ``elasticsearch.helpers.bulk`` (elasticsearch-py,
  default serializer) fed the same documents as ``create`` actions,
  ``chunk_size=1000``.
* ``ours``: ``ElasticECSHandler`` (``buffer_size=1000``, ``flush_frequency_in_sec=1.0``).
  The application emits as fast as it can but pauses (sleeping, which costs no CPU)
  while more than ``--high-water`` metrics are pending, so the bounded in-memory
  queue never drops; then ``flush()`` and a wait until ``stats()`` counts every
  metric as shipped.
* ``ours_unpaced``: the same handler, the application never pausing (a service logging flat
  out): when the queue is full a logging call waits up to 10 ms for room, then drops the
  record (counted in ``stats()["dropped"]``, reported in the table); CPU is per metric logged.
* ``cmres`` (peer, endpoint only: its 6.x client sends ``_type``, which
  Elasticsearch 8+ rejects) and ``opensearch_logger`` (peer), each in its own
  virtual environment, see ``peer_driver.py``.

Delivery is verified on the server for every variant (the endpoint's per-index
counters, or ``_count`` on the real node).

Estimate: every variant runs ``--reps`` times, interleaved; the table reports
the minimum CPU per metric (noise only adds CPU) and the median rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    bench_logger,
    bulk_endpoint,
    delivered,
    emit_json,
    emit_metrics,
    ensure_venv,
    es_delete,
    find_es_url,
    handler_options,
    machine_info,
    median,
    run_json_child,
    unique_prefix,
    wait_until,
)

BATCH = 1000
TERMINAL = ("shipped", "spooled", "dead_lettered", "invalid", "dropped")


# --------------------------------------------------------------------------- child side


def pending(stats: dict[str, Any]) -> int:
    if "pending" in stats:
        return int(stats["pending"])
    return int(stats.get("emitted", 0)) - sum(int(stats.get(k, 0)) for k in TERMINAL)


def paced_emit(logger: logging.Logger, handler: Any, n: int, start: int, high_water: int) -> int:
    """Emit ``n`` metrics in steps of 1000, sleeping while too many are pending.

    Returns how many times it paused.
    """
    pauses = 0
    done = 0
    while done < n:
        k = min(BATCH, n - done)
        emit_metrics(logger, k, start + done)
        done += k
        if high_water and pending(handler.stats()) > high_water:
            pauses += 1
            while pending(handler.stats()) > high_water // 2:
                time.sleep(0.002)
    return pauses


def make_ours(url: str, prefix: str, **extra: Any) -> Any:
    from ecs_metrics_handler import ElasticECSHandler

    return ElasticECSHandler(
        **handler_options(
            hosts=[url], es_index_name=prefix, buffer_size=1000, flush_frequency_in_sec=1.0, **extra
        )
    )


def wait_shipped(handler: Any, target: int, timeout: float) -> dict[str, Any]:
    handler.flush(timeout=timeout)
    wait_until(
        lambda: handler.stats().get("shipped", 0) >= target or pending(handler.stats()) == 0,
        timeout=timeout,
        interval=0.005,
    )
    return dict(handler.stats())


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) per thread name of this process (Linux, via psutil)."""
    import threading

    try:
        import psutil
    except ImportError:  # optional: the split is informative only
        return {}

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        name = names.get(t.id, "other")
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


def child_ours(args: argparse.Namespace) -> dict[str, Any]:
    handler = make_ours(args.url, args.prefix)
    logger = bench_logger("bench.ship.ours", handler)
    emit_metrics(logger, args.warmup)
    s0 = wait_shipped(handler, args.warmup, 60)
    before = delivered(args.url, args.prefix)

    t0 = thread_cpu()
    c0 = time.process_time()
    w0 = time.perf_counter()
    pauses = paced_emit(logger, handler, args.n, args.warmup, args.high_water)
    s1 = wait_shipped(handler, s0["shipped"] + args.n, 300)
    w1 = time.perf_counter()
    c1 = time.process_time()
    t1 = thread_cpu()
    after = delivered(args.url, args.prefix)
    handler.close()
    return {
        "thread_cpu_us_per_metric": {
            k: round((v - t0.get(k, 0.0)) / args.n * 1e6, 2) for k, v in t1.items()
        },
        "cpu_s": c1 - c0,
        "wall_s": w1 - w0,
        "delivered": after - before,
        "pauses": pauses,
        "stats": {
            k: s1.get(k, 0) - s0.get(k, 0) if isinstance(s1.get(k), int) else s1.get(k) for k in s1
        },
    }


def child_null(args: argparse.Namespace) -> dict[str, Any]:
    logger = bench_logger("bench.ship.null", logging.NullHandler())
    emit_metrics(logger, args.warmup)
    c0 = time.process_time()
    w0 = time.perf_counter()
    emit_metrics(logger, args.n, args.warmup)
    w1 = time.perf_counter()
    c1 = time.process_time()
    return {"cpu_s": c1 - c0, "wall_s": w1 - w0, "delivered": args.n}


def child_orjson(args: argparse.Namespace) -> dict[str, Any]:
    import urllib.parse

    import orjson
    import urllib3
    from _docs import build_documents

    docs, source = build_documents(args.prefix, args.warmup + args.n)
    parts = urllib.parse.urlsplit(args.url)
    pool = urllib3.HTTPConnectionPool(
        parts.hostname, parts.port, maxsize=1, retries=False, timeout=urllib3.Timeout(30)
    )
    headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
    dumps = orjson.dumps

    def ship(chunk: list[Any]) -> None:
        lines = []
        for index, doc_id, doc in chunk:
            lines.append(
                b'{"create":{"_index":"%s","_id":"%s"}}\n' % (index.encode(), doc_id.encode())
            )
            lines.append(dumps(doc))
            lines.append(b"\n")
        resp = pool.urlopen("POST", "/_bulk", body=b"".join(lines), headers=headers)
        body = orjson.loads(resp.data)
        if resp.status != 200 or body.get("errors"):
            raise RuntimeError(f"bulk failed: {resp.status} {str(body)[:500]}")

    for i in range(0, args.warmup, BATCH):
        ship(docs[i : min(i + BATCH, args.warmup)])
    before = delivered(args.url, args.prefix)
    c0 = time.process_time()
    w0 = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.n, BATCH):
        ship(docs[i : min(i + BATCH, args.warmup + args.n)])
    w1 = time.perf_counter()
    c1 = time.process_time()
    return {
        "cpu_s": c1 - c0,
        "wall_s": w1 - w0,
        "delivered": delivered(args.url, args.prefix) - before,
        "documents": source,
    }


def child_helpers(args: argparse.Namespace) -> dict[str, Any]:
    from _docs import build_documents
    from elasticsearch import Elasticsearch, helpers

    docs, source = build_documents(args.prefix, args.warmup + args.n)
    es = Elasticsearch(args.url, request_timeout=30)

    def actions(lo: int, hi: int) -> Any:
        for index, doc_id, doc in docs[lo:hi]:
            yield {"_op_type": "create", "_index": index, "_id": doc_id, "_source": doc}

    helpers.bulk(es, actions(0, args.warmup), chunk_size=BATCH)
    before = delivered(args.url, args.prefix)
    c0 = time.process_time()
    w0 = time.perf_counter()
    helpers.bulk(es, actions(args.warmup, args.warmup + args.n), chunk_size=BATCH, stats_only=True)
    w1 = time.perf_counter()
    c1 = time.process_time()
    return {
        "cpu_s": c1 - c0,
        "wall_s": w1 - w0,
        "delivered": delivered(args.url, args.prefix) - before,
        "documents": source,
    }


def child_ours_unpaced(args: argparse.Namespace) -> dict[str, Any]:
    """``ours`` without pausing: the application logs flat out, as a busy service does."""
    args.high_water = 0
    return child_ours(args)


CHILDREN = {
    "ours": child_ours,
    "ours_unpaced": child_ours_unpaced,
    "null_emit": child_null,
    "orjson_floor": child_orjson,
    "helpers_bulk": child_helpers,
}


def child_main(args: argparse.Namespace) -> int:
    out = CHILDREN[args.child](args)
    out.update(variant=args.child, n=args.n)
    out["cpu_us_per_metric"] = out["cpu_s"] / args.n * 1e6
    out["rate"] = args.n / out["wall_s"] if out["wall_s"] > 0 else float("nan")
    emit_json(out)
    return 0


# --------------------------------------------------------------------------- parent side

PEERS = {
    "cmres": ("cmres", "requirements-cmres.txt"),
    "opensearch_logger": ("opensearch-logger", "requirements-opensearch-logger.txt"),
}


def run_variant(
    variant: str, target: str, url: str, n: int, warmup: int, high_water: int
) -> dict[str, Any]:
    prefix = unique_prefix(variant.replace("_", ""))
    if variant in PEERS:
        venv, req = PEERS[variant]
        py = ensure_venv(venv, BENCH_DIR / req)
        cmd = [str(py), str(BENCH_DIR / "peer_driver.py"), "--variant", variant]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
    cmd += ["--url", url, "--n", str(n), "--warmup", str(warmup), "--prefix", prefix]
    if variant not in PEERS:
        cmd += ["--high-water", str(high_water)]
    try:
        res: dict[str, Any] = run_json_child(cmd, timeout=max(600, n / 200))
    finally:
        if target == "es":
            es_delete(url, prefix)
    res["target"] = target
    dropped = int(res.get("stats", {}).get("dropped", 0)) if variant == "ours_unpaced" else 0
    res["dropped"] = dropped
    if res["delivered"] + dropped != n:  # unpaced, a full queue may drop: counted, not lost
        res["error"] = f"delivered {res['delivered']} of {n}" + (
            f" ({dropped} counted dropped)" if dropped else ""
        )
    return res


def plan(targets: dict[str, str], peers: bool) -> list[tuple[str, str]]:
    """(variant, target) pairs in the order they run within one repetition."""
    out: list[tuple[str, str]] = [("null_emit", "endpoint")]
    for target in targets:
        out += [(v, target) for v in ("orjson_floor", "ours", "ours_unpaced", "helpers_bulk")]
        if peers:
            out.append(("opensearch_logger", target))
            if target == "endpoint":
                out.append(("cmres", target))
    return out


def _paired(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> list[float]:
    """Per-repetition ratios a/b of ``key`` (runs of the same repetition, seconds apart)."""
    return [
        x[key] / y[key]
        for x, y in zip(a, b, strict=False)
        if "error" not in x and "error" not in y and y[key] > 0
    ]


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Group the repetitions and compute ratios to the floors.

    Every ratio is paired: computed within each repetition (the two runs were seconds
    apart, so a slow period of this shared machine cancels out), then the median over the
    repetitions is reported. ``cpu_us`` and ``rate`` are medians over the repetitions,
    ``best_cpu_us`` the minimum.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["target"], r["variant"]), []).append(r)
    rows: dict[str, dict[str, Any]] = {}
    for (target, variant), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        rows[f"{target}/{variant}"] = {
            "target": target,
            "variant": variant,
            "cpu_us": median([r["cpu_us_per_metric"] for r in ok]) if ok else float("nan"),
            "best_cpu_us": min((r["cpu_us_per_metric"] for r in ok), default=float("nan")),
            "cpu_us_all": [round(r["cpu_us_per_metric"], 2) for r in rs],
            "rate": median([r["rate"] for r in ok]) if ok else float("nan"),
            "rate_all": [round(r["rate"]) if r["rate"] == r["rate"] else None for r in rs],
            "errors": [r["error"] for r in rs if "error" in r],
            "dropped": [r.get("dropped", 0) for r in rs],
            "stats": next((r.get("stats") for r in ok if r.get("stats")), None),
            "threads": _median_threads(ok),
        }
    nan = float("nan")
    null_runs = groups.get(("endpoint", "null_emit"), [])
    for (target, variant), rs in groups.items():
        row = rows[f"{target}/{variant}"]
        row["x_null"] = median(_paired(rs, null_runs, "cpu_us_per_metric")) if null_runs else nan
        floor = groups.get((target, "orjson_floor"))
        if floor:
            row["x_orjson_cpu"] = median(_paired(rs, floor, "cpu_us_per_metric"))
            row["x_orjson_rate"] = median(_paired(rs, floor, "rate"))
            row["x_orjson_rate_per_rep"] = [round(x, 3) for x in _paired(rs, floor, "rate")]
        ours = groups.get((target, "ours"))
        if ours:
            per_rep = _paired(rs, ours, "cpu_us_per_metric")
            row["peer_over_ours_cpu"] = median(per_rep)
            row["peer_over_ours_per_rep"] = [round(x, 3) for x in per_rep]
    return rows


def _median_threads(runs: list[dict[str, Any]]) -> dict[str, float] | None:
    splits = [r["thread_cpu_us_per_metric"] for r in runs if r.get("thread_cpu_us_per_metric")]
    if not splits:
        return None
    names = sorted({k for s in splits for k in s})
    return {k: round(median([s.get(k, 0.0) for s in splits]), 2) for k in names}


def print_table(rows: dict[str, Any], file: Any = sys.stdout) -> None:
    print(
        f"{'target/variant':32} {'CPU us/metric':>13} {'x NullHandler':>13} {'x orjson CPU':>12} "
        f"{'metrics/s':>10} {'x orjson rate':>13} {'CPU vs ours':>11}",
        file=file,
    )
    for key, r in rows.items():
        print(
            f"{key:32} {r['cpu_us']:13.2f} {r['x_null']:13.2f} "
            f"{r.get('x_orjson_cpu', float('nan')):12.2f} "
            f"{r['rate']:10.0f} {r.get('x_orjson_rate', float('nan')):13.2f} "
            f"{r.get('peer_over_ours_cpu', float('nan')):11.2f}"
            + (f"  ERRORS: {r['errors']}" if r["errors"] else ""),
            file=file,
        )
    for key, r in rows.items():
        if r.get("threads"):
            split = ", ".join(f"{name} {us:.2f}" for name, us in sorted(r["threads"].items()))
            print(
                f"  {key}: CPU us per metric by thread (psutil, median of reps): {split}", file=file
            )


def run(
    n: int,
    n_es: int,
    reps: int,
    warmup: int,
    peers: bool,
    use_es: bool,
    high_water: int,
    only: list[str] | None = None,
    log: Any = sys.stderr,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with bulk_endpoint() as ep:
        targets = {"endpoint": ep}
        es = find_es_url() if use_es else None
        if es:
            targets["es"] = es
        elif use_es:
            print(
                "no real Elasticsearch node (scripts/nodes.py / ELASTICSEARCH_URL): endpoint only",
                file=log,
            )
        steps = [s for s in plan(targets, peers) if not only or s[0] in only]
        if es and any(t == "es" for _, t in steps):
            # JIT and caches of a fresh JVM: the first variant measured would pay for them.
            t = time.perf_counter()
            run_variant("orjson_floor", "es", es, max(10_000, n_es // 2), warmup, high_water)
            print(f"[ship] node warm-up ({time.perf_counter() - t:.1f}s)", file=log, flush=True)
        for rep in range(reps):
            for variant, target in steps:
                size = n_es if target == "es" else n
                t = time.perf_counter()
                try:
                    res = run_variant(variant, target, targets[target], size, warmup, high_water)
                except Exception as exc:  # report, keep going, fail at the end
                    res = {
                        "variant": variant,
                        "target": target,
                        "error": str(exc)[-2000:],
                        "cpu_us_per_metric": float("nan"),
                        "rate": float("nan"),
                        "delivered": 0,
                    }
                results.append(res)
                print(
                    f"[ship rep {rep + 1}/{reps}] {target}/{variant}: "
                    f"{res['cpu_us_per_metric']:.2f} us/metric, {res['rate']:.0f}/s "
                    f"({time.perf_counter() - t:.1f}s)"
                    f"{' ERROR ' + res['error'][:300] if 'error' in res else ''}",
                    file=log,
                    flush=True,
                )
    rows = summarise(results)
    return {
        "machine": machine_info(),
        "n": n,
        "n_es": n_es,
        "reps": reps,
        "rows": rows,
        "es_url": targets.get("es"),
        "raw": results,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--url")
    ap.add_argument("--prefix")
    ap.add_argument("--n", type=int, default=50_000, help="metrics per run into the endpoint")
    ap.add_argument("--n-es", type=int, default=50_000, help="metrics per run into the real node")
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--high-water",
        type=int,
        default=20_000,
        help="pause emitting while more than this many metrics are pending (ours)",
    )
    ap.add_argument("--no-peers", action="store_true", help="skip CMRESHandler / opensearch-logger")
    ap.add_argument("--no-es", action="store_true", help="skip the real node")
    ap.add_argument("--only", nargs="*", help="run only these variants")
    ap.add_argument("--json", help="write the full results here")
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    out = run(
        args.n,
        args.n_es,
        args.reps,
        args.warmup,
        not args.no_peers,
        not args.no_es,
        args.high_water,
        args.only,
    )
    print_table(out["rows"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 1 if any(r["errors"] for r in out["rows"].values()) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
