"""Reading a segment of the failure folder without blocking on it or trusting it.

The folder is a trust boundary: anything may appear under a segment name, written by anyone
who can write the folder. :func:`read_items` opens without following a symlink and without
waiting on a FIFO, refuses what is not a regular file, and checks that the content is bulk
NDJSON (action and source line pairs). :func:`vet_items` then sorts the pairs with a
:class:`ReplayPolicy`: only what the handler itself writes is ever sent again, a ``create``
action line byte for byte as :func:`~._serialize.action_line` writes it, into an index or
data stream the handler's naming options produce, with an id of the form the handler gives;
everything else is for the caller to quarantine with the reason. Blocking disk I/O on regular
files only (:func:`read_items`); the rest is pure.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from ._config import DEFAULT_INDEX_NAME
from ._serialize import action_line

__all__ = [
    "HANDLER_ID",
    "ReplayPolicy",
    "SpoolFormatError",
    "UnreadableSegmentError",
    "read_items",
    "refusal_text",
    "vet_items",
]


class SpoolFormatError(ValueError):
    """A segment file is not bulk NDJSON made of action/source line pairs."""


#: flags for opening a segment to read: never follow a symlink, never wait on a FIFO
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)

#: The ids the handler writes: its id prefix (12 characters of URL-safe base64 of 9 random
#: bytes, made in ``ElasticECSHandler._setup_pipeline``) then a sequence number in lower-case
#: hex (at most 64 bits; see ``_batching.build_batch``).
HANDLER_ID: Final = re.compile(
    # a document's id: the handler's prefix and its sequence number; an aggregate's (see
    # _aggregate): the prefix, "~", the interval's start in ms, its part, the series digest
    r"[A-Za-z0-9_-]{12}(?:[0-9a-f]{1,16}|~[0-9a-f]{1,16}\.[0-9]{1,9}\.[0-9a-f]{18})"
)
#: The date suffixes :class:`~._index.IndexNamer` appends, whatever the frequency.
_DATE_SUFFIX: Final = r"(?:-[0-9]{4}(?:\.[0-9]{2}(?:\.[0-9]{2})?)?)?"
#: How many per-item reasons a quarantine's ``.reason`` file lists before summing up the rest.
_REASONS_LISTED: Final = 20


class UnreadableSegmentError(OSError):
    """A file under a segment name that is not a regular file (a directory, FIFO, socket)."""


def read_items(path: str | os.PathLike[str]) -> list[bytes]:
    """Read a segment: its documents as bulk pairs (action line + source line, ``\\n`` each).

    Never blocks on what is not a regular file: a FIFO, a socket, a device or a directory
    under a segment name raises :class:`UnreadableSegmentError`, a symlink ``OSError``.
    Raises :class:`SpoolFormatError` when the content is not pairs of lines. Says nothing
    about whether a pair may be sent: that is :func:`vet_items`'s.
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
    return [
        action + b"\n" + source + b"\n"
        for action, source in zip(lines[0::2], lines[1::2], strict=True)
    ]


@dataclass(frozen=True, slots=True)
class ReplayPolicy:
    """Which spooled bulk pairs a replay may send: those the handler itself writes.

    ``prefixes`` own every name the handler's index naming makes of them (the prefix itself,
    ``-YYYY``, ``-YYYY.MM``, ``-YYYY.MM.DD``: every frequency, so a changed frequency still
    replays); ``names`` are owned exactly (a data stream); ``allow`` holds ``fnmatch``
    patterns of further indices a person allowed explicitly (``replay --allow-index``). The
    action must still be exactly a handler-written ``create`` there. Immutable, pure,
    thread-safe.
    """

    prefixes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    #: also accept a ``create`` without ``_id`` (what a handler with
    #: ``index_mode="time_series"`` writes: the cluster derives the id)
    server_ids: bool = False
    _owned: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = [re.escape(name) for name in self.names]
        dated = [re.escape(prefix) + _DATE_SUFFIX for prefix in self.prefixes]
        patterns = [fnmatch.translate(pattern) for pattern in self.allow]
        either = "|".join(f"(?:{p})" for p in (*exact, *dated, *patterns)) or "(?!)"
        object.__setattr__(self, "_owned", re.compile(either, re.DOTALL))

    @classmethod
    def of_handler(
        cls,
        es_index_name: str = DEFAULT_INDEX_NAME,
        data_stream: str | None = None,
        allow: Iterable[str] = (),
        server_ids: bool = False,
    ) -> ReplayPolicy:
        """The policy of a handler with these naming options (its data stream, else prefix);
        ``server_ids`` for a handler writing time-series indices."""
        if data_stream is not None:
            return cls(names=(data_stream,), allow=tuple(allow), server_ids=server_ids)
        return cls(prefixes=(es_index_name,), allow=tuple(allow), server_ids=server_ids)

    def owns(self, index: str) -> bool:
        """Whether the handler's naming produces ``index``, or a person allowed it."""
        return self._owned.fullmatch(index) is not None

    def verdict(self, item: bytes) -> str | None:
        """``None`` when ``item`` (action line + source line) may be sent, else why not."""
        action, _, source = item.partition(b"\n")
        try:
            parsed = orjson.loads(action)
        except orjson.JSONDecodeError:
            return f"action line is not JSON: {action[:80]!r}"
        # The handler's own lines, nearly all of them: one comparison of bytes decides.
        meta = parsed.get("create") if type(parsed) is dict and len(parsed) == 1 else None
        if self.server_ids and type(meta) is dict and len(meta) == 1:  # time-series aggregate
            index = meta.get("_index")
            if (
                type(index) is str
                and self.owns(index)
                and action == b'{"create":{"_index":' + orjson.dumps(index) + b"}}"
                and type(_loads_or_none(source)) is dict
            ):
                return None  # the cluster derives its _id: a replay is a 409, not a copy
        if type(meta) is dict and len(meta) == 2:
            index, doc_id = meta.get("_index"), meta.get("_id")
            if (
                type(index) is str
                and type(doc_id) is str
                and self.owns(index)  # first: keeps others' names out of action_line's cache
                and action + b"\n" == action_line(index, doc_id)
                and HANDLER_ID.fullmatch(doc_id) is not None
                and type(_loads_or_none(source)) is dict
            ):
                return None
        return self._why_not(parsed, action, source)

    def _why_not(self, parsed: object, action: bytes, source: bytes) -> str:
        """The reason :meth:`verdict` gives for a pair that is not a handler's."""
        if not isinstance(parsed, dict):
            return f"action line is not a JSON object: {action[:80]!r}"
        if len(parsed) != 1:
            return f"action line holds {len(parsed)} keys, not one action: {action[:80]!r}"
        ((kind, meta),) = parsed.items()
        if kind != "create":
            return f"action {kind!r} is not 'create': {action[:120]!r}"
        if not isinstance(meta, dict):
            return f"'create' holds no object: {action[:80]!r}"
        index, doc_id = meta.get("_index"), meta.get("_id")
        extra = sorted(set(meta) - {"_index", "_id"})
        if extra:
            return f"parameter {extra[0]!r} is not one the handler writes: {action[:120]!r}"
        if not isinstance(index, str):
            return f"'create' without an _index string: {action[:80]!r}"
        if not self.owns(index):
            return f"index {index!r} is not an index this handler writes"
        if doc_id is None:
            return f"'create' without an _id, not as the handler writes it: {action[:120]!r}"
        if not isinstance(doc_id, str):
            return f"_id {doc_id!r} is not a string"
        if HANDLER_ID.fullmatch(doc_id) is None:
            return f"_id {doc_id!r} is not one the handler writes"
        if action + b"\n" != action_line(index, doc_id):
            return f"action line is not written as the handler writes it: {action[:120]!r}"
        document = _loads_or_none(source)
        if document is None:
            return "source line is not JSON (or null)"
        if not isinstance(document, dict):
            return "source line is not a JSON object"
        # unreachable while this agrees with verdict()'s fast path; refuse, never accept
        return f"not a pair as the handler writes it: {action[:120]!r}"


def _loads_or_none(line: bytes) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def vet_items(
    items: Sequence[bytes], policy: ReplayPolicy
) -> tuple[list[bytes], list[tuple[bytes, str]]]:
    """Split ``items`` into those ``policy`` lets a replay send and ``(item, reason)`` of the
    others, each list in the original order. Pure."""
    accepted: list[bytes] = []
    refused: list[tuple[bytes, str]] = []
    for item in items:
        reason = policy.verdict(item)
        if reason is None:
            accepted.append(item)
        else:
            refused.append((item, reason))
    return accepted, refused


def refusal_text(refused: Sequence[tuple[bytes, str]]) -> str:
    """The ``.reason`` text of a quarantine of ``refused`` items: a summary, then each reason."""
    lines = [
        f"not replayed: {len(refused)} document(s) in the failure folder that this handler "
        "does not write (only its own 'create' lines into its own indices are sent; the "
        "folder is a trust boundary)"
    ]
    lines += [f"document {n}: {why}" for n, (_, why) in enumerate(refused[:_REASONS_LISTED], 1)]
    if len(refused) > _REASONS_LISTED:
        lines.append(f"... and {len(refused) - _REASONS_LISTED} more")
    return "\n".join(lines)
