"""Delivery guarantees against real nodes that fail: every count here is exact.

Each test asserts that every emitted metric is in the cluster exactly once (or, where the test
says so, in the failure folder), using document counts and the handler's own counters.
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecs_metrics_handler import ElasticECSHandler, metric, replay
from ecs_metrics_handler._spool import read_items

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def breakable_es(node_factory: Any) -> Iterator[Any]:
    """A node of this module's own, to kill, freeze and restart."""
    node = node_factory.start()
    yield node
    node.close()


def _count(client: Any, pattern: str) -> int:
    client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    return int(client.count(index=pattern, ignore_unavailable=True, allow_no_indices=True)["count"])


def _client(url: str | list[str]) -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(url, request_timeout=60, max_retries=5, retry_on_timeout=True)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{_worker_stacks()}")


def _worker_stacks() -> str:
    """Where the handler's threads are, for a failure message."""
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        if names.get(ident, "").startswith("ecs-metrics"):
            out.append(f"--- {names[ident]}\n" + "".join(traceback.format_stack(frame)[-8:]))
    return "\n".join(out)


def _wait_delivered(handler: ElasticECSHandler, folder: Path | None, timeout: float = 120) -> None:
    """Until nothing is pending and every spooled document was replayed."""

    def settled() -> bool:
        stats = handler.stats()
        segments = list(folder.glob("segment-*")) if folder else []
        return stats["pending"] == 0 and not segments and stats["replayed"] == stats["spooled"]

    handler.flush(5)
    _wait_for(settled, timeout, f"delivery to settle: {handler.stats()}")


def _accounted(stats: dict[str, Any]) -> int:
    return int(
        stats["shipped"]
        + stats["spooled"]
        + stats["dead_lettered"]
        + stats["invalid"]
        + stats["dropped"]
    )


def test_16_threads_of_5000_metrics_arrive_exactly_once(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger
) -> None:
    """80,000 metrics from 16 threads: exactly 80,000 documents, so none lost and none twice."""
    # The whole burst fits in the queue (no failure folder: a full queue would drop by policy).
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=unique_name,
        buffer_size=2000,
        max_queue_records=100_000,
    )
    logger.addHandler(handler)

    def work(t: int) -> None:
        for i in range(5000):
            logger.info("m", extra=metric("load", i, labels={"thread": t}))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.flush(120)
    stats = handler.stats()
    assert stats["emitted"] == 80_000
    # A bulk that timed out on a loaded node may have landed: its retry answers 409 for those
    # documents, which counts them as shipped once (and in "duplicates"), never indexes twice.
    assert stats["shipped"] == 80_000, stats
    assert _count(es_client, f"{unique_name}-*") == 80_000


def _stream(
    logger: logging.Logger, n: int, per_second: int, timings: list[tuple[float, float]], label: str
) -> threading.Thread:
    """Log ``n`` metrics at about ``per_second``, recording (start time, duration) per call."""

    def run() -> None:
        pause = 1.0 / per_second
        for i in range(n):
            start = time.perf_counter()
            logger.info("m", extra=metric("stream", i, labels={"run": label}))
            timings.append((start, time.perf_counter() - start))
            time.sleep(pause)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_node_killed_and_restarted_on_its_data_loses_nothing(
    breakable_es: Any, unique_name: str, logger: logging.Logger, tmp_path: Path
) -> None:
    """SIGKILL mid-stream, restart ten seconds later: exact count, and logging never waited."""
    handler = ElasticECSHandler(
        hosts=[breakable_es.url],
        es_index_name=unique_name,
        flush_failure_folder=str(tmp_path),
        flush_frequency_in_sec=0.2,
        request_timeout=5,
        retry_backoff_max=2,
    )
    logger.addHandler(handler)
    timings: list[tuple[float, float]] = []
    stream = _stream(logger, 6000, 300, timings, "kill")  # about 20 s
    time.sleep(3)
    breakable_es.kill()
    outage_start = time.perf_counter()
    time.sleep(10)
    outage_end = time.perf_counter()
    breakable_es.restart()
    stream.join()
    _wait_delivered(handler, tmp_path)
    stats = handler.stats()
    client = _client(breakable_es.url)
    try:
        assert _count(client, f"{unique_name}-*") == 6000
    finally:
        client.close()
    assert stats["emitted"] == 6000 == _accounted(stats), stats
    assert stats["spooled"] > 0  # the outage really happened while we were logging
    during = [d for s, d in timings if outage_start <= s <= outage_end]
    assert during, "no call was made during the outage"
    ordered = sorted(during)
    worst_ms = ordered[-1] * 1000
    p99_ms = ordered[int(len(ordered) * 0.99)] * 1000
    print(
        f"\nlogger.info during the outage: p99 {p99_ms:.2f} ms, "
        f"longest {worst_ms:.2f} ms over {len(during)} calls"
    )
    # A call never waits on the network: one that did would take the request timeout (5 s).
    # The bound is a tenth of that, not the usual worst case (1-6 ms here): on this 2-core
    # machine the nodes of later tests boot in the background, and a CPU-starved process
    # once showed a 124 ms call with no network wait in it.
    assert worst_ms < 500


def test_node_frozen_then_resumed_times_out_spools_and_replays(
    breakable_es: Any, unique_name: str, logger: logging.Logger, tmp_path: Path
) -> None:
    """SIGSTOP mid-stream: requests time out, documents spool; after SIGCONT they are replayed."""
    handler = ElasticECSHandler(
        hosts=[breakable_es.url],
        es_index_name=unique_name,
        flush_failure_folder=str(tmp_path),
        flush_frequency_in_sec=0.2,
        # Short enough to time out during the freeze, long enough for a node catching up
        # afterwards (the node still executes every request the client gave up on).
        request_timeout=5,
        max_retries=1,
        retry_backoff_max=1,
    )
    logger.addHandler(handler)
    timings: list[tuple[float, float]] = []
    stream = _stream(logger, 6000, 300, timings, "freeze")  # about 20 s
    time.sleep(2)
    breakable_es.freeze()
    try:
        time.sleep(12)
    finally:
        breakable_es.thaw()
    stream.join()
    _wait_delivered(handler, tmp_path)
    stats = handler.stats()
    assert stats["spooled"] > 0, stats
    assert stats["emitted"] == 6000 == _accounted(stats)
    client = _client(breakable_es.url)
    try:
        assert _count(client, f"{unique_name}-*") == 6000
    finally:
        client.close()


def test_real_429s_from_a_tiny_write_queue_are_retried_to_an_exact_count(
    tiny_queue_es: Any, unique_name: str
) -> None:
    """Four handlers hammering a node whose write queue holds one request: 429s, retried, exact."""
    handlers = [
        ElasticECSHandler(
            hosts=[tiny_queue_es.url],
            es_index_name=unique_name,
            buffer_size=200,
            flush_frequency_in_sec=0.05,
            max_retries=30,
            retry_backoff_initial=0.05,
            retry_backoff_max=1.0,
        )
        for _ in range(4)
    ]
    loggers = []
    for n, handler in enumerate(handlers):
        log = logging.getLogger(f"{unique_name}.{n}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        loggers.append(log)

    def work(log: logging.Logger) -> None:
        for i in range(5000):
            log.info("m", extra=metric("busy", i))

    threads = [threading.Thread(target=work, args=(log,)) for log in loggers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        for handler in handlers:
            assert handler.flush(180), handler.stats()
        retried = sum(h.stats()["retried"] for h in handlers)
        shipped = sum(h.stats()["shipped"] for h in handlers)
    finally:
        for log, handler in zip(loggers, handlers, strict=True):
            log.removeHandler(handler)
            handler.close()
    assert retried > 0, "the tiny queue never pushed back"
    assert shipped == 20_000
    client = _client(tiny_queue_es.url)
    try:
        assert _count(client, f"{unique_name}-*") == 20_000
    finally:
        client.close()


def test_batches_over_the_nodes_request_limit_are_split_by_the_replay_and_all_arrive(
    tiny_queue_es: Any, unique_name: str, tmp_path: Path
) -> None:
    """30 metrics with 100 kB messages against a node limited to 1 MiB per request: the live
    batch is refused (413) without stopping delivery, goes to the failure folder, and the
    replay splits it until every document is indexed, each once."""
    logger = logging.getLogger(f"big.{unique_name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = ElasticECSHandler(
        hosts=[tiny_queue_es.url],
        es_index_name=unique_name,
        flush_failure_folder=str(tmp_path),
        flush_frequency_in_sec=0.1,
    )
    logger.addHandler(handler)
    try:
        for i in range(30):
            logger.info("x" * 100_000, extra=metric("big", i))
        assert handler.flush(30)
        deadline = time.monotonic() + 60
        while handler.stats()["replayed"] < 30 and time.monotonic() < deadline:
            handler.flush(1)
        stats = handler.stats()
        logger.info("after", extra=metric("small", 1))  # live delivery still flows
        assert handler.flush(30)
        shipped = handler.stats()["shipped"]
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (stats["spooled"], stats["replayed"], stats["dropped"]) == (30, 30, 0), stats
    assert shipped == 1
    assert not list(tmp_path.glob("quarantined-*")) and not list(tmp_path.glob("segment-*"))
    client = _client(tiny_queue_es.url)
    try:
        assert _count(client, f"{unique_name}-*") == 31
    finally:
        client.close()


def test_a_mapping_conflict_dead_letters_one_document_and_indexes_the_rest(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger, tmp_path: Path
) -> None:
    """One document whose field the index maps as a number: dead-lettered with the reason."""
    index = f"{unique_name}-conflict"
    es_client.indices.create(index=index, mappings={"properties": {"message": {"type": "long"}}})
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=index,
        index_name_frequency="never",
        flush_failure_folder=str(tmp_path),
        flush_frequency_in_sec=60,
    )
    logger.addHandler(handler)
    for message in ("1", "2", "not a number", "4", "5"):
        logger.info(message, extra=metric("conflict", 1))
    assert handler.flush(30)
    stats = handler.stats()
    assert (stats["shipped"], stats["dead_lettered"], stats["spooled"]) == (4, 1, 0)
    assert _count(es_client, index) == 4
    (dead,) = tmp_path.glob("dead-letter-*.ndjson")
    import orjson

    (entry,) = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert entry["status"] == 400
    assert entry["document"]["message"] == "not a number"
    assert "message" in entry["error"]["reason"]
    assert entry["index"] == index


_CHILD = textwrap.dedent(
    """
    import logging, sys
    from ecs_metrics_handler import ElasticECSHandler, metric
    handler = ElasticECSHandler(
        hosts=["http://127.0.0.1:9"], es_index_name=sys.argv[1], flush_failure_folder=sys.argv[2],
        flush_timeout=3.0,
    )
    log = logging.getLogger("child")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    for i in range(10_000):
        log.info("m", extra=metric("child", i))
    # no flush, no close: logging.shutdown at exit must keep every metric
    """
)


def test_child_exits_within_the_bound_with_every_metric_spooled_then_replayed_once(
    es_server: Any, es_client: Any, unique_name: str, tmp_path: Path
) -> None:
    """10,000 metrics, node down, normal exit: bounded exit, all spooled, replayed exactly once."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, unique_name, str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr.decode()
    # flush_timeout (3 s) + one second of grace, plus the interpreter's start-up.
    print(f"\nchild exit took {elapsed:.2f} s")
    assert elapsed < 3.0 + 1.0 + 4.0
    spooled = sum(len(read_items(p)) for p in tmp_path.glob("segment-*.ndjson"))
    assert spooled == 10_000
    first = replay(tmp_path, hosts=[es_server.url], es_index_name=unique_name)
    assert (first.indexed, first.duplicates, first.left) == (10_000, 0, 0)
    second = replay(tmp_path, hosts=[es_server.url], es_index_name=unique_name)
    assert second.indexed == 0 and second.segments == 0
    assert _count(es_client, f"{unique_name}-*") == 10_000


def test_three_nodes_one_killed_mid_stream_loses_nothing(
    node_factory: Any, unique_name: str, logger: logging.Logger, tmp_path: Path
) -> None:
    """The handler knows all three hosts; killing one mid-stream costs no document."""
    with node_factory.start(nodes=3) as cluster:
        admin = _client(cluster.urls)
        try:
            admin.indices.put_index_template(
                name=f"{unique_name}-replicas",
                index_patterns=[f"{unique_name}-*"],
                template={"settings": {"number_of_shards": 3, "number_of_replicas": 1}},
            )
        finally:
            admin.close()
        handler = ElasticECSHandler(
            hosts=cluster.urls,
            es_index_name=unique_name,
            flush_failure_folder=str(tmp_path),
            flush_frequency_in_sec=0.2,
            request_timeout=30,  # creating a 3-shard index on a loaded machine takes a while
            retry_backoff_max=2,
        )
        logger.addHandler(handler)
        timings: list[tuple[float, float]] = []
        stream = _stream(logger, 8000, 400, timings, "three")  # about 20 s
        # Kill only once every replica is allocated: a primary without a started copy would be
        # lost with its node, and that is Elasticsearch's business, not the handler's.
        admin = _client(cluster.urls)
        try:
            _wait_for(lambda: bool(admin.indices.exists(index=f"{unique_name}-*")), 60, "the index")
            admin.cluster.health(index=f"{unique_name}-*", wait_for_status="green", timeout="90s")
        finally:
            admin.close()
        assert stream.is_alive(), "the stream ended before the node could be killed"
        cluster.kill(2)
        stream.join()
        _wait_delivered(handler, tmp_path, timeout=180)
        stats = handler.stats()
        assert stats["emitted"] == 8000 == _accounted(stats), stats
        survivor = _client(cluster.urls[:2])
        try:
            assert _count(survivor, f"{unique_name}-*") == 8000
        finally:
            survivor.close()


def _fork_child(url: str, prefix: str, n: int) -> None:
    log = logging.getLogger("forked.parent")
    for i in range(n):
        log.info("m", extra=metric("forked", i, labels={"pid": os.getpid()}))
    # multiprocessing's child exits through os._exit(): the handler's finalizer flushes


def test_parent_and_forked_children_deliver_the_exact_total(
    es_server: Any, es_client: Any, unique_name: str
) -> None:
    """A parent logs, then forks 4 children that log 1,000 each: exactly parent + 4,000."""
    handler = ElasticECSHandler(
        hosts=[es_server.url], es_index_name=unique_name, flush_frequency_in_sec=0.5
    )
    log = logging.getLogger("forked.parent")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    try:
        for i in range(500):
            log.info("m", extra=metric("parent", i))
        # some of the parent's records are still buffered when the children are forked
        ctx = multiprocessing.get_context("fork")
        children = [
            ctx.Process(target=_fork_child, args=(es_server.url, unique_name, 1000))
            for _ in range(4)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
            assert child.exitcode == 0
        assert handler.flush(60)
        assert handler.stats()["shipped"] == 500
    finally:
        log.removeHandler(handler)
        handler.close()
    assert _count(es_client, f"{unique_name}-*") == 4500


def test_dictconfig_rerun_and_shutdown_return_in_bounds_while_the_node_is_frozen(
    breakable_es: Any, unique_name: str, tmp_path: Path
) -> None:
    """Reconfiguring and shutting logging down never deadlock on a hung cluster."""
    name = f"frozen.{unique_name}"

    def configure() -> None:
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "es": {
                        "class": "ecs_metrics_handler.ElasticECSHandler",
                        "hosts": [breakable_es.url],
                        "es_index_name": unique_name,
                        "flush_failure_folder": str(tmp_path),
                        "request_timeout": 30,
                        "flush_timeout": 2,
                        "flush_frequency_in_sec": 0.1,
                    }
                },
                "loggers": {name: {"handlers": ["es"], "level": "INFO", "propagate": False}},
            }
        )

    configure()
    log = logging.getLogger(name)
    log.info("warm", extra=metric("frozen", -1))
    first = log.handlers[0]
    assert isinstance(first, ElasticECSHandler)
    assert first.flush(30)
    breakable_es.freeze()
    try:
        for i in range(200):
            log.info("m", extra=metric("frozen", i))
        time.sleep(0.5)  # the sender is now inside a request that cannot be answered
        start = time.monotonic()
        configure()
        reconfigure_took = time.monotonic() - start
        second = log.handlers[0]
        assert isinstance(second, ElasticECSHandler)
        for i in range(200, 300):
            log.info("m", extra=metric("frozen", i))
        start = time.monotonic()
        logging.shutdown([weakref_to(second)])
        shutdown_took = time.monotonic() - start
    finally:
        breakable_es.thaw()
    print(
        f"\ndictConfig re-run took {reconfigure_took:.2f} s, logging.shutdown {shutdown_took:.2f} s"
    )
    assert reconfigure_took < 2.0 + 1.5
    assert shutdown_took < 2.0 + 1.5
    log.removeHandler(second)
    emitted = first.stats()["emitted"] + second.stats()["emitted"]
    assert emitted == 301
    result = replay(tmp_path, hosts=[breakable_es.url], es_index_name=unique_name)
    assert result.left == 0
    client = _client(breakable_es.url)
    try:
        assert _count(client, f"{unique_name}-*") == 301
    finally:
        client.close()


def weakref_to(handler: logging.Handler) -> Any:
    import weakref

    return weakref.ref(handler)


def test_memory_stays_flat_through_a_long_outage(tmp_path: Path) -> None:
    """500,000 metrics into a dead port with a failure folder, logged flat out: memory is
    bounded by the queue, not by the count (RSS grows less than 48 MiB between 250,000 and
    500,000, where one document kept per metric would add about 100 MiB), and every metric is
    spooled or counted under the documented policy: a full queue makes the logging call wait
    for the worker, at most 1 s with a failure folder, and only then drops (a disk that stalls
    the spooler for longer on a busy machine). The drop count is printed; more than 1 % would
    mean the worker waits on the disk, which it must not (the full million is measured by
    benchmarks/bench_memory.py)."""
    code = textwrap.dedent(
        """
        import logging, sys, psutil
        from ecs_metrics_handler import ElasticECSHandler, metric
        h = ElasticECSHandler(hosts=["http://127.0.0.1:9"], es_index_name="mem",
                              flush_failure_folder=sys.argv[1], max_retries=0, flush_timeout=60)
        log = logging.getLogger("mem"); log.setLevel(logging.INFO); log.addHandler(h)
        proc = psutil.Process()
        marks = {}
        for i in range(1, 500_001):
            log.info("m", extra=metric("mem", i, labels={"k": "v"}))
            if i % 250_000 == 0:
                marks[i] = proc.memory_info().rss
        h.flush(120)
        s = h.stats()
        reasons = ",".join(sorted(s["dropped_reasons"])).replace(" ", "_") or "-"
        print(marks[250_000], marks[500_000], s["spooled"], s["dropped"], s["pending"], reasons)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    *numbers, reasons = proc.stdout.decode().split()
    at_250k, at_500k, spooled, dropped, pending = (int(x) for x in numbers)
    growth_mib = (at_500k - at_250k) / 2**20
    print(
        f"\nRSS at 250k: {at_250k / 2**20:.0f} MiB, "
        f"at 500k: {at_500k / 2**20:.0f} MiB (+{growth_mib:.1f}); dropped {dropped} ({reasons})"
    )
    assert spooled + dropped == 500_000 and pending == 0
    assert reasons == ("in-memory_queue_full_(max_queue_records)" if dropped else "-")
    assert dropped <= 5_000
    assert growth_mib < 48


def test_close_returns_within_flush_timeout_plus_grace_whatever_the_queue_holds(
    tmp_path: Path,
) -> None:
    """A cluster that accepts connections and never answers, 300,000 metrics queued behind it
    (``max_queue_records=400000``), ``flush_timeout=2``: ``close()`` returns within 2 s + 1 s
    of grace, and every metric is spooled or counted dropped."""
    code = textwrap.dedent(
        """
        import logging, socket, sys, time
        from ecs_metrics_handler import ElasticECSHandler, metric
        hung = socket.socket(); hung.bind(("127.0.0.1", 0)); hung.listen(64)  # never accepts
        h = ElasticECSHandler(hosts=[f"http://127.0.0.1:{hung.getsockname()[1]}"],
                              es_index_name="hung", flush_failure_folder=sys.argv[1],
                              max_queue_records=400_000, flush_timeout=2, request_timeout=30)
        log = logging.getLogger("hung"); log.setLevel(logging.INFO); log.addHandler(h)
        for i in range(300_000):
            log.info("m", extra=metric("hung", i))
        queued = len(h.buffer)
        start = time.monotonic()
        h.close()
        took = time.monotonic() - start
        s = h.stats()
        print(queued, took, s["emitted"], s["spooled"], s["dropped"], s["pending"])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    fields = proc.stdout.split()
    queued, took = int(fields[0]), float(fields[1])
    emitted, spooled, dropped, pending = (int(x) for x in fields[2:])
    print(f"\nclose() with {queued} queued took {took:.2f} s; spooled {spooled}, dropped {dropped}")
    assert took < 2.0 + 1.0
    assert emitted == 300_000 and pending == 0
    assert spooled + dropped == emitted
    assert spooled == sum(len(read_items(p)) for p in tmp_path.glob("segment-*.ndjson"))
