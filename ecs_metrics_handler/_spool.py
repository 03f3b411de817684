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

``quarantined-<UTC time>-<pid>-<n>.ndjson`` and ``.reason`` beside it
    Documents the cluster refused as a whole request (a request-level ``400``; a single
    document over ``http.max_content_length`` is dead-lettered instead, larger requests are
    split), and documents found in a segment that the handler does not write (see below),
    the ``.reason`` then listing why for each. Kept for a person, never replayed, never
    deleted by the handler.

``*.claimed-<pid>-<token>``
    A segment being replayed by process ``pid``; given back if that process died (the token
    tells a process from an earlier one with the same pid; see :mod:`._claims`).

Anything else under a segment name (a directory, FIFO, socket, symlink) is skipped without
being opened for reading in a way that could block, and reported once.

The folder is a trust boundary. Whoever can write it can plant segments, so:

* A folder that another user owns, or that its group or everyone may write, is refused
  (``_folder_trust.check_folder_trust`` at construction, ``UntrustedFolderError`` on each later
  write or replay), as ssh refuses such a ``~/.ssh``, unless ``allow_insecure``
  (``flush_failure_folder_allow_insecure``) says otherwise. Folders the spool creates,
  missing parents included, are created ``0o700``, whatever the umask; files ``0o600``.
* Files are created with ``O_EXCL|O_NOFOLLOW|O_CLOEXEC`` under unpredictable temporary names
  and renamed into place; files are read with ``O_NOFOLLOW``: a symlink is never followed.
* A claimed segment is vetted by its :class:`~._segment_file.ReplayPolicy` before anything
  is sent: only ``create`` lines exactly as the handler writes them, into the handler's own
  indices (or data stream), with the handler's form of id. Everything else goes to a
  ``quarantined-*`` file whose ``.reason`` lists why, and is counted in :attr:`Spool.untrusted`.

Every file is written to a temporary name, fsynced, then renamed
(:func:`~._atomic_file.write_atomic`), so a crash never leaves a half-written segment under
a segment name. The folder has a size cap
(``flush_failure_folder_max_bytes``): when a write would exceed it the write is refused and
the caller counts the documents as dropped with the reason ``failure folder full`` (the
oldest data is kept: it is the data that has waited longest for an outage to end).

Thread-safety: one :class:`Spool` may be used from several threads; segment claims also keep
several processes sharing one folder apart.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._atomic_file import write_atomic
from ._claims import claimed_name, recover_stale_claims
from ._dead_letter import DeadLetter
from ._folder_trust import UntrustedFolderError, folder_distrust, make_private_dirs
from ._segment_file import (
    ReplayPolicy,
    SpoolFormatError,
    UnreadableSegmentError,
    read_items,
    refusal_text,
    vet_items,
)

__all__ = [
    "Claim",
    "Spool",
    "SpoolFormatError",
    "UnreadableSegmentError",
    "read_items",
]

SEGMENT_PREFIX = "segment-"
DEAD_LETTER_PREFIX = "dead-letter-"
SUFFIX = ".ndjson"
QUARANTINE_PREFIX = "quarantined-"


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
            write_atomic(self.spool.folder / self.name, remaining)
            self.spool._adjust(sum(len(item) for item in remaining))
        self.spool._remove(self.path)


class Spool:
    """The failure folder of one handler (or of :func:`replay`)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        max_bytes: int = 1 << 30,
        *,
        clock: Any = time.time,
        policy: ReplayPolicy | None = None,
        allow_insecure: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        #: what a replay may send of a claimed segment (default: the default index prefix)
        self.policy = policy if policy is not None else ReplayPolicy.of_handler()
        #: use a folder other users may write (``flush_failure_folder_allow_insecure``)
        self.allow_insecure = allow_insecure
        self._clock = clock
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._size = -1  # unknown until the folder is first scanned
        self._pid = os.getpid()
        #: marks this process's claims: a pid alone is reused (PID 1 in every container)
        self._token = secrets.token_hex(4)
        #: names under a segment name that could not be read, reported once each
        self.unreadable: dict[str, str] = {}
        #: why the folder is not trusted (at the last claim), else None: nothing is replayed
        self.distrust: str | None = None
        #: documents quarantined because the policy refused them (never sent), in total
        self.untrusted = 0
        #: (quarantine file, documents, first reason) of each such quarantine, in order
        self.untrusted_files: list[tuple[Path, int, str]] = []

    # -- writing ----------------------------------------------------------------------------

    def write_segment(self, items: Sequence[bytes]) -> bool:
        """Write ``items`` (bulk pairs) as one new segment. Blocking disk I/O.

        Returns ``False``, writing nothing, when the folder's size cap would be exceeded.
        Raises ``OSError`` when the disk refuses.
        """
        if not items:
            return True
        return self._write_capped(SEGMENT_PREFIX, items)

    def write_dead_letters(self, entries: Iterable[DeadLetter]) -> bool:
        """Write ``entries`` to a new dead-letter file. Blocking disk I/O.

        Counted against the folder's cap like segments: returns ``False``, writing nothing,
        when it would be exceeded. Raises ``OSError`` when the disk refuses.
        """
        now = _iso(self._clock())
        data = b"".join(entry.to_json(now) + b"\n" for entry in entries)
        if not data:
            return True
        return self._write_capped(DEAD_LETTER_PREFIX, (data,))

    def _write_capped(self, prefix: str, parts: Sequence[bytes]) -> bool:
        size = sum(len(part) for part in parts)
        self._ensure_folder()
        with self._lock:
            if self._size + size > self.max_bytes:
                self._size = self._scan_size()  # other processes may have replayed meanwhile
                if self._size + size > self.max_bytes:
                    return False
            self._size += size
        try:
            write_atomic(self.folder / self._new_name(prefix), parts)
        except BaseException:
            self._adjust(-size)
            raise
        return True

    def quarantine(self, items: Sequence[bytes], reason: str) -> Path:
        """Keep ``items``, which the cluster refuses as a whole, for a person; never replayed.

        Writes them as ``quarantined-<UTC time>-<pid>-<n>.ndjson`` (bulk NDJSON, like a
        segment, so a person can fix and send it) and ``reason`` beside it in the same name
        with ``.reason``. The bytes move from a segment, so the cap is not checked again.
        Blocking disk I/O; raises ``OSError`` when the disk refuses.
        """
        self._ensure_folder()
        target = self.folder / self._new_name(QUARANTINE_PREFIX)
        write_atomic(target, items)
        self._adjust(sum(len(item) for item in items))
        with contextlib.suppress(OSError):
            write_atomic(
                target.with_name(target.name + ".reason"),
                (reason.encode("utf-8", "replace") + b"\n",),
            )
        return target

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

        A segment whose content is not bulk NDJSON is renamed ``*.invalid`` and skipped. What
        is not a regular file under a segment name (a directory, FIFO, socket or symlink) is
        left where it is, skipped without blocking, and listed in :attr:`unreadable`. The
        documents :attr:`policy` refuses are quarantined (see :meth:`_set_aside_untrusted`):
        the claim holds only what may be sent. Nothing is claimed from a folder that is not
        trusted (see :func:`folder_distrust`); :attr:`distrust` then says why.
        """
        self.distrust = None if self.allow_insecure else folder_distrust(self.folder)
        if self.distrust is not None:
            return None
        for path in self.segments():
            if path.name in self.unreadable:
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                self.unreadable[path.name] = "not a regular file"
                continue
            claimed = claimed_name(path, self._token)
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another process took it
            try:
                items = read_items(claimed)
            except SpoolFormatError:
                os.rename(claimed, path.with_name(path.name + ".invalid"))
                continue
            except OSError as e:  # swapped for something else since the lstat
                with contextlib.suppress(OSError):
                    os.rename(claimed, path)
                self.unreadable[path.name] = f"{type(e).__name__}: {e.strerror or e}"
                continue
            items, refused = vet_items(items, self.policy)
            if refused:
                try:
                    self._set_aside_untrusted(claimed, items, refused)
                except OSError as e:  # a full disk: leave the segment as it was, for later
                    with contextlib.suppress(OSError):
                        os.rename(claimed, path)
                    self.unreadable[path.name] = f"cannot quarantine what it holds: {e}"
                    continue
                if not items:
                    continue
            return Claim(self, path.name, claimed, items)
        return None

    def _set_aside_untrusted(
        self, claimed: Path, accepted: list[bytes], refused: list[tuple[bytes, str]]
    ) -> None:
        """Quarantine ``refused`` with their reasons; leave only ``accepted`` in ``claimed``.

        The claimed file is rewritten (or removed when nothing is left), so a crash after this
        never quarantines the same documents twice. Blocking disk I/O; raises ``OSError``.
        """
        target = self.quarantine([item for item, _ in refused], refusal_text(refused))
        old_size = os.lstat(claimed).st_size
        if accepted:
            write_atomic(claimed, accepted)
            self._adjust(sum(len(item) for item in accepted) - old_size)
        else:
            self._remove(claimed)
        self.untrusted += len(refused)
        self.untrusted_files.append((target, len(refused), refused[0][1]))

    def recover_stale_claims(self) -> int:
        """Give back segments claimed by processes that no longer run. Returns how many."""
        return recover_stale_claims(self.folder, self._token)

    def size(self) -> int:
        """Bytes held in segments (scanned once, then tracked)."""
        with self._lock:
            if self._size < 0:
                self._size = self._scan_size()
            return self._size

    # -- internals --------------------------------------------------------------------------

    def _ensure_folder(self) -> None:
        """Create the folder (and missing parents) ``0o700``; refuse it when not trusted.

        Raises :class:`UntrustedFolderError` (a ``PermissionError``) when the folder, or a
        folder created for it, may be written by another user (see :func:`folder_distrust`)
        and :attr:`allow_insecure` is false.
        """
        created = make_private_dirs(self.folder)
        if not self.allow_insecure:
            for folder in (*created, self.folder):
                why = folder_distrust(folder)
                if why is not None:
                    raise UntrustedFolderError(
                        errno.EPERM, f"failure folder not written: {folder} {why}"
                    )
        with self._lock:
            if self._size < 0:
                self._size = self._scan_size()

    def _scan_size(self) -> int:
        """Bytes in every regular file of the folder: segments, dead letters, temporary files."""
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        return total

    def _adjust(self, delta: int) -> None:
        with self._lock:
            if self._size >= 0:
                self._size = max(0, self._size + delta)

    def _remove(self, path: Path) -> None:
        try:
            size = os.lstat(path).st_size
            path.unlink()
        except FileNotFoundError:
            return
        self._adjust(-size)

    def _new_name(self, prefix: str) -> str:
        stamp = datetime.fromtimestamp(self._clock(), timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{prefix}{stamp}-{os.getpid()}-{next(self._counter):06d}{SUFFIX}"


def _iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
