"""The check command's decisions over scripted cluster answers (the real ones: integration)."""

from __future__ import annotations

from typing import Any

from ecs_metrics_handler._check import Finding, _check
from ecs_metrics_handler._config import HandlerOptions

_INFO = {"cluster_name": "c1", "version": {"number": "9.5.4"}}


def _run(answers: dict[str, tuple[int, Any] | Exception], **options: Any) -> dict[str, Finding]:
    def request(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        answer = answers[path.split("?", maxsplit=1)[0]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    found = _check(HandlerOptions.from_kwargs(**options), request)  # type: ignore[arg-type]
    return {f.topic: f for f in found}


def test_a_writer_with_every_privilege_and_the_template_blocks_nothing() -> None:
    """Reachable, authenticated, may write, template installed."""
    found = _run(
        {
            "/": (200, _INFO),
            "/_security/_authenticate": (
                200,
                {"username": "u", "authentication_type": "realm",
                 "authentication_realm": {"name": "file"}},
            ),
            "/_security/user/_has_privileges": (
                200, {"index": {"m-*": {"create_doc": True, "create_index": True}}},
            ),
            "/_index_template/m-ecs-metrics": (200, {}),
        },
        es_index_name="m",
    )  # fmt: skip
    assert not any(f.blocking for f in found.values())
    assert found["reachable"].text == "yes: Elasticsearch 9.5.4 (cluster 'c1')"
    assert found["privileges"].text == "may write to m-* (create_doc, create_index)"
    assert found["index template"].text == "m-ecs-metrics: installed"


def test_a_missing_privilege_blocks_and_is_named() -> None:
    """create_index denied: delivery to a new dated index would fail."""
    found = _run(
        {
            "/": (200, _INFO),
            "/_security/_authenticate": (200, {"username": "u"}),
            "/_security/user/_has_privileges": (
                200,
                {"index": {"m-*": {"create_doc": True, "create_index": False}},
                 "cluster": {"manage_index_templates": False}},
            ),
            "/_index_template/m-ecs-metrics": (404, {}),
        },
        es_index_name="m",
        install_template=True,
    )  # fmt: skip
    assert found["privileges"].blocking
    assert "create_index on m-*" in found["privileges"].text
    assert "cluster manage_index_templates" in found["privileges"].text
    assert not found["index template"].blocking
    assert "installed when the handler starts" in found["index template"].text


def test_refused_credentials_and_an_absent_cluster_block() -> None:
    """401 on the first request; a connection error."""
    refused = _run({"/": (401, {"error": {"reason": "unable to authenticate"}})})
    assert refused["authentication"].blocking
    assert "unable to authenticate" in refused["authentication"].text
    absent = _run({"/": ConnectionError("refused")})
    assert absent["reachable"].blocking
    assert absent["reachable"].text.startswith("no: ConnectionError")


def test_no_security_is_said_and_blocks_nothing() -> None:
    """A cluster without security: anyone may write."""
    found = _run(
        {
            "/": (200, _INFO),
            "/_security/_authenticate": (400, {"error": {"reason": "no handler for _security"}}),
            "/_index_template/python_metrics-ecs-metrics": (404, {}),
        }
    )
    assert "without security" in found["authentication"].text
    assert not any(f.blocking for f in found.values())
