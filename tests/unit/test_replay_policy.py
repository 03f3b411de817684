"""What a replay sends from the failure folder: only the handler's own creates into its own indices.

A segment is data anyone who can write the folder may have planted. :class:`ReplayPolicy` is
the pure rule (an action line exactly as the handler writes it, into an index or data stream
the handler's naming options produce, or one a person allowed explicitly); the spool
quarantines everything else with the reason, and neither replay ever sends it.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_metrics_handler import ElasticECSHandler, metric, replay
from ecs_metrics_handler._segment_file import HANDLER_ID, ReplayPolicy, read_items, vet_items
from ecs_metrics_handler._serialize import action_line, bulk_pair
from ecs_metrics_handler._spool import Spool
from ecs_metrics_handler.cli import main
from ecs_metrics_handler.testing import FakeCluster

_ID = "AAAAAAAAAAAA"
UNIT = ReplayPolicy.of_handler("unit")


def _item(action: object, source: object = None) -> bytes:
    return (
        orjson.dumps(action) + b"\n" + orjson.dumps({"n": 1} if source is None else source) + b"\n"
    )


def _own(index: str = "unit-2026.11.28", doc_id: str = f"{_ID}1f") -> bytes:
    return bulk_pair(index, doc_id, b'{"n":1}')


# ---------------------------------------------------------------- the pure rule


@pytest.mark.parametrize(
    "index", ["unit", "unit-2026", "unit-2026.11", "unit-2026.11.28", "unit-1999.01.04"]
)
def test_every_name_the_prefix_produces_is_owned(index: str) -> None:
    assert UNIT.owns(index)
    assert UNIT.verdict(_own(index)) is None


@pytest.mark.parametrize(
    "index",
    [
        "billing-ledger",
        "units",
        "unit2",
        "unit-",
        "unit-x",
        "unit-2026.11.28-extra",
        "unit-2026.1.28",
        "unit-*",
        "Unit-2026",
        "other-unit-2026",
        ".ds-unit-2026.11.28-000001",
    ],
)
def test_names_the_prefix_does_not_produce_are_not_owned(index: str) -> None:
    assert not UNIT.owns(index)
    reason = UNIT.verdict(_own(index))
    assert reason is not None and "not an index this handler writes" in reason


def test_a_data_stream_owns_its_name_only() -> None:
    policy = ReplayPolicy.of_handler("python_metrics", data_stream="metrics-shop-prod")
    assert policy.owns("metrics-shop-prod")
    assert not policy.owns("metrics-shop-prod-2026.11.28")
    assert not policy.owns("python_metrics-2026.11.28")


def test_allowed_patterns_widen_the_indices_only() -> None:
    policy = ReplayPolicy.of_handler("unit", allow=["legacy-*"])
    assert policy.verdict(_own("legacy-2020.01.01")) is None
    assert policy.verdict(_own("billing-ledger")) is not None
    index_action = _item({"index": {"_index": "legacy-1", "_id": f"{_ID}1"}})
    assert "'index'" in (policy.verdict(index_action) or "")


@pytest.mark.parametrize(
    ("action", "why"),
    [
        ({"index": {"_index": "billing-ledger", "_id": "42"}}, "action 'index'"),
        ({"index": {"_index": "unit-2026.11.28", "_id": f"{_ID}1"}}, "action 'index'"),
        ({"update": {"_index": "unit-2026.11.28", "_id": f"{_ID}1"}}, "action 'update'"),
        ({"delete": {"_index": "unit-2026.11.28", "_id": f"{_ID}1"}}, "action 'delete'"),
        ({"create": {"_index": "unit-2026.11.28", "_id": "42"}}, "_id '42'"),
        ({"create": {"_index": "unit-2026.11.28"}}, "without an _id"),
        ({"create": {"_index": "unit-2026.11.28", "_id": 1}}, "_id 1"),
        (
            {"create": {"_index": "unit-2026.11.28", "_id": f"{_ID}1", "pipeline": "p"}},
            "'pipeline'",
        ),
        (
            {"create": {"_index": "unit-2026.11.28", "_id": f"{_ID}1", "routing": "r"}},
            "'routing'",
        ),
        (
            {"create": {"_index": "unit-2026.11.28", "_id": f"{_ID}1", "require_alias": True}},
            "'require_alias'",
        ),
        ({"create": {"_id": f"{_ID}1"}}, "without an _index"),
        ({"create": {"_index": "unit", "_id": f"{_ID}1"}, "index": {}}, "one action"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_what_the_handler_never_writes_is_refused_with_the_reason(action: object, why: str) -> None:
    reason = UNIT.verdict(_item(action))
    assert reason is not None and why in reason, reason


@pytest.mark.parametrize(
    "action",
    [
        # the same JSON as the handler's line, not the same bytes: a parser could read it otherwise
        b'{"create":{"_index":"unit-2026.11.28","_index":"billing-ledger","_id":"AAAAAAAAAAAA1"}}',
        b'{"create":{"_index":"billing-ledger","_index":"unit-2026.11.28","_id":"AAAAAAAAAAAA1"}}',
        b'{"create": {"_index":"unit-2026.11.28","_id":"AAAAAAAAAAAA1"}}',
        b'{"create":{"_id":"AAAAAAAAAAAA1","_index":"unit-2026.11.28"}}',
        b'{"create":{"_index":"unit\\u002d2026.11.28","_id":"AAAAAAAAAAAA1"}}',
        b'{"create":{"_index":"unit-2026.11.28","_id":"AAAAAAAAAAAA1"}} ',
    ],
)
def test_an_action_line_must_be_byte_for_byte_what_the_handler_writes(action: bytes) -> None:
    reason = UNIT.verdict(action + b'\n{"n":1}\n')
    assert reason is not None


@pytest.mark.parametrize("source", [b"[1]", b"not json", b'"text"', b"null"])
def test_a_source_line_must_be_a_json_object(source: bytes) -> None:
    reason = UNIT.verdict(action_line("unit-2026.11.28", f"{_ID}1") + source + b"\n")
    assert reason is not None and "source line" in reason


# -- hypothesis: arbitrary action lines are either exactly a handler create, or refused

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
_indices = st.sampled_from(
    ["unit", "unit-2026.11.28", "unit-2026", "billing-ledger", "unit-x", "units", ""]
) | st.text(max_size=20)
_ids = st.sampled_from([f"{_ID}1", f"{_ID}ff", "42", "", _ID, f"{_ID}G", f"{_ID}{'f' * 17}"]) | (
    st.text("ABCxyz019_-", min_size=10, max_size=14).map(lambda s: s + "a")
)
_meta = st.fixed_dictionaries(
    {},
    optional={
        "_index": _indices | _json,
        "_id": _ids | _json,
        "pipeline": _json,
        "routing": _json,
        "require_alias": _json,
        "if_seq_no": _json,
        "version": _json,
    },
)
_sources = st.dictionaries(st.text(max_size=5), _json, max_size=3) | _json
_actions = st.one_of(
    # near misses of a handler line (and, often enough, exactly one)
    st.builds(lambda index, doc_id: {"create": {"_index": index, "_id": doc_id}}, _indices, _ids),
    st.builds(lambda kind, meta: {kind: meta}, st.sampled_from(["create", "index"]), _meta),
    st.builds(
        lambda index, doc_id: {"create": {"_index": index, "_id": doc_id}},
        st.sampled_from(["unit", "unit-2026.11.28", "billing-ledger", "unit-2026.11.28 "]),
        st.sampled_from([f"{_ID}1", f"{_ID}ff", "42", f"{_ID}F"]),
    ),
    st.dictionaries(
        st.sampled_from(["create", "index", "update", "delete"]) | st.text(max_size=6),
        _meta | _json,
        min_size=1,
        max_size=2,
    ),
    _json,
)


def _exactly_a_handler_create(action: bytes, policy: ReplayPolicy) -> bool:
    try:
        parsed = orjson.loads(action)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(parsed, dict) or list(parsed) != ["create"]:
        return False
    meta = parsed["create"]
    if not isinstance(meta, dict) or sorted(meta) != ["_id", "_index"]:
        return False
    index, doc_id = meta["_index"], meta["_id"]
    return (
        isinstance(index, str)
        and isinstance(doc_id, str)
        and policy.owns(index)
        and HANDLER_ID.fullmatch(doc_id) is not None
        and action_line(index, doc_id) == action + b"\n"
    )


@settings(max_examples=400, deadline=None)
@given(action=_actions, pretty=st.sampled_from([False, False, False, True]), source=_sources)
def test_arbitrary_action_lines_are_exactly_a_handler_create_or_quarantined(
    action: object, pretty: bool, source: object
) -> None:
    raw = orjson.dumps(action, option=orjson.OPT_INDENT_2 if pretty else 0).replace(b"\n", b"")
    item = raw + b"\n" + orjson.dumps(source) + b"\n"
    accepted, refused = vet_items([item], UNIT)
    assert len(accepted) + len(refused) == 1
    if accepted:
        assert _exactly_a_handler_create(raw, UNIT) and isinstance(source, dict)
    else:
        ((kept, reason),) = refused
        assert kept == item and reason


def test_an_id_less_create_is_accepted_only_from_a_time_series_handler() -> None:
    """Aggregates for time-series indices carry no _id (the cluster derives it)."""
    item = b'{"create":{"_index":"unit-2026.11.28"}}\n{"m":1}\n'
    assert vet_items([item], UNIT)[0] == []
    time_series = ReplayPolicy.of_handler("unit", server_ids=True)
    assert vet_items([item], time_series) == ([item], [])
    other = b'{"create":{"_index":"billing"}}\n{"m":1}\n'
    assert vet_items([other], time_series)[0] == []
    spaced = b'{"create": {"_index":"unit-2026.11.28"}}\n{"m":1}\n'
    assert vet_items([spaced], time_series)[0] == []


def test_an_aggregate_id_is_one_the_handler_writes() -> None:
    prefix = base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")
    item = bulk_pair("unit-2026.11.28", f"{prefix}~19ac8f3e400.0.{'ab' * 9}", b'{"m":1}')
    assert vet_items([item], UNIT) == ([item], [])
    wrong = bulk_pair("unit-2026.11.28", f"{prefix}~19ac8f3e400.0.{'ab' * 8}", b'{"m":1}')
    assert vet_items([wrong], UNIT)[0] == []


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**63),
    index=st.sampled_from(["unit", "unit-2026", "unit-2026.11", "unit-2026.11.28"]),
    data=st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=3),
)
def test_every_create_the_handler_writes_is_accepted(
    seq: int, index: str, data: dict[str, int]
) -> None:
    prefix = base64.urlsafe_b64encode(os.urandom(9)).decode("ascii")  # as the handler makes it
    item = bulk_pair(index, f"{prefix}{seq:x}", orjson.dumps(data))
    assert vet_items([item], UNIT) == ([item], [])


@pytest.mark.parametrize("target", [{"es_index_name": "unit"}, {"data_stream": "metrics-a-b"}])
def test_what_a_real_handler_spools_passes_its_own_policy(
    logger: logging.Logger, tmp_path: Path, target: dict[str, Any]
) -> None:
    cluster = FakeCluster()
    cluster.down = True
    handler = ElasticECSHandler(
        client=cluster, flush_failure_folder=str(tmp_path), max_retries=0, **target
    )
    logger.addHandler(handler)
    for i in range(30):
        logger.info("m", extra=metric("m", i))
    handler.flush(5)
    handler.close()
    items = [item for p in tmp_path.glob("segment-*.ndjson") for item in read_items(p)]
    assert len(items) == 30
    policy = ReplayPolicy.of_handler(
        target.get("es_index_name", "python_metrics"), data_stream=target.get("data_stream")
    )
    assert vet_items(items, policy) == (items, [])


# ---------------------------------------------------------------- through the folder


_PLANTED = _item({"index": {"_index": "billing-ledger", "_id": "42"}}, {"amount": -1_000_000})


def _plant(folder: Path, *items: bytes, n: int = 1) -> Path:
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"segment-00000000T000000.000000Z-1-{n:06d}.ndjson"
    path.write_bytes(b"".join(items))
    path.chmod(0o600)
    return path


def _quarantined(folder: Path) -> list[tuple[list[bytes], str]]:
    return [
        (read_items(p), p.with_name(p.name + ".reason").read_text())
        for p in sorted(folder.glob("quarantined-*.ndjson"))
    ]


def test_a_planted_segment_is_quarantined_with_the_reason_and_the_legit_part_still_replays(
    tmp_path: Path,
) -> None:
    legit = _own()
    _plant(tmp_path, _PLANTED, legit)
    spool = Spool(tmp_path, policy=UNIT)
    claim = spool.claim_oldest()
    assert claim is not None and claim.items == [legit]
    assert claim.path.read_bytes() == legit  # the claim holds only what may be sent
    ((kept, reason),) = _quarantined(tmp_path)
    assert kept == [_PLANTED]
    assert "action 'index'" in reason and "billing-ledger" in reason
    assert spool.untrusted == 1


def test_a_segment_with_nothing_to_send_is_quarantined_whole_and_removed(tmp_path: Path) -> None:
    segment = _plant(tmp_path, _PLANTED)
    spool = Spool(tmp_path, policy=UNIT)
    assert spool.claim_oldest() is None
    assert not segment.exists()
    assert [kept for kept, _ in _quarantined(tmp_path)] == [[_PLANTED]]


def test_replay_never_sends_a_planted_action_and_counts_it(tmp_path: Path) -> None:
    _plant(tmp_path, _PLANTED, _own(), n=1)
    _plant(tmp_path, _item({"delete": {"_index": "unit-2026.11.28", "_id": f"{_ID}1f"}}), n=2)
    cluster = FakeCluster()
    result = replay(tmp_path, client=cluster, es_index_name="unit")
    assert (result.indexed, result.untrusted, result.left) == (1, 2, 0)
    assert list(cluster.indices) == ["unit-2026.11.28"]
    assert any("quarantined" in e for e in result.errors)


def test_replay_uses_the_handler_naming_options_it_is_given(tmp_path: Path) -> None:
    """A folder of prefix ``unit`` replayed with the default prefix: nothing is sent."""
    _plant(tmp_path, _own())
    cluster = FakeCluster()
    result = replay(tmp_path, client=cluster)
    assert (result.indexed, result.untrusted) == (0, 1)
    assert cluster.documents() == []


def test_the_command_line_widens_the_indices_only_with_allow_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _plant(tmp_path, _own("legacy-2020.01.01"))
    base = ["replay", str(tmp_path), "--hosts", "http://127.0.0.1:9", "--index", "unit"]
    assert main(base) == 1  # quarantined: not complete
    out = capsys.readouterr()
    assert "1 quarantined" in out.out and "legacy-2020.01.01" in out.err
    (quarantine,) = tmp_path.glob("quarantined-*.ndjson")
    quarantine.rename(tmp_path / "segment-00000000T000000.000000Z-1-000009.ndjson")
    # the same line, allowed: it now goes on to the (unreachable) cluster and stays for later
    assert main([*base, "--allow-index", "legacy-*"]) == 1
    assert "0 quarantined (0 not written by the handler), 1 left" in capsys.readouterr().out


def test_the_handler_never_sends_a_planted_action_and_counts_it(
    logger: logging.Logger, tmp_path: Path
) -> None:
    """The handler's automatic replay: the planted line stays in quarantine, the rest arrives."""
    legit = _own()
    _plant(tmp_path, _PLANTED, legit)
    cluster = FakeCluster()
    handler = ElasticECSHandler(
        client=cluster,
        es_index_name="unit",
        flush_failure_folder=str(tmp_path),
        flush_frequency_in_sec=0.05,
    )
    logger.addHandler(handler)
    logger.info("m", extra=metric("m", 1))
    deadline = time.monotonic() + 10
    while handler.stats()["replayed"] < 1 and time.monotonic() < deadline:
        handler.flush(0.1)  # waits on the handler, not on the clock
    handler.close()
    stats = handler.stats()
    assert (stats["replayed"], stats["untrusted"], stats["shipped"]) == (1, 1, 1)
    assert "billing-ledger" not in cluster.indices
    assert len(cluster.documents("unit-2026.11.28")) == 1
    assert [kept for kept, _ in _quarantined(tmp_path)] == [[_PLANTED]]


def test_the_demo_offline_suggests_a_replay_that_sends_everything_it_spooled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"
    assert main(["demo", "--offline", "--folder", str(folder), "--index", "demo-x"]) == 0
    out = capsys.readouterr().out
    (suggested,) = [line for line in out.splitlines() if "replay them with" in line]
    assert f"replay {folder} --index demo-x --hosts URL" in suggested
    cluster = FakeCluster()
    result = replay(folder, client=cluster, es_index_name="demo-x")
    assert result.indexed > 0 and (result.untrusted, result.left) == (0, 0)
