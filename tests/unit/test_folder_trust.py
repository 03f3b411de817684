"""The failure folder is a trust boundary: who may write it, and what is never followed there.

Filesystem tests (the suite runs as root in CI, so ``os.chown`` to ``nobody`` works there;
elsewhere the ownership tests are skipped). Whatever is planted in the folder, spooling and
replaying never write through a symlink, and a folder other users can write is refused unless
``flush_failure_folder_allow_insecure`` says otherwise.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from ecs_metrics_handler import ConfigurationError, ElasticECSHandler, metric, replay
from ecs_metrics_handler._segment_file import ReplayPolicy
from ecs_metrics_handler._spool import Spool
from ecs_metrics_handler.cli import main
from ecs_metrics_handler.testing import FakeCluster

_ID = "AAAAAAAAAAAA"  # the shape of the handler's id prefix: 12 characters of urlsafe base64


def _pair(i: int, index: str = "unit-2026.11.28") -> bytes:
    return (
        orjson.dumps({"create": {"_index": index, "_id": f"{_ID}{i:x}"}})
        + b"\n"
        + orjson.dumps({"n": i})
        + b"\n"
    )


def _other_uid() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:  # pragma: no cover - every Debian has nobody
        return 65534


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="chown to another user needs root (CI runs as root)"
)


@pytest.fixture
def private(tmp_path: Path) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    return folder


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "root-owned-victim"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    return victim


# ---------------------------------------------------------------- symlinks planted in the folder


def test_symlinks_at_predictable_temporary_names_leave_the_victim_untouched(
    tmp_path: Path, private: Path
) -> None:
    """The old predictable ``.tmp-<segment>`` names, planted for the next segments: ignored."""
    victim = _victim(tmp_path)
    spool = Spool(private, clock=lambda: 0.0)
    for n in range(1, 4):
        name = f"segment-19700101T000000.000000Z-{os.getpid()}-{n:06d}.ndjson"
        (private / f".tmp-{name}").symlink_to(victim)
    for i in range(3):
        assert spool.write_segment([_pair(i)])
    cluster = FakeCluster()
    result = replay(private, client=cluster, es_index_name="unit")
    assert (result.indexed, result.left) == (3, 0)
    assert victim.read_bytes() == b"precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_a_symlink_at_a_segment_name_is_skipped_and_its_target_untouched(
    logger: logging.Logger, tmp_path: Path, private: Path
) -> None:
    """By the command line replay and by the handler's own replay: never read, never written."""
    victim = _victim(tmp_path)
    link = private / "segment-00000000T000000.000000Z-1-000001.ndjson"
    link.symlink_to(victim)
    Spool(private).write_segment([_pair(1)])
    cluster = FakeCluster()
    result = replay(private, client=cluster, es_index_name="unit")
    assert result.indexed == 1
    assert any(link.name in error and "not a regular file" in error for error in result.errors)
    assert victim.read_bytes() == b"precious\n"
    assert link.is_symlink()

    Spool(private).write_segment([_pair(2)])
    handler = ElasticECSHandler(
        client=cluster, es_index_name="unit", flush_failure_folder=str(private)
    )
    logger.addHandler(handler)
    logger.info("m", extra=metric("m", 1))
    deadline = time.monotonic() + 10
    while handler.stats()["replayed"] < 1 and time.monotonic() < deadline:
        handler.flush(0.1)
    handler.close()
    assert handler.stats()["replayed"] == 1
    assert victim.read_bytes() == b"precious\n"
    assert link.is_symlink()


def test_every_file_opened_in_the_folder_is_exclusive_and_never_follows_symlinks(
    private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes: O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600; reads: O_NOFOLLOW|O_CLOEXEC."""
    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if Path(os.fspath(path)).parent == private:
            opened.append((Path(os.fspath(path)).name, flags, mode))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", spy)
    spool = Spool(private, policy=ReplayPolicy.of_handler("unit"))
    spool.write_segment([_pair(1), _pair(2)])
    claim = spool.claim_oldest()
    assert claim is not None
    claim.release([_pair(2)])
    spool.quarantine([_pair(3)], "why")
    writes = [(n, f, m) for n, f, m in opened if f & os.O_CREAT]
    reads = [(n, f) for n, f, _ in opened if not f & os.O_CREAT]
    assert len(writes) == 4 and reads
    for name, flags, mode in writes:
        assert name.startswith(".tmp-") and len(name) > len(".tmp-") + 16
        assert flags & os.O_EXCL and flags & os.O_NOFOLLOW and flags & os.O_CLOEXEC
        assert not flags & os.O_TRUNC
        assert mode == 0o600
    for _name, flags in reads:
        assert flags & os.O_NOFOLLOW and flags & os.O_CLOEXEC


# ---------------------------------------------------------------- who may write the folder


@pytest.mark.parametrize(
    ("mode", "why"),
    [(0o777, "world-writable"), (0o1777, "world-writable"), (0o770, "group-writable")],
)
def test_a_folder_others_can_write_is_refused_naming_the_option(
    private: Path, mode: int, why: str
) -> None:
    private.chmod(mode)
    with pytest.raises(ConfigurationError) as info:
        ElasticECSHandler(client=FakeCluster(), flush_failure_folder=str(private))
    assert info.value.option == "flush_failure_folder"
    assert why in str(info.value)
    assert "flush_failure_folder_allow_insecure" in str(info.value)


@needs_root
def test_a_folder_owned_by_another_user_is_refused(private: Path) -> None:
    os.chown(private, _other_uid(), -1)
    with pytest.raises(ConfigurationError) as info:
        ElasticECSHandler(client=FakeCluster(), flush_failure_folder=str(private))
    assert info.value.option == "flush_failure_folder"
    assert f"owned by uid {_other_uid()}" in str(info.value)


@needs_root
@pytest.mark.parametrize("kind", ["world-writable", "other owner"])
def test_the_explicit_option_accepts_an_insecure_folder(
    logger: logging.Logger, private: Path, kind: str
) -> None:
    if kind == "world-writable":
        private.chmod(0o777)
    else:
        os.chown(private, _other_uid(), -1)
    cluster = FakeCluster()
    cluster.down = True
    handler = ElasticECSHandler(
        client=cluster,
        es_index_name="unit",
        flush_failure_folder=str(private),
        flush_failure_folder_allow_insecure="true",
        max_retries=0,
    )
    logger.addHandler(handler)
    logger.info("m", extra=metric("m", 1))
    handler.flush(5)
    handler.close()
    assert handler.stats()["spooled"] == 1
    assert len(list(private.glob("segment-*.ndjson"))) == 1


def test_a_folder_made_world_writable_after_start_is_no_longer_written_nor_replayed(
    private: Path,
) -> None:
    spool = Spool(private, policy=ReplayPolicy.of_handler("unit"))
    assert spool.write_segment([_pair(1)])
    private.chmod(0o777)
    with pytest.raises(PermissionError, match="world-writable"):
        spool.write_segment([_pair(2)])
    assert spool.claim_oldest() is None
    assert spool.distrust is not None and "world-writable" in spool.distrust
    assert len(list(private.glob("segment-*.ndjson"))) == 1


def test_the_handler_counts_what_it_cannot_spool_to_a_folder_turned_insecure(
    logger: logging.Logger, private: Path
) -> None:
    cluster = FakeCluster()
    cluster.down = True
    handler = ElasticECSHandler(
        client=cluster, es_index_name="unit", flush_failure_folder=str(private), max_retries=0
    )
    private.chmod(0o777)
    logger.addHandler(handler)
    logger.info("m", extra=metric("m", 1))
    handler.flush(5)
    handler.close()
    stats = handler.stats()
    assert (stats["spooled"], stats["dropped"]) == (0, 1), stats
    assert stats["dropped_reasons"] == {"failure folder unwritable": 1}
    assert list(private.iterdir()) == []


def test_folders_the_handler_creates_are_private_even_with_a_permissive_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        spool = Spool(tmp_path / "a" / "b" / "spool")
        assert spool.write_segment([_pair(1)])
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "spool"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    (segment,) = (tmp_path / "a" / "b" / "spool").glob("segment-*")
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600


def test_replay_refuses_an_insecure_folder_unless_told(tmp_path: Path, private: Path) -> None:
    Spool(private).write_segment([_pair(1)])
    private.chmod(0o777)
    cluster = FakeCluster()
    with pytest.raises(ConfigurationError, match="world-writable"):
        replay(private, client=cluster, es_index_name="unit")
    assert cluster.documents() == []
    result = replay(
        private, client=cluster, es_index_name="unit", flush_failure_folder_allow_insecure=True
    )
    assert result.indexed == 1


def test_the_command_line_refuses_an_insecure_folder_unless_a_flag_allows_it(
    private: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Spool(private).write_segment([_pair(1)])
    private.chmod(0o777)
    argv = ["replay", str(private), "--hosts", "http://127.0.0.1:9", "--index", "unit"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "world-writable" in err and "--allow-insecure-folder" in err
    assert len(list(private.glob("segment-*.ndjson"))) == 1
    for segment in private.glob("segment-*.ndjson"):
        segment.unlink()  # allowed, it would go on to the (unreachable) cluster: keep it quick
    assert main([*argv, "--allow-insecure-folder"]) == 0
    assert "0 segment(s)" in capsys.readouterr().out
