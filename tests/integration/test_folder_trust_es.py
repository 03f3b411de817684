"""A planted failure-folder segment against a real Elasticsearch node.

Anyone who can write the failure folder can plant bulk lines there. The handler's own replay
and the command line's must send only what the handler writes (its ``create`` lines into its
own indices): a planted ``index``/``update``/``delete`` of a document in another index, or a
``create`` there, must leave that index exactly as it was, while the legit documents beside
them arrive.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler._serialize import bulk_pair

_HANDLER_ID = "AAAAAAAAAAAA"  # the shape of a handler's id prefix


def _line(action: dict[str, Any], source: dict[str, Any] | None = None) -> bytes:
    pair = orjson.dumps(action) + b"\n"
    if source is not None:
        pair += orjson.dumps(source) + b"\n"
    return pair


def _hostile(ledger: str, own: str) -> bytes:
    """Bulk lines a handler never writes, each aimed at document 42 of ``ledger``."""
    mallory = {"amount": -1_000_000, "owner": "mallory"}
    return b"".join(
        [
            _line({"index": {"_index": ledger, "_id": "42"}}, mallory),
            _line({"update": {"_index": ledger, "_id": "42"}}, {"doc": mallory}),
            _line({"create": {"_index": ledger, "_id": f"{_HANDLER_ID}43"}}, mallory),
            _line({"create": {"_index": own, "_id": "42", "pipeline": "x"}}, mallory),
            # a delete has no source line: with the next line it makes one (refused) pair
            _line({"delete": {"_index": ledger, "_id": "42"}}),
            _line({"index": {"_index": ledger, "_id": "44"}}),
        ]
    )


def _plant(folder: Path, n: int, body: bytes) -> Path:
    path = folder / f"segment-20000101T000000.000000Z-1-{n:06d}.ndjson"
    path.write_bytes(body)
    path.chmod(0o600)
    return path


def _ledger_state(es_client: Any, ledger: str) -> tuple[int, int, dict[str, Any]]:
    es_client.indices.refresh(index=ledger)
    count = int(es_client.count(index=ledger)["count"])
    doc = es_client.get(index=ledger, id="42")
    return count, int(doc["_version"]), dict(doc["_source"])


def test_a_planted_segment_never_touches_another_index_by_either_replay(
    es_server: Any, es_client: Any, unique_name: str, logger: logging.Logger, tmp_path: Path
) -> None:
    ledger = f"billing-ledger-{unique_name}"
    own = f"{unique_name}-2026.01.01"
    es_client.index(index=ledger, id="42", document={"amount": 100, "owner": "alice"}, refresh=True)
    before = _ledger_state(es_client, ledger)
    assert before == (1, 1, {"amount": 100, "owner": "alice"})
    folder = tmp_path / "failures"
    folder.mkdir(mode=0o700)

    # 1. the handler's automatic replay
    legit = bulk_pair(own, f"{_HANDLER_ID}1", b'{"@timestamp":"2026-01-01T00:00:00Z","n":1}')
    _plant(folder, 1, _hostile(ledger, own) + legit)
    handler = ElasticECSHandler(
        hosts=[es_server.url],
        es_index_name=unique_name,
        flush_failure_folder=str(folder),
        flush_frequency_in_sec=0.1,
    )
    logger.addHandler(handler)
    for i in range(5):
        logger.info("m", extra=metric("live", i))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        handler.flush(1)
        stats = handler.stats()
        # the live metrics ship, or (a slow node) are spooled and then replayed themselves
        if stats["shipped"] + stats["replayed"] >= 6:
            break
    logger.removeHandler(handler)
    handler.close()
    stats = handler.stats()
    assert stats["shipped"] + stats["replayed"] == 6 and stats["untrusted"] == 5, stats
    assert _ledger_state(es_client, ledger) == before
    es_client.indices.refresh(index=own)
    assert es_client.get(index=own, id=f"{_HANDLER_ID}1")["_source"]["n"] == 1
    assert not es_client.indices.exists(index=f"{_HANDLER_ID}43")
    (quarantined,) = folder.glob("quarantined-*.ndjson")
    assert b"mallory" in quarantined.read_bytes()
    reason = quarantined.with_name(quarantined.name + ".reason").read_text()
    assert "action 'index'" in reason and "action 'update'" in reason
    assert list(folder.glob("segment-*")) == []

    # 2. the command line's replay, told the handler's prefix
    legit = bulk_pair(own, f"{_HANDLER_ID}2", b'{"@timestamp":"2026-01-01T00:00:00Z","n":2}')
    _plant(folder, 2, legit + _hostile(ledger, own))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecs_metrics_handler",
            "replay",
            str(folder),
            "--hosts",
            es_server.url,
            "--index",
            unique_name,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 1, proc.stderr  # 1: something was quarantined, look at it
    assert "1 indexed" in proc.stdout and "(5 not written by the handler)" in proc.stdout
    assert _ledger_state(es_client, ledger) == before
    es_client.indices.refresh(index=own)
    assert es_client.get(index=own, id=f"{_HANDLER_ID}2")["_source"]["n"] == 2
    assert int(es_client.count(index=own)["count"]) == 2
    assert len(list(folder.glob("quarantined-*.ndjson"))) == 2
    assert list(folder.glob("segment-*")) == []
