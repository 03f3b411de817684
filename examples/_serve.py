"""Helpers the server examples share to drive a server they start and check what arrived.

Not an example itself: ``gunicorn_app.py``, ``uvicorn_app.py`` and ``celery_tasks.py`` import it
when run as scripts.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request

from elasticsearch import Elasticsearch

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 60.0) -> str:
    """GET ``url`` and return the body, retrying while the server is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body: bytes = response.read()
                return body.decode()
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def count_documents() -> int:
    """How many documents ``<ECSMH_EXAMPLE_INDEX>-*`` holds, after a refresh."""
    with Elasticsearch(URL) as client:
        pattern = f"{PREFIX}-*"
        client.indices.refresh(index=pattern, allow_no_indices=True, ignore_unavailable=True)
        count: int = client.count(index=pattern, allow_no_indices=True)["count"]
        return count
