"""The failure folder: spooled segments that a replay can use as they are, and dead letters.

Layout of ``flush_failure_folder`` (created with mode ``0o700``, files ``0o600``):

``segment-<UTC time>-<pid>-<n>.ndjson``
    Documents the cluster could not take yet. Bulk-ready NDJSON: each document is a
    ``{"create":{"_index":...,"_id":...}}`` line followed by its source line, so a person can
    send a segment as it is (``curl -H 'Content-Type: application/x-ndjson' --data-binary
    @segment-....ndjson http://host:9200/_bulk``) and :func:`ecs_metrics_handler.replay` sends
    it with per-item judgement. Ids are kept, so replaying twice never duplicates. Names sort
    oldest first and contain no ``:``.

``dead-letter-<UTC time>-<pid>-<n>.ndjson``
    One JSON object per line for documents the cluster refused for a reason a retry cannot
    fix (``status``, ``error`` as the server gave it, ``index``, ``id``, ``document``) and for
    invalid payloads (``reason``, ``record``). Kept for a person to read; never replayed.

``*.claimed-<pid>``
    A segment being replayed by process ``pid``; given back if that process died.

Every file is written to a temporary name, fsynced, then renamed, so a crash never leaves a
half-written segment under a segment name. The folder has a size cap
(``flush_failure_folder_max_bytes``): when a write would exceed it the write is refused and
the caller counts the documents as dropped with the reason ``failure folder full`` (the
oldest data is kept: it is the data that has waited longest for an outage to end).

Thread-safety: one :class:`Spool` may be used from several threads; segment claims also keep
several processes sharing one folder apart.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Claim", "DeadLetter", "Spool", "SpoolFormatError", "read_items"]

SEGMENT_PREFIX = "segment-"
DEAD_LETTER_PREFIX = "dead-letter-"
SUFFIX = ".ndjson"
_CLAIM = ".claimed-"
_TMP_PREFIX = ".tmp-"


class SpoolFormatError(ValueError):
    """A segment file is not bulk NDJSON made of action/source line pairs."""


@dataclass(slots=True)
class DeadLetter:
    """One entry of a dead-letter file."""

    reason: str
    status: int | None = None
    error: Any = None
    item: bytes | None = None  # the bulk pair (action line + source line) when there is one
    record: dict[str, Any] | None = None  # for invalid payloads: what the record held

    def to_json(self, now: str) -> bytes:
        entry: dict[str, Any] = {"time": now, "reason": self.reason}
        if self.status is not None:
            entry["status"] = self.status
        if self.error is not None:
            entry["error"] = self.error
        if self.item is not None:
            action, _, source = self.item.partition(b"\n")
            with contextlib.suppress(orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                meta = next(iter(orjson.loads(action).values()))
                entry["index"] = meta.get("_index")
                entry["id"] = meta.get("_id")
            entry["document"] = orjson.Fragment(source.rstrip(b"\n") or b"null")
        if self.record is not None:
            entry["record"] = self.record
        return orjson.dumps(entry, default=str)


def read_items(path: str | os.PathLike[str]) -> list[bytes]:
    """Read a segment: its documents as bulk pairs (action line + source line, ``\\n`` each)."""
    with open(path, "rb") as f:
        lines = [line for line in f.read().split(b"\n") if line.strip()]
    if len(lines) % 2:
        raise SpoolFormatError(f"{os.fspath(path)}: odd number of lines ({len(lines)})")
    items = []
    for action, source in zip(lines[0::2], lines[1::2], strict=True):
        if not action.lstrip().startswith(b'{"create"') and not action.lstrip().startswith(
            b'{"index"'
        ):
            raise SpoolFormatError(f"{os.fspath(path)}: not a bulk action line: {action[:80]!r}")
        items.append(action + b"\n" + source + b"\n")
    return items


@dataclass(slots=True)
class Claim:
    """A segment taken for replay by this process; end it with :meth:`done` or :meth:`release`."""

    spool: Spool
    name: str
    path: Path
    items: list[bytes] = field(default_factory=list)

    def done(self) -> None:
        """Every document was acknowledged (or dead-lettered): delete the segment."""
        self.spool._remove(self.path)

    def release(self, remaining: Sequence[bytes]) -> None:
        """Put ``remaining`` documents back under the segment's original name, for a later try."""
        if remaining:
            data = b"".join(remaining)
            self.spool._write_atomic(self.spool.folder / self.name, data)
            self.spool._adjust(len(data))
        self.spool._remove(self.path)


class Spool:
    """The failure folder of one handler (or of :func:`replay`)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        max_bytes: int = 1 << 30,
        *,
        clock: Any = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._size = -1  # unknown until the folder is first scanned
        self._pid = os.getpid()

    # -- writing ----------------------------------------------------------------------------

    def write_segment(self, items: Sequence[bytes]) -> bool:
        """Write ``items`` (bulk pairs) as one new segment. Blocking disk I/O.

        Returns ``False``, writing nothing, when the folder's size cap would be exceeded.
        Raises ``OSError`` when the disk refuses.
        """
        if not items:
            return True
        data = b"".join(items)
        self._ensure_folder()
        with self._lock:
            if self._size + len(data) > self.max_bytes:
                self._size = self._scan_size()  # other processes may have replayed meanwhile
                if self._size + len(data) > self.max_bytes:
                    return False
            self._size += len(data)
        try:
            self._write_atomic(self.folder / self._new_name(SEGMENT_PREFIX), data)
        except BaseException:
            self._adjust(-len(data))
            raise
        return True

    def write_dead_letters(self, entries: Iterable[DeadLetter]) -> None:
        """Write ``entries`` to a new dead-letter file. Blocking disk I/O; not size-capped."""
        now = _iso(self._clock())
        data = b"".join(entry.to_json(now) + b"\n" for entry in entries)
        if data:
            self._ensure_folder()
            self._write_atomic(self.folder / self._new_name(DEAD_LETTER_PREFIX), data)

    # -- reading / replay -------------------------------------------------------------------

    def segments(self) -> list[Path]:
        """Unclaimed segment files, oldest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return [
            self.folder / n
            for n in sorted(names)
            if n.startswith(SEGMENT_PREFIX) and n.endswith(SUFFIX)
        ]

    def claim_oldest(self) -> Claim | None:
        """Take the oldest unclaimed segment for replay, or return ``None`` when there is none.

        A segment whose content is not bulk NDJSON is renamed ``*.invalid`` and skipped.
        """
        for path in self.segments():
            claimed = path.with_name(f"{path.name}{_CLAIM}{os.getpid()}")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another process took it
            try:
                items = read_items(claimed)
            except SpoolFormatError:
                os.rename(claimed, path.with_name(path.name + ".invalid"))
                continue
            return Claim(self, path.name, claimed, items)
        return None

    def recover_stale_claims(self) -> int:
        """Give back segments claimed by processes that no longer run. Returns how many."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return 0
        recovered = 0
        for name in names:
            base, sep, pid_text = name.rpartition(_CLAIM)
            if not sep or not pid_text.isdigit():
                continue
            pid = int(pid_text)
            if pid != os.getpid() and _pid_alive(pid):
                continue
            if pid == os.getpid() and pid == self._pid:
                continue  # our own live claim
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.folder / name, self.folder / base)
                recovered += 1
        return recovered

    def size(self) -> int:
        """Bytes held in segments (scanned once, then tracked)."""
        with self._lock:
            if self._size < 0:
                self._size = self._scan_size()
            return self._size

    # -- internals --------------------------------------------------------------------------

    def _ensure_folder(self) -> None:
        if self._size >= 0 and self.folder.is_dir():
            return
        with contextlib.suppress(FileExistsError):
            self.folder.mkdir(mode=0o700, parents=True)
        with self._lock:
            if self._size < 0:
                self._size = self._scan_size()

    def _scan_size(self) -> int:
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                if entry.name.startswith(SEGMENT_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        total += entry.stat().st_size
        return total

    def _adjust(self, delta: int) -> None:
        with self._lock:
            if self._size >= 0:
                self._size = max(0, self._size + delta)

    def _remove(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self._adjust(-size)

    def _new_name(self, prefix: str) -> str:
        stamp = datetime.fromtimestamp(self._clock(), timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{prefix}{stamp}-{os.getpid()}-{next(self._counter):06d}{SUFFIX}"

    def _write_atomic(self, target: Path, data: bytes) -> None:
        tmp = target.with_name(f"{_TMP_PREFIX}{target.name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        _fsync_dir(target.parent)


def _iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
