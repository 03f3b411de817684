"""Where ``ElasticECSHandler`` spends its CPU: a sampling profile per thread.

Runs the ``bench_ship`` workload (``--n`` metrics into the local bulk endpoint,
paced like ``bench_ship``) under ``py-spy`` (``pip install py-spy``), then prints,
for each thread (the application's ``MainThread``, the handler's
``ecs-metrics-batcher`` and ``ecs-metrics-sender``), the functions with the most
samples: self time (the function itself) and inclusive time (with its callees).
Only samples of a thread holding the GIL are counted (``py-spy --gil``): Python
CPU, not time blocked on a socket or a condition.

    python benchmarks/profile_ours.py --n 100000 [--rate 250] [--top 25]

``--in-process`` runs the workload without py-spy, which ``profile_ours.py``
itself uses as the profiled child. ``--cprofile FILE`` writes a deterministic
``cProfile`` of the application thread's emit loop only (no server involved).
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_logger, bulk_endpoint, emit_metrics


def workload(url: str, n: int) -> None:
    """The measured part of ``bench_ship``'s ``ours``; waits for a line on stdin after warm-up.

    The pause lets the parent attach py-spy to the warmed-up process, so imports, client
    creation and the first requests stay out of the profile.
    """
    from bench_ship import make_ours, paced_emit, thread_cpu, wait_shipped

    handler = make_ours(url, "bench-profile")
    logger = bench_logger("bench.profile", handler)
    emit_metrics(logger, 2_000)
    wait_shipped(handler, 2_000, 60)
    print(f"READY {os.getpid()}", flush=True)
    sys.stdin.readline()
    t0 = thread_cpu()
    c0 = time.process_time()
    paced_emit(logger, handler, n, 2_000, 20_000)
    stats = wait_shipped(handler, 2_000 + n, 300)
    c1 = time.process_time()
    t1 = thread_cpu()
    handler.close()
    split = {k: round((v - t0.get(k, 0.0)) / n * 1e6, 2) for k, v in t1.items()}
    print(
        f"profiled workload: {n} metrics, {(c1 - c0) / n * 1e6:.2f} us CPU per metric "
        f"(by thread: {split}), shipped {stats.get('shipped')}, dropped {stats.get('dropped')}",
        file=sys.stderr,
    )


def cprofile_emit(path: str, n: int) -> None:
    import cProfile
    import pstats

    from bench_ship import make_ours

    with bulk_endpoint() as url:
        handler = make_ours(url, "bench-profile")
        logger = bench_logger("bench.profile", handler)
        emit_metrics(logger, 2_000)
        handler.flush(timeout=60)
        prof = cProfile.Profile()
        prof.enable()
        emit_metrics(logger, n)
        prof.disable()
        handler.close()
    prof.dump_stats(path)
    pstats.Stats(path).sort_stats("tottime").print_stats(15)


FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:]*):?(?P<line>\d*)\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    file = m["file"]
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m['func']} ({file})"


def summarise(raw: Path, top: int) -> None:
    """Per thread: sample share per function, self and inclusive (py-spy ``--format raw``)."""
    threads: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        thread = frames[0]
        m = re.search(r'"([^"]+)"', thread)
        name = m.group(1) if m else thread
        count = int(count_s)
        funcs = [short(f) for f in frames[1:]]
        if not funcs:
            continue
        totals[name] += count
        threads[name][funcs[-1]] += count
        for f in set(funcs):
            inclusive[name][f] += count
    grand = sum(totals.values())
    for name, total in totals.most_common():
        print(f"\n=== thread {name}: {total} samples ({total / grand:.0%} of all on-CPU samples)")
        print("  self%  incl%  function")
        shown = set()
        for func, c in threads[name].most_common(top):
            shown.add(func)
            print(f"  {c / total:5.1%} {inclusive[name][func] / total:6.1%}  {func}")
        print("  -- inclusive, top:")
        for func, c in inclusive[name].most_common(top):
            if func not in shown:
                print(f"  {threads[name][func] / total:5.1%} {c / total:6.1%}  {func}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--in-process", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--cprofile", metavar="FILE", help="cProfile the emit loop into FILE")
    ap.add_argument("--keep", help="keep py-spy's raw output here")
    ap.add_argument(
        "--all-samples",
        action="store_true",
        help="count every on-CPU sample, not only those holding the GIL",
    )
    args = ap.parse_args(argv)
    logging.raiseExceptions = True
    if args.in_process:
        workload(args.in_process, args.n)
        return 0
    if args.cprofile:
        cprofile_emit(args.cprofile, args.n)
        return 0
    pyspy = shutil.which("py-spy")
    if not pyspy:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp()) / "profile.txt"
    with bulk_endpoint() as url:
        child = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--in-process",
                url,
                "--n",
                str(args.n),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        line = child.stdout.readline()
        if not line.startswith("READY"):
            child.kill()
            raise SystemExit(f"workload did not start: {line!r}")
        cmd = [pyspy, "record", "--threads", "--format", "raw", "--rate", str(args.rate),
               *([] if args.all_samples else ["--gil"]),
               "--output", str(out), "--pid", str(child.pid)]  # fmt: skip
        spy = subprocess.Popen(cmd)
        time.sleep(1.0)  # let py-spy attach
        child.stdin.write("go\n")
        child.stdin.flush()
        child.wait(timeout=600)
        spy.wait(timeout=60)
    summarise(out, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
