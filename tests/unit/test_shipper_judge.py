"""Per-item judgement of bulk answers (pure)."""

from __future__ import annotations

import pickle

import pytest

from ecs_metrics_handler._bulk_outcome import ShipError, is_retryable_status, judge


def _item(status: int, error: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    op: dict[str, object] = {"status": status}
    if error:
        op["error"] = error
    return {"create": op}


def test_answer_without_errors_and_one_item_per_document_is_all_done() -> None:
    result = judge({"errors": False, "items": [_item(201)] * 3}, 3)
    assert (result.done, result.retry, result.dead) == (3, [], [])


@pytest.mark.parametrize(
    "body",
    [{}, {"errors": False}, {"items": [_item(201)] * 3}, {"errors": False, "items": "x"}],
    ids=["empty", "no-items", "no-errors-flag", "items-not-a-list"],
)
def test_an_answer_that_is_not_a_bulk_answer_acknowledges_nothing(body: dict[str, object]) -> None:
    result = judge(body, 3)
    assert (result.done, result.retry, result.dead) == (0, [0, 1, 2], [])


def test_a_short_answer_without_errors_retries_the_missing_items() -> None:
    result = judge({"errors": False, "items": [_item(201)]}, 3)
    assert (result.done, result.retry) == (1, [1, 2])


def test_malformed_items_are_retried_not_counted() -> None:
    body = {"errors": True, "items": [_item(201), "junk", {"create": {"status": "x"}}, {}]}
    result = judge(body, 4)
    assert (result.done, result.retry, result.dead) == (1, [1, 2, 3], [])


def test_each_item_is_sorted_by_its_status() -> None:
    conflict = {
        "type": "document_parsing_exception",
        "reason": "failed to parse field [metrics.value]",
    }
    body = {
        "errors": True,
        "items": [
            _item(201),
            _item(409, {"type": "version_conflict_engine_exception", "reason": "exists"}),
            _item(429, {"type": "es_rejected_execution_exception", "reason": "queue full"}),
            _item(400, conflict),
            _item(503),
            _item(200),
        ],
    }
    result = judge(body, 6)
    assert result.done == 3
    assert result.duplicates == 1
    assert result.retry == [2, 4]
    assert result.dead == [(3, 400, conflict)]


def test_items_missing_from_a_truncated_answer_are_retried() -> None:
    result = judge({"errors": True, "items": [_item(201)]}, 3)
    assert result.done == 1
    assert result.retry == [1, 2]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(None, True), (429, True), (500, True), (503, True), (400, False), (401, False), (413, False)],
)
def test_whole_request_statuses_worth_retrying(status: int | None, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_ship_error_keeps_its_data_through_pickle() -> None:
    err = pickle.loads(pickle.dumps(ShipError("refused", retryable=False, status=401)))
    assert (err.reason, err.retryable, err.status) == ("refused", False, 401)
