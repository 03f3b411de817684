"""Run every benchmark in one go and print one table of ratios to the floors.

Usage (from the repository root, with the package installed: ``pip install -e .``)::

    python benchmarks/run_all.py              # the full run (~15-25 min on 2 cores)
    python benchmarks/run_all.py --smoke      # tiny sizes, seconds: correctness only (CI)

The full run starts (or reuses) a real Elasticsearch 9.x node through
``scripts/nodes.py start --name bench-es9`` unless ``ELASTICSEARCH_URL`` is set
or ``--no-es`` is given, and stops that node at the end unless ``--keep-node``.
It creates the peers' virtual environments under ``benchmarks/.venvs/`` on first
use (``requirements-*.txt``). Results are written as JSON to
``benchmarks/.results/`` (``--json-dir``).

``--smoke`` uses the local bulk endpoint only (no real node, no peers' virtual
environments), runs each benchmark at a tiny size and exits non-zero when any of
them fails: a child process that crashes, a metric that was not delivered or
was dropped, a probe that never arrived. Its figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_aggregation
import bench_emit
import bench_latency
import bench_memory
import bench_ship
import bench_worker_steps
from _common import BENCH_DIR, find_es_url, machine_info, stop_es


def fmt(x: float, spec: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def ratios_table(res: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(measure, figure, ratio to floor, target, met?) rows."""
    rows: list[tuple[str, str, str, str, str]] = []
    emit = res.get("emit", {}).get("rows", {})
    floor = emit.get("null")
    if floor:
        rows.append(
            (
                "app thread: NullHandler floor, median / p99",
                f"{fmt(floor['median_us'])} / {fmt(floor['p99_us'], '.1f')} us",
                "1.00",
                "",
                "",
            )
        )
        for key in ("memory", "ours_up", "ours_up_es", "ours_down"):
            r = emit.get(key)
            if not r:
                continue
            ours = key.startswith("ours")
            rows.append(
                (
                    f"app thread median: {r['label']}",
                    f"{fmt(r['median_us'])} us",
                    f"{fmt(r['x_median'])}x paired; best rounds "
                    f"{fmt(r['best_median_us'] / floor['best_median_us'])}x",
                    "<= 1.3x" if ours else "",
                    verdict(r["x_median"] <= 1.3) if ours else "",
                )
            )
            rows.append(
                (
                    f"app thread p99: {r['label']}",
                    f"{fmt(r['p99_us'], '.1f')} us",
                    f"{fmt(r['x_p99'])}x",
                    "< 50 us" if ours else "",
                    verdict(r["p99_us"] < 50) if ours else "",
                )
            )
    ship = res.get("ship", {}).get("rows", {})
    null = ship.get("endpoint/null_emit")
    if null:
        rows.append(
            (
                "end to end: NullHandler emit floor, CPU per metric",
                f"{fmt(null['cpu_us'])} us",
                "1.00",
                "",
                "",
            )
        )
    for target in ("endpoint", "es"):
        fl = ship.get(f"{target}/orjson_floor")
        ours = ship.get(f"{target}/ours")
        if fl:
            rows.append(
                (
                    f"end to end [{target}]: orjson floor CPU per metric",
                    f"{fmt(fl['cpu_us'])} us",
                    f"{fmt(fl['x_null'])}x null",
                    "",
                    "",
                )
            )
        if ours:
            rows.append(
                (
                    f"end to end [{target}]: ours CPU per metric",
                    f"{fmt(ours['cpu_us'])} us",
                    f"{fmt(ours['x_null'])}x null, "
                    f"{fmt(ours.get('x_orjson_cpu', float('nan')))}x orjson",
                    "<= 3x null",
                    verdict(ours["x_null"] <= 3),
                )
            )
            unpaced = ship.get(f"{target}/ours_unpaced")
            if unpaced:
                rows.append(
                    (
                        f"end to end [{target}]: ours unpaced CPU per metric",
                        f"{fmt(unpaced['cpu_us'])} us",
                        f"{fmt(unpaced['x_null'])}x null; dropped {max(unpaced['dropped'])}",
                        "<= 3x null",
                        verdict(unpaced["x_null"] <= 3),
                    )
                )
            for peer, want in (("cmres", 3.0), ("opensearch_logger", 4.0), ("helpers_bulk", 0)):
                p = ship.get(f"{target}/{peer}")
                if p:
                    target_txt = f">= {want:g}x" if want else ""
                    rows.append(
                        (
                            f"end to end [{target}]: {peer} CPU per metric / ours",
                            f"{fmt(p['cpu_us'])} us",
                            f"{fmt(p['peer_over_ours_cpu'])}x",
                            target_txt,
                            verdict(p["peer_over_ours_cpu"] >= want) if want else "",
                        )
                    )
        if ours and fl:
            rows.append(
                (
                    f"throughput [{target}]: ours vs orjson floor",
                    f"{fmt(ours['rate'], '.0f')} vs {fmt(fl['rate'], '.0f')} /s",
                    f"{fmt(ours['x_orjson_rate'])}x",
                    ">= 0.9x" if target == "es" else "",
                    verdict(ours["x_orjson_rate"] >= 0.9) if target == "es" else "",
                )
            )
    steps = res.get("steps")
    if steps:
        batcher = steps["build_batch (whole batcher step)"]
        null_call = steps["emit (NullHandler)"]
        rows.append(
            (
                "batcher per document (bench_worker_steps)",
                f"{fmt(batcher / 1000)} us",
                f"{fmt(batcher / null_call)}x the NullHandler call; reference builder "
                f"{fmt(steps['build_batch, reference builder only'] / 1000)} us",
                "<= 4 us",
                verdict(batcher <= 4000),
            )
        )
    agg = res.get("aggregation", {}).get("rows", {})
    if agg.get("null") and agg.get("ours_agg"):
        floor, ours, docs = agg["null"], agg["ours_agg"], agg.get("ours_docs")
        lo, hi = ours["x_null_cpu_spread"] or [math.nan, math.nan]
        rows.append(
            (
                "aggregation: NullHandler floor, CPU per call / app median",
                f"{fmt(floor['cpu_us'])} / {fmt(floor['app_median_us'])} us",
                "1.00",
                "",
                "",
            )
        )
        rows.append(
            (
                "aggregation on: end to end CPU per metric",
                f"{fmt(ours['cpu_us'])} us",
                f"{fmt(ours['x_null_cpu'])}x null (reps {fmt(lo)}-{fmt(hi)})",
                "<= 1.5x null",
                verdict(ours["x_null_cpu"] <= 1.5),
            )
        )
        paired = ours.get("x_paired_cpu_all") or [math.nan]
        rows.append(
            (
                "aggregation on: same, floor paired in one process",
                "",
                f"{fmt(ours['x_paired_cpu'])}x null (reps {fmt(min(paired))}-{fmt(max(paired))})",
                "<= 1.5x null",
                verdict(ours["x_paired_cpu"] <= 1.5),
            )
        )
        if docs:
            rows.append(
                (
                    "aggregation off (same workload): CPU per metric",
                    f"{fmt(docs['cpu_us'])} us",
                    f"{fmt(docs['x_null_cpu'])}x null",
                    "",
                    "",
                )
            )
            rows.append(
                (
                    "aggregation on: app thread median (off)",
                    f"{fmt(ours['app_median_us'])} ({fmt(docs['app_median_us'])}) us",
                    f"{fmt(ours['x_null_median'])}x null ({fmt(docs['x_null_median'])}x)",
                    "unchanged",
                    "",
                )
            )
    mem = res.get("memory", {}).get("modes", {})
    for mode, m in mem.items():
        growth = bench_memory.flatness(m)
        st = m["stats"]
        rows.append(
            (
                f"peak RSS, {m['n']:,} metrics, {mode}",
                f"{fmt(m['peak_rss_mib'], '.1f')} MiB",
                f"{growth:+.1f} MiB over 2nd half; dropped {st.get('dropped', 0):,}",
                "flat",
                verdict(abs(growth) < 16) if not math.isnan(growth) else "n/a",
            )
        )
    lat = res.get("latency")
    if lat and lat.get("ours_summary"):
        s = lat["ours_summary"]
        f = lat.get("floor_summary") or {}
        what = "searchable" if lat["target"] == "es" else "acknowledged (endpoint)"
        ok = s["p90_s"] <= 1.0 + 1.0 + 0.3 if lat["target"] == "es" else None
        rows.append(
            (
                f"latency emit -> {what}, median / p90",
                f"{fmt(s['median_s'], '.3f')} / {fmt(s['p90_s'], '.3f')} s",
                (
                    f"direct POST {fmt(f['median_s'], '.3f')} / {fmt(f['p90_s'], '.3f')} s"
                    if f
                    else ""
                ),
                "~ 1 s flush + 1 s refresh",
                verdict(ok),
            )
        )
    return rows


def print_ratios(rows: list[tuple[str, str, str, str, str]], file: Any = sys.stdout) -> None:
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':{w}}  {'figure':>22}  {'ratio':<44}  {'target':<26}  result", file=file)
    for r in rows:
        print(f"{r[0]:{w}}  {r[1]:>22}  {r[2]:<44}  {r[3]:<26}  {r[4]}", file=file)


def smoke_checks(res: dict[str, Any]) -> list[str]:
    problems = []
    for key, r in res.get("emit", {}).get("rows", {}).items():
        if r["dropped"]:
            problems.append(f"emit/{key}: {r['dropped']} dropped")
        if not r["median_us"] > 0:
            problems.append(f"emit/{key}: no timing")
    for key, r in res.get("ship", {}).get("rows", {}).items():
        if r["errors"]:
            problems.append(f"ship/{key}: {r['errors']}")
    for key, r in res.get("aggregation", {}).get("rows", {}).items():
        if r["errors"]:
            problems.append(f"aggregation/{key}: {r['errors']}")
    for mode, m in res.get("memory", {}).get("modes", {}).items():
        st = m["stats"]
        lost = st.get("emitted", 0) - sum(st.get(k, 0) for k in ("shipped", "spooled", "dropped"))
        if lost:
            problems.append(f"memory/{mode}: {lost} metrics unaccounted for")
        if mode.endswith("_paced") and st.get("dropped"):
            problems.append(f"memory/{mode}: {st['dropped']} dropped")
    if "latency" in res:
        lat = res["latency"]["ours"]
        if not lat or any(x == float("inf") for x in lat):
            problems.append(f"latency: probes not delivered: {lat}")
    return problems


def report(res: dict[str, Any], path: Path, *, smoke: bool) -> None:
    """Print every table of a run, then the ratios to the floors."""
    m = res["machine"]
    print(
        f"\n{m['date']} | {m['nproc']} x {m['cpu']} | Python {m['python']} | "
        f"load at start {m['loadavg']} | {res['elapsed_s']:.0f} s | {path}"
    )
    print("compiled modules: " + (", ".join(m.get("compiled", ())) or "none (pure Python)"))
    for name, mod in (
        ("emit", bench_emit),
        ("ship", bench_ship),
        ("aggregation", bench_aggregation),
    ):
        if name in res:
            print(f"\n== {name}")
            mod.print_table(res[name]["rows"])
    if "memory" in res:
        print("\n== memory")
        bench_memory.print_table(res["memory"])
    if "latency" in res:
        print("\n== latency")
        bench_latency.print_table(res["latency"])
    print("\n== ratios to the floors measured in this run")
    table = ratios_table(res)
    if smoke:  # tiny sizes: no verdicts
        table = [(a, b, c, d, "-" if e else "") for a, b, c, d, e in table]
    print_ratios(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, correctness only")
    ap.add_argument("--no-es", action="store_true", help="no real node")
    ap.add_argument("--no-peers", action="store_true", help="skip CMRESHandler / opensearch-logger")
    ap.add_argument("--keep-node", action="store_true", help="leave the bench-es9 node running")
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["emit", "ship", "aggregation", "memory", "steps", "latency"],
    )
    ap.add_argument("--json-dir", default=str(BENCH_DIR / ".results"))
    ap.add_argument(
        "--from-json", metavar="FILE", help="print the tables of a saved run; measure nothing"
    )
    args = ap.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        report(saved, Path(args.from_json), smoke=bool(saved.get("smoke")))
        return 0

    log = sys.stderr
    started = time.perf_counter()
    if args.smoke:
        # Correctness only: a short retry schedule so the server-down cases settle in
        # a second instead of the default ~15 s of backoff. Full runs use the defaults.
        opts = {"max_retries": 0, "retry_backoff_initial": 0.05, "flush_timeout": 3}
        opts.update(json.loads(os.environ.get("BENCH_HANDLER_OPTS") or "{}"))
        os.environ["BENCH_HANDLER_OPTS"] = json.dumps(opts)
    use_es = not (args.smoke or args.no_es)
    peers = not (args.smoke or args.no_peers)
    res: dict[str, Any] = {
        "machine": machine_info(),
        "smoke": args.smoke,
        "handler_opts": os.environ.get("BENCH_HANDLER_OPTS"),
    }
    es = find_es_url() if use_es else None
    if use_es and not es:
        print("no real Elasticsearch node: endpoint only", file=log)
    res["es_url"] = es
    try:
        if "emit" not in args.skip:
            if args.smoke:
                res["emit"] = bench_emit.run(
                    calls=300, rounds=2, warmup=100, reps=1, use_es=False, log=log
                )
            else:
                res["emit"] = bench_emit.run(
                    calls=10_000, rounds=5, warmup=3_000, reps=5, use_es=bool(es), log=log
                )
        if "ship" not in args.skip:
            if args.smoke:
                res["ship"] = bench_ship.run(
                    n=2_000,
                    n_es=0,
                    reps=1,
                    warmup=500,
                    peers=False,
                    use_es=False,
                    high_water=20_000,
                    log=log,
                )
            else:
                res["ship"] = bench_ship.run(
                    n=50_000,
                    n_es=30_000,
                    reps=5,
                    warmup=2_000,
                    peers=peers,
                    use_es=bool(es),
                    high_water=20_000,
                    log=log,
                )
        if "aggregation" not in args.skip:
            if args.smoke:
                res["aggregation"] = bench_aggregation.run(
                    n=2_000, reps=1, warmup=500, rounds=1, calls=500, log=log
                )
            else:
                res["aggregation"] = bench_aggregation.run(
                    n=50_000, reps=5, warmup=3_000, rounds=5, calls=10_000, log=log
                )
        if "memory" not in args.skip:
            if args.smoke:
                res["memory"] = bench_memory.run(3_000, list(bench_memory.MODES), None, log=log)
            else:
                res["memory"] = bench_memory.run(
                    1_000_000, ["down", "down_paced", "up_paced"], None, log=log
                )
        if "steps" not in args.skip:
            res["steps"] = bench_worker_steps.measure(*((2_000, 1) if args.smoke else (20_000, 5)))
        if "latency" not in args.skip:
            res["latency"] = bench_latency.run(2 if args.smoke else 15, bool(es), log=log)
    finally:
        if es and not args.keep_node:
            stop_es()
    res["elapsed_s"] = time.perf_counter() - started

    out_dir = Path(args.json_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{'smoke' if args.smoke else 'full'}-{stamp}.json"
    path.write_text(json.dumps(res, indent=1, default=str))

    report(res, path, smoke=args.smoke)

    if args.smoke:
        problems = smoke_checks(res)
        if problems:
            print("\nSMOKE FAILED:\n  " + "\n  ".join(problems))
            return 1
        print("\nsmoke: all benchmarks ran; figures at these sizes mean nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
