"""Whether a failure folder can be trusted: only this process's user may write it.

Whoever can write the failure folder chooses what is replayed into the cluster, so a folder
owned by another user, or writable by its group or by everyone, is refused as ssh refuses such
a ``~/.ssh`` (:func:`check_folder_trust` at construction; :func:`folder_distrust` says why).
Folders created for the spool are made ``0o700`` whatever the umask
(:func:`make_private_dirs`). All functions are thread-safe (they keep no state).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from .exceptions import ConfigurationError

__all__ = ["UntrustedFolderError", "check_folder_trust", "folder_distrust", "make_private_dirs"]


class UntrustedFolderError(PermissionError):
    """The failure folder (or a folder the spool created) may be written by another user."""


def folder_distrust(folder: str | os.PathLike[str]) -> str | None:
    """Why ``folder`` cannot be trusted to hold segments, or ``None`` (also when it is absent).

    Not trusted: something that is not a directory, a directory owned by another user than
    this process's effective uid, or one its group or everyone may write (the sticky bit does
    not help: others could still plant segments). A symlink to a trusted directory is
    trusted. One ``stat``; pure otherwise. Always ``None`` where there are no uids (Windows).
    """
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:  # pragma: no cover - Windows
        return None
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot be examined ({e.strerror or e})"
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    euid = geteuid()
    if st.st_uid != euid:
        return f"is owned by uid {st.st_uid}, not by this process's effective uid {euid}"
    if mode & stat.S_IWOTH:
        return f"is world-writable (mode {mode:#o})"
    if mode & stat.S_IWGRP:
        return f"is group-writable (mode {mode:#o})"
    return None


def check_folder_trust(folder: str | os.PathLike[str] | None, allow_insecure: bool) -> None:
    """Raise :class:`ConfigurationError` naming ``flush_failure_folder`` when the folder is not
    trusted (see :func:`folder_distrust`) and ``allow_insecure`` is false. For construction
    time: one ``stat``; an absent folder is fine (it is created ``0o700`` when first needed).
    """
    if folder is None or allow_insecure:
        return
    why = folder_distrust(folder)
    if why is not None:
        raise ConfigurationError(
            "flush_failure_folder",
            f"a folder only this process's user can write, as ssh requires of ~/.ssh; it {why}. "
            "Fix its owner and mode, or pass flush_failure_folder_allow_insecure=True "
            "(replay on the command line: --allow-insecure-folder) to use it anyway",
            os.fspath(folder),
        )


def make_private_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents, each ``0o700`` whatever the umask.

    Returns the folders this call had to create (or found created meanwhile by someone else:
    the caller checks them too), top first.
    """
    missing: list[Path] = []
    current = folder
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    missing.reverse()
    for path in missing:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    return missing
