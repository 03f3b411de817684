"""Drive one peer handler on the shared workload and report its cost as JSON.

Runs inside the peer's own virtual environment (``benchmarks/.venvs/NAME``), so
it imports only the standard library, ``_common`` and the peer itself::

    benchmarks/.venvs/cmres/bin/python benchmarks/peer_driver.py \
        --variant cmres --url http://127.0.0.1:PORT --n 50000 --prefix bench-cmres-x

Variants:

* ``cmres``: ``cmreslogging.handlers.CMRESHandler`` 1.0.0 with the elasticsearch
  6.x client. It sends ``_type`` in every bulk action, which Elasticsearch 8+
  rejects, so it can only be measured against the local bulk endpoint.
* ``opensearch_logger``: ``opensearch_logger.OpenSearchHandler`` with opensearch-py.

Both are configured like ours (``buffer_size=1000``, flush every 1.0 s) and fed
the same ``logger.info(..., extra={"metric": ...})`` calls. Both flush on the
application thread when their buffer is full, and swallow indexing errors, so
delivery is verified on the server side.

Method: ``time.process_time()`` (all threads of this process) and
``time.perf_counter()`` around "emit N, then ``handler.flush()``", after a
warm-up of ``--warmup`` metrics that is flushed and not counted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_logger, delivered, emit_json, emit_metrics


def make_handler(variant: str, url: str, prefix: str) -> logging.Handler:
    parts = urllib.parse.urlsplit(url)
    if variant == "cmres":
        from cmreslogging.handlers import CMRESHandler

        handler: logging.Handler = CMRESHandler(
            hosts=[{"host": parts.hostname, "port": parts.port or 9200}],
            auth_type=CMRESHandler.AuthType.NO_AUTH,
            es_index_name=prefix,
            buffer_size=1000,
            flush_frequency_in_sec=1.0,
            raise_on_indexing_exceptions=False,
        )
        return handler
    if variant == "opensearch_logger":
        from opensearch_logger import OpenSearchHandler

        handler = OpenSearchHandler(
            index_name=prefix,
            hosts=[url],
            buffer_size=1000,
            flush_frequency=1.0,
            raise_on_index_exc=False,
            use_ssl=parts.scheme == "https",
            timeout=30,
        )
        return handler
    raise SystemExit(f"unknown variant {variant!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="drive one peer handler")
    ap.add_argument("--variant", required=True, choices=["cmres", "opensearch_logger"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--prefix", required=True)
    args = ap.parse_args(argv)

    handler = make_handler(args.variant, args.url, args.prefix)
    logger = bench_logger(f"bench.peer.{args.variant}", handler)

    emit_metrics(logger, args.warmup)
    handler.flush()
    before = delivered(args.url, args.prefix)

    c0 = time.process_time()
    w0 = time.perf_counter()
    emit_metrics(logger, args.n, args.warmup)
    handler.flush()
    w1 = time.perf_counter()
    c1 = time.process_time()

    after = delivered(args.url, args.prefix)
    handler.close()
    emit_json(
        {
            "variant": args.variant,
            "n": args.n,
            "cpu_s": c1 - c0,
            "wall_s": w1 - w0,
            "cpu_us_per_metric": (c1 - c0) / args.n * 1e6,
            "rate": args.n / (w1 - w0),
            "delivered": after - before,
            "python": sys.version.split()[0],
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
