"""Segment claims: how a replaying process marks a segment as its own, and gives back dead ones.

A process replaying a segment first renames it ``<segment name>.claimed-<pid>-<token>``
(:func:`claimed_name`), so several processes sharing one failure folder never send the same
segment at once. The token, random per :class:`~._spool.Spool`, tells a process from an
earlier one with the same pid (PID 1 in every container, reused pids).
:func:`recover_stale_claims` renames the claims of processes that no longer run back to their
segment names, for a later replay.

Blocking disk I/O. Thread-safe: no shared state; a claim two processes recover at once is
renamed back once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["claimed_name", "recover_stale_claims"]

_CLAIM = ".claimed-"


def claimed_name(segment: Path, token: str) -> Path:
    """The name ``segment`` takes while this process (with ``token``) replays it."""
    return segment.with_name(f"{segment.name}{_CLAIM}{os.getpid()}-{token}")


def recover_stale_claims(folder: Path, own_token: str) -> int:
    """Give back segments in ``folder`` claimed by processes that no longer run.

    ``own_token`` is the claiming :class:`~._spool.Spool`'s token: claims with this process's
    pid but another token were left by an earlier process. Returns how many were given back
    (``0`` when the folder does not exist).
    """
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    recovered = 0
    for name in names:
        base, sep, owner = name.rpartition(_CLAIM)
        pid_text, _, token = owner.partition("-")
        if not sep or not base or not pid_text.isdigit():
            continue
        if not _claim_is_stale(int(pid_text), token, own_token):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder / name, folder / base)
            recovered += 1
    return recovered


def _claim_is_stale(pid: int, token: str, own_token: str) -> bool:
    """Whether a claim by (``pid``, ``token``) was left by a process that no longer runs.

    A claim carrying this process's pid is ours only if it carries our token too: otherwise
    an earlier process with the same pid (PID 1 in a restarted container, a reused pid) left
    it. A claim of another pid is live while that pid runs.
    """
    if pid == os.getpid():
        return token != own_token
    return not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
