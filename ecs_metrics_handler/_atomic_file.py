"""Writing a file whole or not at all: temporary name, fsync, rename, fsync of the folder.

:func:`write_atomic` is how every file of the failure folder (segments, dead letters,
quarantines and their ``.reason``) reaches the disk, so a crash never leaves a half-written
file under its final name. The temporary file, ``.tmp-<16 random hex digits>-<final name>``
beside the target, is created ``0o600`` with ``O_EXCL|O_NOFOLLOW|O_CLOEXEC``: its name cannot
be guessed and a symlink planted there is never followed.

Blocking disk I/O. Thread-safe: no shared state; two writers of the same target leave one
complete file or the other.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["write_atomic"]

#: how temporary files begin (counted in the folder's size, never read as segments)
_TMP_PREFIX = ".tmp-"

_WRITE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
#: one write() call at most this many bytes: the GIL is released during each call anyway
_WRITE_CHUNK = 1 << 20


def write_atomic(target: Path, parts: Sequence[bytes]) -> None:
    """Write ``parts`` in order to a fresh temporary file, fsync it, rename it to ``target``.

    The parts are joined in pieces of at most 1 MiB, so a segment never exists twice in
    memory and no single call holds the GIL for long. The temporary name is unpredictable
    and created exclusively, never through a symlink; it is removed when anything fails (a
    full disk), so nothing is left behind. Blocking disk I/O; raises ``OSError`` when the
    disk refuses.
    """
    tmp = target.with_name(f"{_TMP_PREFIX}{secrets.token_hex(8)}-{target.name}")
    fd = os.open(tmp, _WRITE_FLAGS, 0o600)
    try:
        try:
            for piece in _pieces(parts, _WRITE_CHUNK):
                view = memoryview(piece)
                while view:
                    written = os.write(fd, view[:_WRITE_CHUNK])
                    view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _pieces(parts: Sequence[bytes], limit: int) -> Iterator[bytes]:
    """``parts`` joined into consecutive pieces of about ``limit`` bytes (a larger part alone)."""
    group: list[bytes] = []
    size = 0
    for part in parts:
        if group and size + len(part) > limit:
            yield b"".join(group)
            group, size = [], 0
        group.append(part)
        size += len(part)
    if group:
        yield b"".join(group)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a folder that cannot be opened or synced is left."""
    try:
        fd = os.open(
            folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        )
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
