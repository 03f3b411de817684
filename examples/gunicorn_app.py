"""A WSGI app under gunicorn with ``--preload``, its workers recycled by ``--max-requests``.

The app times each request with ``timed()``; the handler comes from ``logconfig_dict`` in
``examples/gunicorn.conf.py``. Serve it as you would in production::

    gunicorn --preload --workers 2 --max-requests 4 -c examples/gunicorn.conf.py \\
        --chdir examples gunicorn_app:app

Run as a script, this file does exactly that on a free port, sends 20 requests, stops gunicorn
with ``SIGTERM`` and checks that the cluster holds one document per request, whichever worker
(of the 5 or more that the recycling makes) served it.

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX``
(default ``examples-metrics``) the index prefix. Exits 0 only when all 20 were indexed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from ecs_metrics_handler import timed

REQUESTS = 20


@timed("http.request", labels={"server": "gunicorn"})
def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers every path with the serving worker's pid."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


def main() -> int:
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from _serve import count_documents, free_port, get

    here = Path(__file__).resolve().parent
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2",
         "--max-requests", "4", "-c", str(here / "gunicorn.conf.py"),
         "--chdir", str(here), "--bind", f"127.0.0.1:{port}", "gunicorn_app:app"]
    )  # fmt: skip
    try:
        pids = {get(f"http://127.0.0.1:{port}/order/{n}") for n in range(REQUESTS)}
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: workers finish and exit
        code = server.wait(60)
    indexed = count_documents()
    print(f"gunicorn_app: {REQUESTS} requests served by {len(pids)} worker processes")
    print(f"gunicorn_app: gunicorn exited {code}; {indexed} documents indexed")
    return 0 if code == 0 and indexed == REQUESTS else 1


if __name__ == "__main__":
    raise SystemExit(main())
