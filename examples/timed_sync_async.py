"""timed(): one object that is a decorator (sync and async functions) and a context manager.

Each call or block logs one timer metric: ``metrics.duration.us``, ``event.duration`` (ns),
``event.start``/``event.end`` and ``event.outcome`` (``failure`` when it raised; the exception
still propagates). ``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster,
``ECSMH_EXAMPLE_INDEX`` (default ``examples-metrics``) the index prefix. Seven timers are
shipped, two of them failures. Exits 0 only when all were indexed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from ecs_metrics_handler import METRICS_LOGGER_NAME, ElasticECSHandler, timed

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")

log = logging.getLogger("shop.checkout")


@timed("cart.total", logger=log, labels={"currency": "EUR"})
def cart_total(prices: list[float]) -> float:
    """A plain function; the wrapper keeps its signature for type checkers."""
    time.sleep(0.002)
    return sum(prices)


@timed("payment.authorize", logger=log)
async def authorize(amount: float) -> bool:
    """A coroutine function: the timer covers the awaited run, not just the call."""
    await asyncio.sleep(0.005)
    if amount > 100:
        raise RuntimeError("card declined")
    return True


async def pay_all() -> list[bool | BaseException]:
    return list(await asyncio.gather(authorize(20.0), authorize(250.0), return_exceptions=True))


def main() -> int:
    handler = ElasticECSHandler(hosts=[URL], es_index_name=PREFIX, service_name="shop")
    for name in ("shop", METRICS_LOGGER_NAME):  # timed() without logger= uses the latter
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).addHandler(handler)

    for prices in ([9.5, 20.0], [3.0], [1.0, 2.0, 3.0]):  # 3 successful timers
        cart_total(prices)

    results = asyncio.run(pay_all())  # 1 success, 1 failure
    assert results[0] is True and isinstance(results[1], RuntimeError), results

    with timed("receipt.render", logger=log):  # context manager, success
        time.sleep(0.003)

    try:
        with timed("stock.reserve"):  # default logger; the block raises: outcome "failure"
            raise LookupError("sku A-1 is out of stock")
    except LookupError as e:
        print(f"timed_sync_async: the exception propagated as it should: {e!r}")

    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    for name in ("shop", METRICS_LOGGER_NAME):
        logging.getLogger(name).removeHandler(handler)
    handler.close()
    print(f"timed_sync_async: {stats['shipped']} timers indexed into {PREFIX}-* at {URL}")
    print(f"timed_sync_async: counters {stats}")
    return 0 if delivered and stats["shipped"] == 7 else 1


if __name__ == "__main__":
    raise SystemExit(main())
