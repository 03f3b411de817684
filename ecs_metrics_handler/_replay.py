"""Replaying a failure folder by hand: :func:`replay`.

The handler replays its own folder automatically once the cluster answers again; this
function does the same on demand (``python -m ecs_metrics_handler replay FOLDER``), for a
folder left by a process that is gone or copied from another machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._backoff import backoff_delay
from ._config import HandlerOptions
from ._enums import IndexMode
from ._folder_trust import check_folder_trust
from ._resend import send_items
from ._segment_file import ReplayPolicy
from ._shipper import Shipper, make_shipper
from ._spool import Claim, Spool, SpoolFormatError, read_items
from ._tls import warn_if_plain_http
from .exceptions import ConfigurationError

__all__ = ["ReplayResult", "replay"]


@dataclass(slots=True)
class ReplayResult:
    """What a replay did. ``left`` documents stay in the folder for a later replay."""

    segments: int = 0
    indexed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    #: kept in ``quarantined-*.ndjson`` files: refused by the cluster as a whole request, or
    #: ``untrusted``
    quarantined: int = 0
    #: found in the folder but not written by the handler (see :func:`replay`): quarantined,
    #: never sent; also counted in ``quarantined``
    untrusted: int = 0
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
    allow_indices: Iterable[str] = (),
    **options: Any,
) -> ReplayResult:
    """Send every segment of ``folder`` to the cluster, oldest first; delete each one once done.

    ``options`` are the handler's connection options (``hosts``, ``auth_type``,
    ``auth_details``, ``backend``...), or pass a ready ``client``. Documents keep their ids
    and go with ``create``, so a replay never duplicates: a document already indexed answers
    ``409`` and counts in ``duplicates``. Items refused for good go to a dead-letter file in
    the same folder; items the cluster cannot take now (``429``, ``5xx``, unreachable) stay in
    their segment. Blocking; returns a :class:`ReplayResult`.

    The folder is a trust boundary: only what the handler writes is sent, ``create`` lines
    into the indices of ``es_index_name`` (``-YYYY.MM.DD`` and the other date suffixes) or
    into ``data_stream``, as given in ``options`` (the defaults otherwise), with the handler's
    form of ``_id`` and no other parameter. ``allow_indices`` adds ``fnmatch`` patterns of
    further indices (still ``create`` lines only). Everything else is quarantined with the
    reason and counted in ``untrusted``. A folder other users may write raises
    :class:`~ecs_metrics_handler.ConfigurationError` unless
    ``flush_failure_folder_allow_insecure=True``.
    """
    opts = HandlerOptions.from_kwargs(**options)
    patterns = (allow_indices,) if isinstance(allow_indices, str) else tuple(allow_indices)
    if not all(isinstance(p, str) and p for p in patterns):
        raise ConfigurationError("allow_indices", "index name patterns (strings)", allow_indices)
    if client is None:
        warn_if_plain_http(opts)
    check_folder_trust(folder, opts.flush_failure_folder_allow_insecure)
    spool = Spool(
        folder,
        policy=ReplayPolicy.of_handler(
            opts.es_index_name,
            opts.data_stream,
            patterns,
            server_ids=opts.index_mode is IndexMode.TIME_SERIES,
        ),
        allow_insecure=opts.flush_failure_folder_allow_insecure,
    )
    shipper = make_shipper(opts, client)
    result = ReplayResult()
    spool.recover_stale_claims()
    try:
        while True:
            claim = spool.claim_oldest()
            if claim is None:
                break
            result.segments += 1
            left = _replay_claim(shipper, spool, claim, chunk_size, max_retries, result)
            if left:
                claim.release(left)
                result.left += len(left)
                # The cluster cannot take more now: don't claim every other segment just to
                # put it back.
                for path in spool.segments():
                    if path.name == claim.name:
                        continue  # just given back: counted above
                    try:
                        result.left += len(read_items(path))
                    except (OSError, SpoolFormatError) as e:
                        result.errors.append(f"{path.name}: {e}")
                break
            claim.done()
    finally:
        if client is None:
            shipper.close()
    result.errors.extend(f"skipped {name}: {why}" for name, why in spool.unreadable.items())
    if spool.distrust is not None:
        result.errors.append(f"not replayed: {spool.folder} {spool.distrust}")
    result.untrusted = spool.untrusted
    result.quarantined += spool.untrusted
    result.errors.extend(
        f"{count} document(s) not written by the handler quarantined in {path.name}: {reason}"
        for path, count, reason in spool.untrusted_files
    )
    return result


def _replay_claim(
    shipper: Shipper,
    spool: Spool,
    claim: Claim,
    chunk_size: int,
    max_retries: int,
    result: ReplayResult,
) -> list[bytes]:
    """Send one claimed segment with up to ``max_retries`` retries; return what is left."""
    pending: list[bytes] = claim.items
    for attempt in range(max_retries + 1):
        if attempt:
            time.sleep(backoff_delay(attempt, 0.5, 5.0))
        outcome = send_items(shipper, pending, chunk_size)
        result.indexed += outcome.done - outcome.duplicates
        result.duplicates += outcome.duplicates
        if outcome.letters:
            spool.write_dead_letters(outcome.letters)
            result.dead_lettered += len(outcome.letters)
        if outcome.refused:
            path = spool.quarantine(outcome.refused, outcome.refused_reason)
            result.quarantined += len(outcome.refused)
            result.errors.append(f"{outcome.refused_reason}: kept in {path.name}")
        if outcome.stopped:
            result.errors.append(outcome.stopped)
        pending = outcome.left
        if not pending:
            return []
    return pending
