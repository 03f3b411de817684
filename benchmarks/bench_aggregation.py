"""Client cost of a metric with ``aggregation_interval`` on, against the NullHandler floor.

One run measures, each variant in a fresh child process and on the same workload:

* ``null`` (floor): the workload's ``logger.info(..., extra=metric(...))`` calls on a
  ``logging.NullHandler``;
* ``ours_agg``: ``ElasticECSHandler(aggregation_interval=1.0, buffer_size=1000,
  flush_frequency_in_sec=1.0)`` shipping its aggregate documents to the local
  acknowledge-only bulk endpoint (``bulk_endpoint.py``);
* ``ours_docs``: the same handler without aggregation (one document per metric), for
  comparison.

The workload (:func:`emit_workload`): of every 10 calls, 8 timers (``http.request``, unit
``ms``, values ``i % 1000 * 0.5``) over 10 label sets ``{"route": ..., "method": ...}``, one
counter (``http.requests``, labelled the same way) and one unlabelled gauge
(``queue.depth``), each built with :func:`ecs_metrics_handler.metric` as an application
would.

Three measures per child, in three phases (the floor's child: the first and the last):

1. **End-to-end client CPU per metric**: ``time.process_time()`` (every thread of the
   process: application, batcher, sender) from the first of ``--n`` calls until the handler
   has settled them (``flush()``, then ``stats()`` counts every metric ``aggregated`` or
   ``shipped`` and no aggregate document pending), divided by ``--n``. Ours emits as fast as
   it can but sleeps (no CPU) while more than ``--high-water`` metrics are pending, as in
   ``bench_ship.py``. For the floor: the CPU of the calls alone. Delivery is checked on
   the endpoint (its per-index counters): every document, and for ``ours_agg`` every
   aggregate document counted in ``stats()["aggregates"]``.
2. **The same, paired in one process**: ``--n`` metrics again, in chunks of ``--chunk``,
   each chunk preceded by a chunk of the same calls on a ``NullHandler`` logger in the same
   process. The floor is the main thread's CPU (``time.thread_time()``) over the floor
   chunks; ours is the process's CPU over the whole phase (until settled, as above) less that.
   A floor measured milliseconds, not seconds, apart from what it is compared with: the
   slow drifts of a shared machine hit both.
3. **Application-thread cost per call**: ``--rounds`` rounds of ``--calls`` calls, each
   timed on its own with ``time.perf_counter_ns()`` (the timer's own cost subtracted), the
   worker busy with ``bench_emit.PRELOAD`` untimed calls logged before each round; a round's
   median and p99; the child's estimate is the median over its rounds.

Estimates: every variant runs ``--reps`` times, interleaved (null, ours_agg, ours_docs, null,
...). Ratios are **paired**: each child's figure divided by the floor child's of the same
repetition, then the median over repetitions (and the spread, min-max, is printed); phase 2's
ratio is each child's own (column ``paired x``), its median over repetitions.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MESSAGE,
    bench_logger,
    bulk_endpoint,
    emit_json,
    endpoint_docs,
    handler_options,
    machine_info,
    median,
    percentile,
    run_json_child,
    unique_prefix,
    wait_until,
)
from bench_emit import PRELOAD, timer_overhead_ns
from bench_ship import thread_cpu

VARIANTS = ("null", "ours_agg", "ours_docs")
LABEL_SETS = tuple(
    {"route": f"/api/v1/items/{i}", "method": "GET" if i % 3 else "POST"} for i in range(10)
)
INTERVAL = 1.0


def emit_workload(logger: logging.Logger, n: int, start: int = 0) -> None:
    """Log ``n`` metrics: 8 timers, 1 counter, 1 gauge of every 10 (see the module doc)."""
    from ecs_metrics_handler import metric

    info = logger.info
    labels = LABEL_SETS
    for i in range(start, start + n):
        kind = i % 10
        if kind < 8:
            extra = metric(
                "http.request", i % 1000 * 0.5, unit="ms", type="timer", labels=labels[i // 10 % 10]
            )
        elif kind == 8:
            extra = metric("http.requests", 1, type="counter", labels=labels[i // 10 % 10])
        else:
            extra = metric("queue.depth", i % 50, type="gauge")
        info(MESSAGE, extra=extra)


def timed_round(logger: logging.Logger, calls: int, start: int, overhead: int) -> dict[str, float]:
    """The workload's calls timed one by one; per-call median and p99 in microseconds."""
    from ecs_metrics_handler import metric

    pc = time.perf_counter_ns
    info = logger.info
    labels = LABEL_SETS
    samples = array("q", bytes(8 * calls))
    for i in range(start, start + calls):
        kind = i % 10
        t0 = pc()
        if kind < 8:
            extra = metric(
                "http.request", i % 1000 * 0.5, unit="ms", type="timer", labels=labels[i // 10 % 10]
            )
        elif kind == 8:
            extra = metric("http.requests", 1, type="counter", labels=labels[i // 10 % 10])
        else:
            extra = metric("queue.depth", i % 50, type="gauge")
        info(MESSAGE, extra=extra)
        samples[i - start] = pc() - t0
    s = sorted(max(0, x - overhead) for x in samples)
    return {"median_us": percentile(s, 50) / 1e3, "p99_us": percentile(s, 99) / 1e3}


# --------------------------------------------------------------------------- child side


def settled(stats: dict[str, Any]) -> bool:
    return int(stats.get("pending", 0)) == 0


def paced(logger: logging.Logger, handler: Any, n: int, start: int, high_water: int) -> None:
    done = 0
    while done < n:
        k = min(1000, n - done)
        emit_workload(logger, k, start + done)
        done += k
        if handler is not None and int(handler.stats().get("pending", 0)) > high_water:
            while int(handler.stats().get("pending", 0)) > high_water // 2:
                time.sleep(0.002)


def paired_with_floor(
    logger: logging.Logger, handler: Any, n: int, start: int, chunk: int, high_water: int
) -> dict[str, float]:
    """Phase 2 (see the module doc): ours and the floor alternated by chunks, one process."""
    floor = bench_logger(f"{logger.name}.floor", logging.NullHandler())
    floor_cpu = 0.0
    done, i = 0, start
    c0 = time.process_time()
    while done < n:
        k = min(chunk, n - done)
        t = time.thread_time()
        emit_workload(floor, k, i)
        floor_cpu += time.thread_time() - t
        paced(logger, handler, k, i, high_water)
        i += k
        done += k
    settle(handler)
    ours = (time.process_time() - c0 - floor_cpu) / n * 1e6
    return {"cpu_us_per_metric": ours, "floor_us_per_metric": floor_cpu / n * 1e6}


def settle(handler: Any) -> dict[str, Any]:
    handler.flush(timeout=120)
    wait_until(lambda: settled(handler.stats()), timeout=120, interval=0.005)
    return dict(handler.stats())


def child_main(args: argparse.Namespace) -> int:
    variant = args.child
    prefix = unique_prefix(variant.replace("_", ""))
    handler: Any = None
    if variant == "null":
        logger = bench_logger("bench.aggregation.null", logging.NullHandler())
    else:
        from ecs_metrics_handler import ElasticECSHandler

        extra: dict[str, Any] = {"aggregation_interval": INTERVAL} if variant == "ours_agg" else {}
        handler = ElasticECSHandler(
            **handler_options(
                hosts=[args.url],
                es_index_name=prefix,
                buffer_size=1000,
                flush_frequency_in_sec=1.0,
                **extra,
            )
        )
        logger = bench_logger(f"bench.aggregation.{variant}", handler)
    overhead = timer_overhead_ns()
    i = 0
    emit_workload(logger, args.warmup, i)
    i += args.warmup
    s0 = settle(handler) if handler is not None else {}
    before = endpoint_docs(args.url, prefix) if handler is not None else 0

    # phase 1: end-to-end CPU per metric
    t0 = thread_cpu()
    c0 = time.process_time()
    w0 = time.perf_counter()
    paced(logger, handler, args.n, i, args.high_water)
    s1 = settle(handler) if handler is not None else {}
    w1 = time.perf_counter()
    c1 = time.process_time()
    t1 = thread_cpu()
    i += args.n
    out: dict[str, Any] = {
        "variant": variant,
        "n": args.n,
        "cpu_us_per_metric": (c1 - c0) / args.n * 1e6,
        "wall_s": w1 - w0,
        "thread_cpu_us_per_metric": {
            k: round((v - t0.get(k, 0.0)) / args.n * 1e6, 2) for k, v in t1.items()
        },
    }
    if handler is not None:
        delta = {k: s1.get(k, 0) - s0.get(k, 0) for k in s1 if isinstance(s1.get(k), int)}
        out["stats"] = delta
        got = endpoint_docs(args.url, prefix) - before
        want = delta.get("aggregates", 0) if variant == "ours_agg" else args.n
        counted = delta.get("aggregated" if variant == "ours_agg" else "shipped", 0)
        out["documents"] = got
        if got != want or counted != args.n or delta.get("dropped") or delta.get("invalid"):
            out["error"] = (
                f"endpoint acknowledged {got} documents, expected {want}; "
                f"{counted} of {args.n} metrics counted; stats {delta}"
            )

    # phase 2: the same, paired with the floor in this process
    if handler is not None:
        out["paired"] = paired_with_floor(logger, handler, args.n, i, args.chunk, args.high_water)
        i += args.n

    # phase 3: application-thread cost per call
    rounds = []
    for _ in range(args.rounds):
        if handler is not None:
            emit_workload(logger, PRELOAD, i)  # the worker has work while the round runs
            i += PRELOAD
        rounds.append(timed_round(logger, args.calls, i, overhead))
        i += args.calls
        if handler is not None:
            settle(handler)
    out["app_median_us"] = median([r["median_us"] for r in rounds])
    out["app_p99_us"] = median([r["p99_us"] for r in rounds])
    if handler is not None:
        handler.close()
    emit_json(out)
    return 0


# --------------------------------------------------------------------------- parent side


def _spread(values: list[float]) -> list[float]:
    return [round(min(values), 2), round(max(values), 2)] if values else []


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: medians over repetitions, and ratios paired with the floor's child."""
    by: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for r in results:
        by[r["variant"]].append(r)
    floor = by["null"]
    rows: dict[str, Any] = {}
    for variant, runs in by.items():
        ok = [r for r in runs if "error" not in r]
        pairs = [
            (r, f)
            for r, f in zip(runs, floor, strict=False)
            if "error" not in r and "error" not in f
        ]
        x_cpu = [r["cpu_us_per_metric"] / f["cpu_us_per_metric"] for r, f in pairs]
        x_med = [r["app_median_us"] / f["app_median_us"] for r, f in pairs]
        x_paired = [
            r["paired"]["cpu_us_per_metric"] / r["paired"]["floor_us_per_metric"]
            for r in ok
            if "paired" in r
        ]
        rows[variant] = {
            "cpu_us": median([r["cpu_us_per_metric"] for r in ok]),
            "cpu_us_all": [round(r["cpu_us_per_metric"], 2) for r in runs],
            "x_null_cpu": median(x_cpu),
            "x_null_cpu_spread": _spread(x_cpu),
            "x_paired_cpu": (
                median(x_paired) if x_paired else 1.0 if variant == "null" else float("nan")
            ),
            "x_paired_cpu_all": [round(x, 2) for x in x_paired],
            "app_median_us": median([r["app_median_us"] for r in ok]),
            "app_median_all": [round(r["app_median_us"], 2) for r in runs],
            "x_null_median": median(x_med),
            "x_null_median_spread": _spread(x_med),
            "app_p99_us": median([r["app_p99_us"] for r in ok]),
            "documents": [r.get("documents") for r in runs],
            "errors": [r["error"] for r in runs if "error" in r],
        }
    return rows


def print_table(rows: dict[str, Any], file: Any = sys.stdout) -> None:
    print(
        f"{'variant':10} {'CPU us/metric':>13} {'x null (min-max)':>22} "
        f"{'paired x':>8} {'app median us':>13} {'x null (min-max)':>22} {'app p99 us':>10} "
        f"{'docs/run':>9}",
        file=file,
    )
    for key, r in rows.items():
        cs, ms = r["x_null_cpu_spread"] or [0, 0], r["x_null_median_spread"] or [0, 0]
        paired = r.get("x_paired_cpu", 1.0)
        docs = median([d for d in r["documents"] if d is not None]) if key != "null" else 0
        print(
            f"{key:10} {r['cpu_us']:13.2f} {r['x_null_cpu']:8.2f} ({cs[0]:.2f}-{cs[1]:.2f}){'':4} "
            f"{paired:8.2f} {r['app_median_us']:13.2f} {r['x_null_median']:8.2f} "
            f"({ms[0]:.2f}-{ms[1]:.2f}){'':4} "
            f"{r['app_p99_us']:10.1f} {docs:9.0f}"
            + (f"  ERRORS: {r['errors']}" if r["errors"] else ""),
            file=file,
        )


def run(
    n: int,
    reps: int,
    warmup: int,
    rounds: int,
    calls: int,
    high_water: int = 20_000,
    log: Any = sys.stderr,
    chunk: int = 2_000,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with bulk_endpoint() as url:
        for rep in range(reps):
            for variant in VARIANTS:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
                cmd += ["--url", url, "--n", str(n), "--warmup", str(warmup)]
                cmd += ["--rounds", str(rounds), "--calls", str(calls)]
                cmd += ["--high-water", str(high_water), "--chunk", str(chunk)]
                t = time.perf_counter()
                try:
                    res: dict[str, Any] = run_json_child(cmd, timeout=max(600, n / 200))
                except Exception as exc:  # report, keep going
                    res = {
                        "variant": variant,
                        "error": str(exc)[-2000:],
                        "cpu_us_per_metric": float("nan"),
                        "app_median_us": float("nan"),
                        "app_p99_us": float("nan"),
                    }
                results.append(res)
                print(
                    f"[aggregation rep {rep + 1}/{reps}] {variant}: "
                    f"{res['cpu_us_per_metric']:.2f} us/metric, app median "
                    f"{res['app_median_us']:.2f} us ({time.perf_counter() - t:.1f}s)"
                    f"{' ERROR ' + res['error'][:300] if 'error' in res else ''}",
                    file=log,
                    flush=True,
                )
    rows = summarise(results)
    return {"machine": machine_info(), "n": n, "reps": reps, "rows": rows, "raw": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=50_000, help="metrics per run (phase 1)")
    ap.add_argument("--warmup", type=int, default=3_000)
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per child (phase 2)")
    ap.add_argument("--calls", type=int, default=10_000, help="timed calls per round")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--high-water", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=2_000, help="metrics per chunk (phase 2)")
    ap.add_argument("--json", help="write the full results here")
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    out = run(args.n, args.reps, args.warmup, args.rounds, args.calls, args.high_water)
    print_table(out["rows"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 1 if any(r["errors"] for r in out["rows"].values()) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
