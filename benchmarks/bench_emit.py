"""Application-thread cost of one ``logger.info(..., extra={"metric": ...})`` call.

Variants (each in a fresh child process, all in one run of this script):

* ``null``: a ``logging.NullHandler`` (the floor: the logging module's own cost,
  mostly building the ``LogRecord``);
* ``memory``: ``logging.handlers.MemoryHandler(capacity=10**9)`` without a target
  (a stdlib handler that only appends under the handler lock);
* ``ours_up``: ``ElasticECSHandler`` shipping to the local bulk endpoint while the
  measurement runs (``buffer_size=1000``: the worker wakes every 1000 records and
  builds, serialises and POSTs concurrently with the measured calls; 5000 metrics
  are emitted untimed before every round so the worker is busy from its start);
* ``ours_up_es``: the same, shipping to a real Elasticsearch 9.x node (when one
  is available);
* ``ours_down``: ``ElasticECSHandler`` pointed at a closed port with a failure
  folder set, so the worker fails to connect and spools to disk during the
  measurement.

Method: every call is timed on its own with ``time.perf_counter_ns()`` around it;
the timer's own cost (the median of 20,000 empty timings, typically ~0.1 us) is
subtracted from every sample. Per child: a warm-up of ``--warmup`` calls, then
``--rounds`` rounds of ``--calls`` calls, each round's median and p99 computed
on its own samples; between rounds (untimed) ours is flushed so its queue
stays far below the drop threshold. The garbage collector stays enabled: its
pauses are part of the honest p99. Each variant's child runs ``--reps`` times,
interleaved with the other variants (ABCD ABCD ...) so drift on this shared
machine hits all variants alike.

Estimates reported: the **median** is the minimum over all rounds of the round
medians (noise only adds time); the **p99** is the median over all rounds of the
round p99s (and the worst round's p99 is shown too). Ratios are to the
``null`` variant measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import shutil
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MESSAGE,
    METRIC_NAME,
    bench_logger,
    bulk_endpoint,
    closed_port,
    emit_json,
    emit_metrics,
    es_delete,
    find_es_url,
    handler_options,
    machine_info,
    median,
    percentile,
    run_json_child,
    unique_prefix,
)

PRELOAD = 5_000


def timer_overhead_ns() -> int:
    pc = time.perf_counter_ns
    samples = array("q", bytes(8 * 20_000))
    for i in range(20_000):
        t0 = pc()
        samples[i] = pc() - t0
    return int(median(sorted(samples)))


def timed_round(logger: logging.Logger, calls: int, start: int, overhead: int) -> dict[str, float]:
    """Time ``calls`` emits one by one; return per-call statistics in microseconds."""
    pc = time.perf_counter_ns
    info = logger.info
    samples = array("q", bytes(8 * calls))
    w0 = pc()
    for i in range(start, start + calls):
        t0 = pc()
        info(
            MESSAGE, extra={"metric": {"name": METRIC_NAME, "value": i % 1000 * 0.5, "unit": "ms"}}
        )
        samples[i - start] = pc() - t0
    wall = pc() - w0
    s = sorted(max(0, x - overhead) for x in samples)
    return {
        "median_us": percentile(s, 50) / 1e3,
        "p99_us": percentile(s, 99) / 1e3,
        "p999_us": percentile(s, 99.9) / 1e3,
        "max_us": s[-1] / 1e3,
        "mean_us": (wall / calls - overhead) / 1e3,
    }


def make_handler(variant: str, url: str | None, folder: str | None) -> logging.Handler:
    if variant == "null":
        return logging.NullHandler()
    if variant == "memory":
        return logging.handlers.MemoryHandler(capacity=10**9, flushLevel=logging.CRITICAL + 1)
    from ecs_metrics_handler import ElasticECSHandler

    return ElasticECSHandler(
        **handler_options(
            hosts=[url],
            es_index_name=unique_prefix("emit"),
            buffer_size=1000,
            flush_frequency_in_sec=1.0,
            flush_failure_folder=folder,
        )
    )


def child_main(args: argparse.Namespace) -> int:
    variant = args.child
    folder = tempfile.mkdtemp(prefix="bench-emit-spool-") if variant == "ours_down" else None
    url = args.url
    if variant == "ours_down":
        url = f"http://127.0.0.1:{closed_port()}"
    handler = make_handler(variant, url, folder)
    ours = variant.startswith("ours")
    logger = bench_logger(f"bench.emit.{variant}", handler)
    overhead = timer_overhead_ns()
    i = 0
    emit_metrics(logger, args.warmup, i)
    i += args.warmup
    if ours:
        handler.flush(timeout=60)  # type: ignore[call-arg]
    rounds = []
    for _ in range(args.rounds):
        if ours:
            emit_metrics(logger, PRELOAD, i)  # the worker now has work when timing starts
            i += PRELOAD
            before = handler.stats()  # type: ignore[attr-defined]
        r = timed_round(logger, args.calls, i, overhead)
        i += args.calls
        if ours:
            after = handler.stats()  # type: ignore[attr-defined]
            # what the worker finished while the round ran: evidence it was busy
            r["worker_done_during_round"] = sum(
                after.get(k, 0) - before.get(k, 0) for k in ("shipped", "spooled")
            )
            t = time.perf_counter()
            handler.flush(timeout=120)  # type: ignore[call-arg]
            r["flush_s"] = time.perf_counter() - t
        rounds.append(r)
    if isinstance(handler, logging.handlers.MemoryHandler):
        handler.buffer.clear()
    stats = dict(handler.stats()) if ours else None  # type: ignore[attr-defined]
    handler.close()
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    emit_json(
        {
            "variant": variant,
            "overhead_ns": overhead,
            "rounds": rounds,
            "stats": stats,
            "calls": args.calls,
        }
    )
    return 0


# --------------------------------------------------------------------------- parent

LABELS = {
    "null": "logging.NullHandler (floor)",
    "memory": "logging.handlers.MemoryHandler",
    "ours_up": "ElasticECSHandler, shipping (endpoint)",
    "ours_up_es": "ElasticECSHandler, shipping (ES 9 node)",
    "ours_down": "ElasticECSHandler, server down, spooling",
}


def rep_median(run: dict[str, Any], key: str = "median_us") -> float:
    """One child process's estimate: the median over its rounds."""
    return median([r[key] for r in run["rounds"]])


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Estimates per variant; ratios paired with the floor's child of the same repetition.

    ``x_median`` is the median over repetitions of (variant / floor), each side the median
    of its child's round medians: the two children ran seconds apart, so a slow period of
    this shared machine cancels out. ``median_us`` is the median over repetitions of the
    same per-child estimate; ``best_median_us`` the minimum round median of all rounds.
    """
    rows: dict[str, Any] = {}
    floor_runs = results["null"]
    for variant, runs in results.items():
        rounds = [r for run in runs for r in run["rounds"]]
        stats = [run["stats"] for run in runs if run.get("stats")]
        paired = [
            rep_median(run) / rep_median(fl) for run, fl in zip(runs, floor_runs, strict=False)
        ]
        paired_mean = [
            rep_median(run, "mean_us") / rep_median(fl, "mean_us")
            for run, fl in zip(runs, floor_runs, strict=False)
        ]
        rows[variant] = {
            "label": LABELS[variant],
            "median_us": median([rep_median(run) for run in runs]),
            "best_median_us": min(r["median_us"] for r in rounds),
            "x_median": median(paired),
            "x_median_per_rep": [round(x, 3) for x in paired],
            "x_mean": median(paired_mean),
            "p99_us": median([r["p99_us"] for r in rounds]),
            "p99_worst_us": max(r["p99_us"] for r in rounds),
            "p999_us": median([r["p999_us"] for r in rounds]),
            "max_us": max(r["max_us"] for r in rounds),
            "mean_us": median([rep_median(run, "mean_us") for run in runs]),
            "rounds": len(rounds),
            "overhead_ns": median([run["overhead_ns"] for run in runs]),
            "worker_done_during_round": median(
                [r.get("worker_done_during_round", 0) for r in rounds]
            ),
            "dropped": sum(s.get("dropped", 0) for s in stats),
            "stats": stats[-1] if stats else None,
        }
    floor = rows["null"]
    for row in rows.values():
        row["x_p99"] = row["p99_us"] / floor["p99_us"]
    return rows


def print_table(rows: dict[str, Any], file: Any = sys.stdout) -> None:
    print(
        f"{'variant':42} {'median us':>9} {'x floor':>7} {'best med':>8} {'p99 us':>8} "
        f"{'x floor':>7} {'worst p99':>9} {'p99.9 us':>8} {'worst call':>10} {'mean us':>8} "
        f"{'x floor':>7} "
        f"{'worker/round':>12} {'dropped':>7}",
        file=file,
    )
    for r in rows.values():
        print(
            f"{r['label']:42} {r['median_us']:9.2f} {r['x_median']:7.2f} "
            f"{r['best_median_us']:8.2f} {r['p99_us']:8.1f} "
            f"{r['x_p99']:7.2f} {r['p99_worst_us']:9.1f} {r['p999_us']:8.1f} "
            f"{r['max_us']:10.1f} {r['mean_us']:8.2f} "
            f"{r['x_mean']:7.2f} "
            f"{r['worker_done_during_round']:12.0f} {r['dropped']:7d}",
            file=file,
        )


def run(
    calls: int,
    rounds: int,
    warmup: int,
    reps: int,
    use_es: bool,
    only: list[str] | None = None,
    log: Any = sys.stderr,
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {}
    with bulk_endpoint() as ep:
        es = find_es_url() if use_es else None
        variants = ["null", "memory", "ours_up", "ours_down"] + (["ours_up_es"] if es else [])
        if only:
            variants = [v for v in variants if v in only or v == "null"]
        urls = {"ours_up": ep, "ours_up_es": es}
        for rep in range(reps):
            for v in variants:
                cmd = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--child",
                    v,
                    "--calls",
                    str(calls),
                    "--rounds",
                    str(rounds),
                    "--warmup",
                    str(warmup),
                ]
                if urls.get(v):
                    cmd += ["--url", str(urls[v])]
                t = time.perf_counter()
                res = run_json_child(cmd, timeout=900)
                results.setdefault(v, []).append(res)
                meds = ", ".join(f"{r['median_us']:.2f}/{r['p99_us']:.1f}" for r in res["rounds"])
                print(
                    f"[emit rep {rep + 1}/{reps}] {v}: median/p99 us per round: {meds} "
                    f"({time.perf_counter() - t:.1f}s)",
                    file=log,
                    flush=True,
                )
        if es:
            es_delete(es, "bench-emit-")
    return {
        "machine": machine_info(),
        "calls": calls,
        "rounds": rounds,
        "reps": reps,
        "rows": summarise(results),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", choices=sorted(LABELS), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--calls", type=int, default=10_000, help="timed calls per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per child process")
    ap.add_argument("--warmup", type=int, default=3_000)
    ap.add_argument("--reps", type=int, default=5, help="child processes per variant")
    ap.add_argument("--no-es", action="store_true", help="skip the real node variant")
    ap.add_argument(
        "--only",
        nargs="*",
        choices=sorted(LABELS),
        help="run only these variants (the floor always runs)",
    )
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    out = run(args.calls, args.rounds, args.warmup, args.reps, not args.no_es, args.only)
    print_table(out["rows"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 1 if any(r["dropped"] for r in out["rows"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
