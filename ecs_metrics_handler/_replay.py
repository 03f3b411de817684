"""Replaying a failure folder by hand: :func:`replay`.

The handler replays its own folder automatically once the cluster answers again; this
function does the same on demand (``python -m ecs_metrics_handler replay FOLDER``), for a
folder left by a process that is gone or copied from another machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from ._config import HandlerOptions
from ._shipper import ShipError, make_shipper
from ._spool import DeadLetter, Spool, read_items

__all__ = ["ReplayResult", "replay"]


@dataclass(slots=True)
class ReplayResult:
    """What a replay did. ``left`` documents stay in the folder for a later replay."""

    segments: int = 0
    indexed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    left: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every spooled document is now in the cluster (or dead-lettered)."""
        return self.left == 0


def replay(
    folder: str | os.PathLike[str],
    *,
    client: Any = None,
    chunk_size: int = 1000,
    max_retries: int = 3,
    **options: Any,
) -> ReplayResult:
    """Send every segment of ``folder`` to the cluster, oldest first; delete each one once done.

    ``options`` are the handler's connection options (``hosts``, ``auth_type``,
    ``auth_details``, ``backend``...), or pass a ready ``client``. Documents keep their ids
    and go with ``create``, so a replay never duplicates: a document already indexed answers
    ``409`` and counts in ``duplicates``. Items refused for good go to a dead-letter file in
    the same folder; items the cluster cannot take now (``429``, ``5xx``, unreachable) stay in
    their segment. Blocking; returns a :class:`ReplayResult`.
    """
    opts = HandlerOptions.from_kwargs(**options)
    spool = Spool(folder)
    shipper = make_shipper(opts, client)
    result = _Replayer(result=ReplayResult())
    spool.recover_stale_claims()
    try:
        while True:
            claim = spool.claim_oldest()
            if claim is None:
                break
            result.result.segments += 1
            left: list[bytes] = []
            for start in range(0, len(claim.items), chunk_size):
                chunk = claim.items[start : start + chunk_size]
                if left and result.unreachable:
                    left.extend(chunk)
                    continue
                left.extend(result.send(shipper, spool, chunk, max_retries))
            if left:
                claim.release(left)
                result.result.left += len(left)
            else:
                claim.done()
            if result.unreachable:
                # Don't claim every other segment just to put it back.
                result.result.left += sum(len(read_items(p)) for p in spool.segments())
                break
    finally:
        if client is None:
            shipper.close()
    return result.result


@dataclass(slots=True)
class _Replayer:
    """Sends chunks with a few retries and keeps the tally."""

    result: ReplayResult
    unreachable: bool = False

    def send(self, shipper: Any, spool: Spool, chunk: list[bytes], max_retries: int) -> list[bytes]:
        pending = chunk
        for attempt in range(max_retries + 1):
            if attempt:
                time.sleep(min(5.0, 0.5 * 2 ** (attempt - 1)))
            try:
                outcome = shipper.bulk(b"".join(pending), len(pending))
            except ShipError as e:
                self.result.errors.append(e.reason)
                if not e.retryable:
                    break
                continue
            self.result.indexed += outcome.done - outcome.duplicates
            self.result.duplicates += outcome.duplicates
            if outcome.dead:
                spool.write_dead_letters(
                    DeadLetter(
                        "refused by the cluster", status=status, error=error, item=pending[pos]
                    )
                    for pos, status, error in outcome.dead
                )
                self.result.dead_lettered += len(outcome.dead)
            pending = [pending[pos] for pos in outcome.retry]
            if not pending:
                return []
        self.unreachable = True
        return pending
