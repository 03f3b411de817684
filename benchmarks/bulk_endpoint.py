"""A minimal local ``_bulk`` endpoint that only acknowledges.

It measures the *client's* cost of shipping: it runs in its own process (so its
CPU time is not counted in the client's ``time.process_time``), reads each
request body, and answers every bulk action with a successful item, the way an
Elasticsearch node that never fails would.

Usage::

    python benchmarks/bulk_endpoint.py [--host 127.0.0.1] [--port 0]

It prints ``LISTENING http://HOST:PORT`` on its first line of standard output
and serves until it is terminated (SIGTERM / SIGINT) or its standard input is
closed by the parent (``--exit-on-stdin-eof``).

Routes:

* ``POST|PUT /_bulk`` and ``/{index}/_bulk``: NDJSON body (``create``, ``index``,
  ``update`` and ``delete`` actions); the answer has one item per action,
  ``{"create": {"status": 201, "result": "created", ...}}``.
* ``GET|HEAD /``: a 9.x version document (``client.info()`` / ``ping()``).
* ``GET /_bench/stats``: ``{"requests": n, "bulk_requests": n, "docs": n,
  "bytes": n, "by_index": {index: docs}}``.
* ``POST /_bench/reset``: zero the counters.
* anything else: ``200 {"acknowledged": true}`` (templates, refresh, ...).

Every answer carries ``X-Elastic-Product: Elasticsearch`` and
``Content-Type: application/json``, which elasticsearch-py checks. HTTP/1.1
keep-alive, ``Content-Length`` and chunked request bodies, and gzip request
bodies are supported. Single-threaded asyncio; the standard library suffices
(orjson is used to parse action lines when it is importable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import signal
import sys
import threading
import urllib.parse
from typing import Any

try:
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - the stdlib is enough

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


_VERSION_DOC = _dumps(
    {
        "name": "bench-endpoint",
        "cluster_name": "bench",
        "cluster_uuid": "bench0000000000000000",
        "version": {
            "number": "9.1.0",
            "build_flavor": "default",
            "build_type": "tar",
            "lucene_version": "10.2.2",
            "minimum_wire_compatibility_version": "8.19.0",
            "minimum_index_compatibility_version": "8.0.0",
        },
        "tagline": "You Know, for Search",
    }
)
_ACK = b'{"acknowledged":true}'
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 411: b"Length Required"}


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bulk_requests = 0
        self.docs = 0
        self.bytes = 0
        self.by_index: dict[str, int] = {}
        self.seq = 0

    def as_json(self) -> bytes:
        return _dumps(
            {
                "requests": self.requests,
                "bulk_requests": self.bulk_requests,
                "docs": self.docs,
                "bytes": self.bytes,
                "by_index": self.by_index,
            }
        )


COUNTERS = Counters()


def parse_filter_path(query: str) -> tuple[bool, bool, set[str] | None] | None:
    """The parts of a ``filter_path`` that bulk answers need, or None without one.

    Returns (keep_errors, keep_took, item_fields); ``item_fields`` None keeps whole
    items, an empty set drops the items. Only the shapes clients use are understood:
    ``errors``, ``took``, ``items``, ``items.*``, ``items.*.FIELD``.
    """
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key != "filter_path":
            continue
        paths = urllib.parse.unquote(value).split(",")
        fields: set[str] | None = set()
        for path in paths:
            if path in ("items", "items.*", "items.*.*"):
                fields = None
            elif path.startswith("items.*.") and fields is not None:
                fields.add(path[len("items.*.") :])
        return "errors" in paths, "took" in paths, fields
    return None


def bulk_response(path_index: str | None, body: bytes, query: str = "") -> bytes:
    """Build the acknowledgement of one bulk body: one successful item per action.

    ``filter_path`` is honoured for the shapes clients send (so the client parses
    what a real node would send it).
    """
    filt = parse_filter_path(query) if query else None
    item_fields = None if filt is None else filt[2]
    lines = body.split(b"\n")
    items: list[bytes] = []
    by_index = COUNTERS.by_index
    n = len(lines)
    i = 0
    seq = COUNTERS.seq
    while i < n:
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        action = _loads(line)
        ((op, meta),) = action.items()
        meta = meta or {}
        index = meta.get("_index") or path_index or "default"
        doc_id = meta.get("_id")
        if op != "delete":
            i += 1  # skip the source line
        seq += 1
        if doc_id is None:
            doc_id = f"bench{seq:015d}"
        by_index[index] = by_index.get(index, 0) + 1
        status, result = (200, b"deleted") if op == "delete" else (201, b"created")
        if op == "update":
            status, result = 200, b"updated"
        if item_fields is None:
            items.append(
                b'{"%s":{"_index":%s,"_id":%s,"_version":1,"result":"%s",'
                b'"_shards":{"total":1,"successful":1,"failed":0},'
                b'"_seq_no":%d,"_primary_term":1,"status":%d}}'
                % (op.encode(), _dumps(index), _dumps(str(doc_id)), result, seq, status)
            )
        elif "status" in item_fields:
            items.append(b'{"%s":{"status":%d}}' % (op.encode(), status))
        else:
            items.append(b"")
    COUNTERS.seq = seq
    COUNTERS.docs += len(items)
    COUNTERS.bulk_requests += 1
    if filt is None:
        return b'{"errors":false,"took":1,"items":[' + b",".join(items) + b"]}"
    keep_errors, keep_took, _ = filt
    parts = []
    if keep_errors:
        parts.append(b'"errors":false')
    if keep_took:
        parts.append(b'"took":1')
    if item_fields is None or "status" in item_fields:
        parts.append(b'"items":[' + b",".join(items) + b"]")
    return b"{" + b",".join(parts) + b"}"


def route(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    path_only = path.split("?", 1)[0]
    parts = [p for p in path_only.split("/") if p]
    if parts and parts[-1] == "_bulk" and method in ("POST", "PUT"):
        index = parts[0] if len(parts) == 2 else None
        try:
            return 200, bulk_response(index, body, path.partition("?")[2])
        except Exception as exc:  # a malformed body: answer as Elasticsearch would
            return 400, _dumps(
                {"error": {"type": "parse_exception", "reason": repr(exc)}, "status": 400}
            )
    if not parts:
        return 200, _VERSION_DOC
    if parts == ["_bench", "stats"]:
        return 200, COUNTERS.as_json()
    if parts == ["_bench", "reset"]:
        COUNTERS.reset()
        return 200, _ACK
    if parts[-1] == "_count":
        return 200, b'{"count":%d,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0}}' % (
            COUNTERS.docs
        )
    return 200, _ACK


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; one request parsed at a time from a byte buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.head: tuple[str, str, dict[str, str]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        buf = self.buf
        if self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            raw = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            method, target, _ = raw[0].split(" ", 2)
            headers = {}
            for line in raw[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            self.head = (method, target, headers)
        method, target, headers = self.head
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._take_chunked()
            if body is None:
                return False
        else:
            length = int(headers.get("content-length", "0") or 0)
            if len(buf) < length:
                return False
            body = bytes(buf[:length])
            del buf[:length]
        self.head = None
        if headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        COUNTERS.requests += 1
        COUNTERS.bytes += len(body)
        status, payload = route(method, target, body)
        self._respond(status, payload, head_only=method == "HEAD")
        if headers.get("connection", "").lower() == "close" and self.transport:
            self.transport.close()
            return False
        return True

    def _take_chunked(self) -> bytes | None:
        buf = self.buf
        pos = 0
        out = bytearray()
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
            start = eol + 2
            if size == 0:
                end = buf.find(b"\r\n", start)  # no trailers expected
                if end < 0:
                    return None
                del buf[: end + 2]
                return bytes(out)
            if len(buf) < start + size + 2:
                return None
            out += buf[start : start + size]
            pos = start + size + 2

    def _respond(self, status: int, payload: bytes, *, head_only: bool) -> None:
        assert self.transport is not None
        header = (
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: application/json\r\n"
            b"X-Elastic-Product: Elasticsearch\r\n"
            b"Content-Length: %d\r\n\r\n" % (status, _REASONS.get(status, b"OK"), len(payload))
        )
        self.transport.write(header if head_only else header + payload)


async def serve(host: str, port: int, exit_on_stdin_eof: bool) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, host, port, backlog=128)
    sock = server.sockets[0]
    real_port = sock.getsockname()[1]
    print(f"LISTENING http://{host}:{real_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if exit_on_stdin_eof:

        def _watch_stdin() -> None:
            # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader
            # aborts the interpreter's shutdown.
            try:
                while os.read(0, 65536):
                    pass
                loop.call_soon_threadsafe(stop.set)
            except (OSError, RuntimeError):  # stdin gone, or the loop already closed
                pass

        # A daemon thread: the default executor would be joined at shutdown
        # while still blocked in read().
        threading.Thread(target=_watch_stdin, name="stdin-watch", daemon=True).start()
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when standard input is closed (the parent exited)",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.exit_on_stdin_eof))
    return 0


if __name__ == "__main__":
    sys.exit(main())
