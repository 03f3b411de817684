"""Reading a segment of the failure folder without blocking on it or trusting it.

The folder is a trust boundary: anything may appear under a segment name. :func:`read_items`
opens without following a symlink and without waiting on a FIFO, refuses what is not a
regular file, and checks that the content is bulk NDJSON (action and source line pairs)
before a single document of it is sent. Blocking disk I/O on regular files only.
"""

from __future__ import annotations

import os
import stat

__all__ = ["SpoolFormatError", "UnreadableSegmentError", "read_items"]


class SpoolFormatError(ValueError):
    """A segment file is not bulk NDJSON made of action/source line pairs."""


#: flags for opening a segment to read: never follow a symlink, never wait on a FIFO
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class UnreadableSegmentError(OSError):
    """A file under a segment name that is not a regular file (a directory, FIFO, socket)."""


def read_items(path: str | os.PathLike[str]) -> list[bytes]:
    """Read a segment: its documents as bulk pairs (action line + source line, ``\\n`` each).

    Never blocks on what is not a regular file: a FIFO, a socket, a device or a directory
    under a segment name raises :class:`UnreadableSegmentError`, a symlink ``OSError``.
    Raises :class:`SpoolFormatError` when the content is not bulk NDJSON.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableSegmentError(f"{os.fspath(path)}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    lines = [line for line in data.split(b"\n") if line.strip()]
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
