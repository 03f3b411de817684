"""Resident memory while a million metrics are emitted: server down (spooling) and up.

Each mode runs in a fresh child process, which reads its own resident set size
(``psutil.Process().memory_info().rss``, or ``/proc/self/statm``) after 0, 100k, 250k, 500k and 1M
emitted metrics, and its peak (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) at
the end, after ``flush()``.

Modes (all with ``flush_failure_folder`` set to a fresh temporary folder,
``buffer_size=1000``, ``flush_frequency_in_sec=1.0``, other options at defaults):

* ``down``: the server is down (a closed port) and the application emits as fast
  as it can. The handler's in-memory queue is bounded (``max_queue_records``):
  a logging call that finds it full waits (up to 1 s with a failure folder) for room;
  what still finds no room is dropped and counted.
* ``down_paced``: the server is down, and the application pauses (sleeps) while
  more than 20,000 metrics are pending, so every metric reaches the failure folder.
* ``up_paced``: the local bulk endpoint acknowledges everything; paced the same way.

Flat means: the RSS at 1M is within a few MiB of the RSS at 100k, whatever the
number of metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    bench_logger,
    bulk_endpoint,
    closed_port,
    emit_json,
    emit_metrics,
    handler_options,
    machine_info,
    run_json_child,
    unique_prefix,
)

MODES = ("down", "down_paced", "up_paced")
MiB = 2**20


def folder_bytes(folder: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total


def rss_bytes() -> int:
    """This process's resident set size: psutil when installed, else ``/proc/self/statm``."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


def pending(stats: dict[str, Any]) -> int:
    if "pending" in stats:
        return int(stats["pending"])
    done = sum(
        int(stats.get(k, 0)) for k in ("shipped", "spooled", "dead_lettered", "invalid", "dropped")
    )
    return int(stats.get("emitted", 0)) - done


def child_main(args: argparse.Namespace) -> int:
    from ecs_metrics_handler import ElasticECSHandler

    mode = args.child
    folder = tempfile.mkdtemp(prefix="bench-mem-spool-", dir=args.tmp)
    url = args.url if mode.startswith("up") else f"http://127.0.0.1:{closed_port()}"
    handler = ElasticECSHandler(
        **handler_options(
            hosts=[url],
            es_index_name=unique_prefix("mem"),
            buffer_size=1000,
            flush_frequency_in_sec=1.0,
            flush_failure_folder=folder,
        )
    )
    logger = bench_logger(f"bench.mem.{mode}", handler)
    paced = mode.endswith("_paced")
    checkpoints = sorted({0, *(c for c in (100_000, 250_000, 500_000) if c < args.n), args.n})
    samples = []
    t0 = time.perf_counter()

    def sample(done: int) -> None:
        st = handler.stats()
        samples.append(
            {
                "emitted": done,
                "rss_mib": rss_bytes() / MiB,
                "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "pending": pending(st),
                "spooled": st.get("spooled", 0),
                "shipped": st.get("shipped", 0),
                "dropped": st.get("dropped", 0),
                "t_s": time.perf_counter() - t0,
            }
        )

    done = 0
    sample(0)
    for target in checkpoints[1:]:
        while done < target:
            k = min(1000, target - done)
            emit_metrics(logger, k, done)
            done += k
            if paced and pending(handler.stats()) > 20_000:
                while pending(handler.stats()) > 10_000:
                    time.sleep(0.005)
        sample(done)
    t_emit = time.perf_counter() - t0
    handler.flush(timeout=600)
    t_flush = time.perf_counter() - t0 - t_emit
    stats = dict(handler.stats())
    rss_end = rss_bytes() / MiB
    handler.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    spool = folder_bytes(folder)
    shutil.rmtree(folder, ignore_errors=True)
    emit_json(
        {
            "mode": mode,
            "n": args.n,
            "samples": samples,
            "rss_after_flush_mib": rss_end,
            "peak_rss_mib": peak,
            "spool_bytes": spool,
            "emit_s": t_emit,
            "flush_s": t_flush,
            "stats": stats,
        }
    )
    return 0


def run(n: int, modes: list[str], tmp: str | None, log: Any = sys.stderr) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine_info(), "n": n, "modes": {}}
    with bulk_endpoint() as ep:
        for mode in modes:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                mode,
                "--n",
                str(n),
                "--url",
                ep,
            ]
            if tmp:
                cmd += ["--tmp", tmp]
            t = time.perf_counter()
            res = run_json_child(cmd, timeout=3600)
            out["modes"][mode] = res
            print(
                f"[memory] {mode}: peak {res['peak_rss_mib']:.1f} MiB "
                f"({time.perf_counter() - t:.1f}s)",
                file=log,
                flush=True,
            )
    return out


def flatness(res: dict[str, Any]) -> float:
    """RSS growth over the second half of the run (checkpoint at n/2 to n), in MiB.

    A handler whose memory is bounded reaches its bound early (the queue fills within the
    first 100k-250k metrics when the application emits flat out) and stays there: the second
    half shows whether the RSS still grows with the number of metrics.
    """
    s = res["samples"]
    half = [x for x in s if x["emitted"] >= res["n"] // 2]
    return half[-1]["rss_mib"] - half[0]["rss_mib"] if len(half) >= 2 else float("nan")


def print_table(out: dict[str, Any], file: Any = sys.stdout) -> None:
    for mode, res in out["modes"].items():
        st = res["stats"]
        print(
            f"{mode}: peak RSS {res['peak_rss_mib']:.1f} MiB, growth over the second half "
            f"{flatness(res):+.1f} MiB; shipped {st.get('shipped', 0)}, spooled "
            f"{st.get('spooled', 0)}, dropped {st.get('dropped', 0)} "
            f"{st.get('dropped_reasons') or ''}; spool {res['spool_bytes'] / MiB:.0f} MiB; "
            f"emit {res['emit_s']:.1f}s, flush {res['flush_s']:.1f}s",
            file=file,
        )
        print("   emitted   RSS MiB  peak MiB  pending   dropped", file=file)
        for s in res["samples"]:
            print(
                f"  {s['emitted']:8d} {s['rss_mib']:9.1f} {s['maxrss_mib']:9.1f} {s['pending']:8d} "
                f"{s['dropped']:9d}",
                file=file,
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES))
    ap.add_argument("--tmp", help="where the failure folders go (default: the system temp dir)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    out = run(args.n, args.modes, args.tmp)
    print_table(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
