"""The failure folder: atomic segments, claims, size cap, dead letters."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from ecs_metrics_handler._dead_letter import DeadLetter
from ecs_metrics_handler._segment_file import ReplayPolicy
from ecs_metrics_handler._spool import Spool, SpoolFormatError, read_items

_ID = "AAAAAAAAAAAA"  # the shape of a handler's id prefix


def _spool(folder: Path, **kwargs: Any) -> Spool:
    """A spool whose replay policy owns the index prefix ``m`` of :func:`_pair`."""
    return Spool(folder, policy=ReplayPolicy.of_handler("m"), **kwargs)


def _pair(i: int, index: str = "m-2026.11.28") -> bytes:
    return (
        orjson.dumps({"create": {"_index": index, "_id": f"{_ID}{i:x}"}})
        + b"\n"
        + orjson.dumps({"n": i})
        + b"\n"
    )


def test_segment_is_bulk_ndjson_that_reads_back_item_by_item(tmp_path: Path) -> None:
    spool = _spool(tmp_path / "spool")
    items = [_pair(i) for i in range(3)]
    assert spool.write_segment(items)
    (segment,) = spool.segments()
    assert ":" not in segment.name
    assert segment.name.startswith("segment-") and segment.name.endswith(".ndjson")
    assert read_items(segment) == items
    lines = segment.read_bytes().splitlines()
    assert orjson.loads(lines[0]) == {"create": {"_index": "m-2026.11.28", "_id": f"{_ID}0"}}


def test_folder_and_files_are_private(tmp_path: Path) -> None:
    spool = _spool(tmp_path / "spool")
    spool.write_segment([_pair(1)])
    assert stat.S_IMODE(os.stat(tmp_path / "spool").st_mode) == 0o700
    (segment,) = spool.segments()
    assert stat.S_IMODE(os.stat(segment).st_mode) == 0o600


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.write_segment([_pair(1)])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_segments_are_listed_oldest_first(tmp_path: Path) -> None:
    ticks = iter([1000.0, 2000.0, 1500.0])
    spool = _spool(tmp_path, clock=lambda: next(ticks))
    for i in range(3):
        spool.write_segment([_pair(i)])
    firsts = [read_items(p)[0] for p in spool.segments()]
    assert firsts == [_pair(0), _pair(2), _pair(1)]


def test_write_over_the_size_cap_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    item = _pair(1)
    spool = _spool(tmp_path, max_bytes=len(item) * 2)
    assert spool.write_segment([item])
    assert spool.write_segment([item])
    assert not spool.write_segment([item])
    assert len(spool.segments()) == 2
    assert spool.size() == len(item) * 2


def test_claim_done_deletes_and_frees_space(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.write_segment([_pair(1), _pair(2)])
    claim = spool.claim_oldest()
    assert claim is not None and claim.items == [_pair(1), _pair(2)]
    assert spool.segments() == []  # claimed segments are not offered twice
    claim.done()
    assert list(tmp_path.iterdir()) == []
    assert spool.size() == 0


def test_claim_release_puts_back_only_what_is_left_under_the_same_name(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.write_segment([_pair(1), _pair(2), _pair(3)])
    (name,) = [p.name for p in spool.segments()]
    claim = spool.claim_oldest()
    assert claim is not None
    claim.release([_pair(3)])
    (segment,) = spool.segments()
    assert segment.name == name
    assert read_items(segment) == [_pair(3)]


def test_claims_of_dead_processes_are_given_back(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.write_segment([_pair(1)])
    (segment,) = spool.segments()
    os.rename(segment, segment.with_name(segment.name + ".claimed-999999999"))
    assert spool.segments() == []
    assert spool.recover_stale_claims() == 1
    assert [p.name for p in spool.segments()] == [segment.name]


def test_a_file_that_is_not_bulk_ndjson_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "segment-20260101T000000.000000Z-1-000001.ndjson").write_bytes(b'{"a":1}\n')
    spool = _spool(tmp_path)
    assert spool.claim_oldest() is None
    assert [p.name for p in tmp_path.iterdir()] == [
        "segment-20260101T000000.000000Z-1-000001.ndjson.invalid"
    ]


def test_read_items_rejects_odd_line_counts(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(_pair(1) + b'{"create":{}}\n')
    with pytest.raises(SpoolFormatError):
        read_items(path)


def test_dead_letters_carry_reason_status_and_document(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    error = {"type": "document_parsing_exception", "reason": "bad value"}
    spool.write_dead_letters(
        [
            DeadLetter("refused by the cluster", status=400, error=error, item=_pair(7)),
            DeadLetter(
                "invalid metric: no name", record={"logger": "app", "payload": {"value": 1}}
            ),
        ]
    )
    (path,) = tmp_path.glob("dead-letter-*.ndjson")
    first, second = (orjson.loads(line) for line in path.read_bytes().splitlines())
    assert first["status"] == 400 and first["error"] == error
    assert (first["index"], first["id"], first["document"]) == ("m-2026.11.28", f"{_ID}7", {"n": 7})
    assert second["reason"] == "invalid metric: no name"
    assert second["record"]["payload"] == {"value": 1}
    assert spool.segments() == []  # dead letters are never offered for replay


def test_what_is_not_a_regular_file_under_a_segment_name_is_skipped_without_blocking(
    tmp_path: Path,
) -> None:
    spool = _spool(tmp_path)
    (tmp_path / "segment-00000000T000000.000000Z-1-000001.ndjson").mkdir()
    os.mkfifo(tmp_path / "segment-00000000T000000.000000Z-1-000002.ndjson")
    (tmp_path / "segment-00000000T000000.000000Z-1-000003.ndjson").symlink_to("/etc/passwd")
    spool.write_segment([_pair(7)])
    claim = spool.claim_oldest()  # would hang forever in open() on the FIFO
    assert claim is not None and claim.items == [_pair(7)]
    assert sorted(n[-13:] for n in spool.unreadable) == [
        "000001.ndjson",
        "000002.ndjson",
        "000003.ndjson",
    ]
    claim.done()
    assert spool.claim_oldest() is None


def test_a_claim_left_by_an_earlier_process_with_our_pid_is_recovered(tmp_path: Path) -> None:
    """PID 1 in a restarted container, or any reused pid: the token tells them apart."""
    spool = _spool(tmp_path)
    spool.write_segment([_pair(1)])
    (segment,) = spool.segments()
    os.rename(segment, segment.with_name(f"{segment.name}.claimed-{os.getpid()}-0000dead"))
    assert spool.segments() == []
    assert spool.recover_stale_claims() == 1
    assert spool.segments() == [segment]


def test_our_own_live_claim_is_not_recovered(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.write_segment([_pair(1)])
    claim = spool.claim_oldest()
    assert claim is not None
    assert spool.recover_stale_claims() == 0
    assert _spool(tmp_path).recover_stale_claims() == 1  # another Spool: another token


def test_dead_letters_count_against_the_cap(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_bytes=2000)
    letters = [DeadLetter("refused", status=400, item=_pair(i)) for i in range(5)]
    assert spool.write_dead_letters(letters)
    assert not spool.write_dead_letters([DeadLetter("x", item=_pair(0))] * 50)
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 2000
    assert not spool.write_segment([_pair(0)] * 50)


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = _spool(tmp_path)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        spool.write_segment([_pair(1)])
    assert list(tmp_path.iterdir()) == []
    assert spool.size() == 0


def test_a_planted_symlink_at_a_temporary_name_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even when an attacker guesses the temporary name, the write refuses to follow it."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr("ecs_metrics_handler._atomic_file.secrets.token_hex", lambda n=8: "guessed")
    spool = Spool(folder, clock=lambda: 0.0)
    name = f"segment-19700101T000000.000000Z-{os.getpid()}-000001.ndjson"
    (folder / f".tmp-guessed-{name}").symlink_to(victim)
    with pytest.raises(OSError):
        spool.write_segment([_pair(1)])
    assert victim.read_bytes() == b"precious"
    assert not (folder / name).exists()


@pytest.mark.parametrize(
    "payload",
    [
        {1: "non-string key"},
        {"big": 2**80},
        {"s": "lone \udc80 surrogate"},
        "nested",
        "bad-repr",
    ],
)
def test_a_dead_letter_is_written_whatever_the_record_holds(
    tmp_path: Path, payload: object
) -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    if payload == "nested":
        deep: list[object] = []
        for _ in range(300):
            deep = [deep]
        payload = {"deep": deep}
    elif payload == "bad-repr":
        payload = {"obj": BadRepr()}
    spool = _spool(tmp_path)
    assert spool.write_dead_letters([DeadLetter("invalid metric", record={"payload": payload})])
    (dead,) = tmp_path.glob("dead-letter-*.ndjson")
    entry = orjson.loads(dead.read_bytes())
    assert entry["reason"] == "invalid metric" and "payload" in entry["record"]


def test_quarantine_keeps_the_documents_and_the_reason(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    path = spool.quarantine([_pair(1), _pair(2)], "HTTP 400: bad request")
    assert read_items(path) == [_pair(1), _pair(2)]
    assert path.with_name(path.name + ".reason").read_text().strip() == "HTTP 400: bad request"
    assert spool.segments() == []
