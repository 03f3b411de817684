"""An ASGI app under uvicorn with ``--workers 2`` and its logging from a ``--log-config`` YAML.

The app times each request with ``async with timed(...)``; the handler comes from
``examples/uvicorn_logging.yaml``. Serve it as you would in production::

    uvicorn --workers 2 --log-config uvicorn_logging.yaml --app-dir examples uvicorn_app:app

Run as a script, this file does exactly that on a free port (with a copy of the YAML whose
``${VARIABLES}`` are expanded), sends 20 requests, stops uvicorn with ``SIGTERM`` and checks that
the cluster holds one document per request.

uvicorn ends a worker by raising the ``SIGTERM`` it caught again once the application has shut
down, so the worker dies of the signal and ``atexit`` (and with it ``logging.shutdown()``) never
runs. The app therefore ships what its worker still holds in the ASGI lifespan's shutdown: with
Starlette or FastAPI, call ``logging.shutdown()`` after the ``yield`` of the ``lifespan``
context manager.

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX``
(default ``examples-metrics``) the index prefix. Exits 0 only when all 20 were indexed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from ecs_metrics_handler import timed

REQUESTS = 20


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Answers every HTTP request with the serving worker's pid; flushes at lifespan shutdown."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        logging.shutdown()  # flushes (within flush_timeout) and closes every handler
        await send({"type": "lifespan.shutdown.complete"})
        return
    async with timed("http.request", labels={"server": "uvicorn"}):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})


def main() -> int:
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from _serve import PREFIX, URL, count_documents, free_port, get

    here = Path(__file__).resolve().parent
    template = (here / "uvicorn_logging.yaml").read_text(encoding="utf-8")
    expanded = template.replace("${ELASTICSEARCH_URL}", URL)
    expanded = expanded.replace("${ECSMH_EXAMPLE_INDEX}", PREFIX)
    with tempfile.TemporaryDirectory() as folder:
        log_config = Path(folder) / "uvicorn_logging.yaml"
        log_config.write_text(expanded, encoding="utf-8")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--workers", "2", "--log-config", str(log_config),
             "--app-dir", str(here), "--port", str(port), "uvicorn_app:app"]
        )  # fmt: skip
        try:
            pids = {get(f"http://127.0.0.1:{port}/item/{n}") for n in range(REQUESTS)}
        finally:
            server.send_signal(signal.SIGTERM)  # graceful: workers finish and exit
            code = server.wait(60)
    indexed = count_documents()
    print(f"uvicorn_app: {REQUESTS} requests served by {len(pids)} worker processes")
    print(f"uvicorn_app: uvicorn exited {code}; {indexed} documents indexed")
    return 0 if code == 0 and indexed == REQUESTS else 1


if __name__ == "__main__":
    raise SystemExit(main())
