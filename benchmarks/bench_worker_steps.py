"""Per-document cost of each step the handler's batcher runs, one thread, no server.

The steps of ``build_batch`` (the batcher's work) for the benchmark workload's records, each
timed on its own over the same 20,000 captured records: ``time.perf_counter_ns`` around a
loop over all of them, best of ``--repeat`` loops, divided by the number of records.
Results are discarded as the worker discards them (nothing kept alive, so the garbage
collector does the worker's work, no more):

* ``normalize``: ``normalize_metric_fields(payload)``;
* ``build``: ``DocumentBuilder.build(record, message, payload)`` (includes ``normalize``);
* ``timestamp``: ``format_timestamp(record.created)``;
* ``index``: ``IndexNamer(record.created)``;
* ``dumps``: ``_serialize.dumps(doc)`` of the built documents;
* ``bulk_pair``: ``_serialize.bulk_pair(index, doc_id, source)``;
* ``build_batch, reference builder only``: ``_batching.build_batch`` on batches of 1,000 with
  the builder and ``bulk_pair`` for every record (the path for subclassed builders);
* ``BulkEncoder.encode``: the fast path, entry to bulk pair in bytes;
* ``batcher``: all of it through ``_batching.build_batch`` on batches of 1,000 with the encoder,
  as the worker runs it (what the batcher thread does per record, without waking up or
  handing over);
* ``join``: ``b"".join(items)`` of a batch, the body the sender POSTs;
* ``emit``: ``logger.info(...)`` through the handler (the worker never started: the calls
  only append) and ``null``: the same call on a ``NullHandler``.

Use it to measure a change to the document, serialisation or capture code in isolation;
the end-to-end figures come from ``bench_ship.py``. Runs in a few seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MESSAGE, METRIC_NAME, bench_logger, emit_metrics


def each(fn: Any, items: list[Any]) -> None:
    """Call ``fn`` on every item, keeping no result alive (so the GC sees what the worker sees)."""
    for item in items:
        fn(item)


def per_item_ns(fn: Any, items: list[Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(items)
        best = min(best, time.perf_counter_ns() - t0)
    return best / len(items)


def measure(n: int = 20_000, repeat: int = 5) -> dict[str, float]:
    """Nanoseconds per record of each step (the names the table prints), in this process."""
    args = argparse.Namespace(n=n, repeat=repeat)
    from ecs_metrics_handler import ElasticECSHandler
    from ecs_metrics_handler._batching import build_batch
    from ecs_metrics_handler._document import format_timestamp
    from ecs_metrics_handler._encoder import BulkEncoder
    from ecs_metrics_handler._metric import normalize_metric_fields
    from ecs_metrics_handler._serialize import bulk_pair, dumps

    # Capture records exactly as the handler does, without starting its worker.
    handler = ElasticECSHandler(
        hosts=["http://127.0.0.1:9"], es_index_name="bench-steps", max_queue_records=10**7
    )
    handler._worker.start = lambda: None  # type: ignore[method-assign]  # capture only
    handler._worker._started = True
    logger = bench_logger("bench.steps", handler)
    results: dict[str, float] = {}
    queue = handler.buffer

    def emit(items: list[int]) -> None:
        queue.clear()
        emit_metrics(logger, len(items))

    results["emit (handler, append only)"] = per_item_ns(emit, list(range(args.n)), args.repeat)
    entries = list(queue)[: args.n]
    null_logger = bench_logger("bench.steps.null", logging.NullHandler())
    results["emit (NullHandler)"] = per_item_ns(
        lambda items: emit_metrics(null_logger, len(items)), list(range(args.n)), args.repeat
    )

    builder = handler.make_document_builder()
    namer = handler._worker._batcher._namer
    payloads = [e.payload for e in entries]
    records = entries  # an entry is read like a record

    results["normalize_metric_fields"] = per_item_ns(
        lambda ps: each(normalize_metric_fields, ps), payloads, args.repeat
    )
    results["DocumentBuilder.build"] = per_item_ns(
        lambda es: each(lambda e: builder.build(e, e.message, e.payload), es), entries, args.repeat
    )
    results["format_timestamp"] = per_item_ns(
        lambda rs: each(lambda r: format_timestamp(r.created), rs), records, args.repeat
    )
    results["IndexNamer"] = per_item_ns(
        lambda rs: each(lambda r: namer(r.created), rs), records, args.repeat
    )
    docs = [builder.build(e, e.message, e.payload) for e in entries]
    results["dumps"] = per_item_ns(lambda ds: each(dumps, ds), docs, args.repeat)
    sources = [dumps(d) for d in docs]
    index = namer(records[0].created)
    results["bulk_pair"] = per_item_ns(
        lambda ss: each(lambda s: bulk_pair(index, "abcdefghijkl4e20", s), ss),
        sources,
        args.repeat,
    )
    batches = [entries[i : i + 1000] for i in range(0, len(entries), 1000)]

    encode = BulkEncoder(builder, namer, "abcdefghijkl").encode

    def build_all(bs: list[Any]) -> None:
        for b in bs:
            build_batch(b, builder.build_source, namer, "abcdefghijkl", encode)

    def build_all_reference(bs: list[Any]) -> None:
        for b in bs:
            build_batch(b, builder.build_source, namer, "abcdefghijkl")

    results["build_batch, reference builder only"] = (
        per_item_ns(build_all_reference, batches, args.repeat) / 1000
    )
    results["BulkEncoder.encode"] = per_item_ns(lambda es: each(encode, es), entries, args.repeat)
    results["build_batch (whole batcher step)"] = (
        per_item_ns(build_all, batches, args.repeat) / 1000
    )
    items, _ = build_batch(batches[0], builder.build_source, namer, "abcdefghijkl", encode)
    assert items is not None
    results["b''.join(batch) (sender body)"] = (
        per_item_ns(lambda bs: [b"".join(items.items) for _ in bs], [0] * 20, args.repeat) / 1000
    )
    handler._worker._started = False
    handler.buffer.clear()
    handler.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    results = measure(args.n, args.repeat)
    print(f"per record, best of {args.repeat} loops over {args.n} records "
          f"({MESSAGE!r}, {METRIC_NAME!r}):")  # fmt: skip
    for name, ns in results.items():
        print(f"  {name:38} {ns / 1000:7.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
