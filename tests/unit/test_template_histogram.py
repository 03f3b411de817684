"""Detecting the ``histogram`` field type while installing the templates (scripted answers).

The refusals are the texts Elasticsearch 8.19.21/9.5.4 and OpenSearch 2.19.6 answered to a
component template mapping ``metrics.histogram`` as ``histogram`` (integ-test-zip builds).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from ecs_metrics_handler import ElasticECSHandler, metric
from ecs_metrics_handler._bulk_outcome import BulkResult, ShipError
from ecs_metrics_handler._dead_letter import refusal_reason
from ecs_metrics_handler._report import Reporter
from ecs_metrics_handler._template_install import TemplateInstaller, lacks_histogram_type
from ecs_metrics_handler._templates import load_templates

ES_REFUSAL = (
    "The mapper type [histogram] declared on field [histogram] does not exist. It might have "
    "been created within a future version or requires a plugin to be installed. Check the "
    "documentation."
)
OS_REFUSAL = "No handler for type [histogram] declared on field [histogram]"


class ClientError(Exception):
    """Like the clients' errors: ``status_code`` and the server's ``body``."""

    def __init__(self, status: int, error_type: str, reason: str) -> None:
        self.status_code = status
        self.body = {"error": {"type": error_type, "reason": f"Failed to parse mapping: {reason}"}}
        super().__init__(status, error_type)


class ScriptedShipper:
    """put_templates answers from a script (None: accepted); records what it was given."""

    def __init__(self, *answers: Exception | None) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def put_templates(self, templates: Any) -> None:
        self.calls.append(templates)
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer


def _templates() -> dict[str, Any]:
    return {"component_name": "p-ecs-metrics", "index_name": "p-ecs-metrics",
            **load_templates("p", data_stream=False)}  # fmt: skip


def _histogram_of(call: dict[str, Any]) -> Any:
    metrics = call["component"]["template"]["mappings"]["properties"]["metrics"]
    return metrics["properties"].get("histogram")


def test_a_cluster_with_the_histogram_type_gets_the_histogram_mapping(
    caplog: pytest.LogCaptureFixture,
) -> None:
    installer = TemplateInstaller(_templates(), Reporter(), histogram=True)
    shipper = ScriptedShipper(None)
    with caplog.at_level(logging.INFO, logger="ecs_metrics_handler"):
        installer.ensure(shipper)  # type: ignore[arg-type]
        installer.ensure(shipper)  # type: ignore[arg-type]  # done: no second request
    assert len(shipper.calls) == 1 and _histogram_of(shipper.calls[0]) == {"type": "histogram"}
    assert installer.histogram_mapped.is_set() and not installer.detects_histogram
    assert "metrics.histogram mapped" in caplog.text


@pytest.mark.parametrize(
    ("error_type", "reason"),
    [("mapper_parsing_exception", ES_REFUSAL), ("mapper_parsing_exception", OS_REFUSAL)],
)
def test_a_cluster_without_it_gets_the_plain_templates_and_one_info_line(
    caplog: pytest.LogCaptureFixture, error_type: str, reason: str
) -> None:
    installer = TemplateInstaller(_templates(), Reporter(), histogram=True)
    shipper = ScriptedShipper(ClientError(400, error_type, reason), None)
    with caplog.at_level(logging.INFO, logger="ecs_metrics_handler"):
        installer.ensure(shipper)  # type: ignore[arg-type]
    first, second = shipper.calls
    assert _histogram_of(first) == {"type": "histogram"} and _histogram_of(second) is None
    assert not installer.histogram_mapped.is_set()
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.INFO, logging.INFO]
    assert "no 'histogram' field type" in caplog.records[0].getMessage()


def test_an_unreachable_cluster_is_retried_with_the_histogram_variant_first() -> None:
    busy = ClientError(503, "unavailable", "busy")
    installer = TemplateInstaller(_templates(), Reporter(), histogram=True)
    shipper = ScriptedShipper(busy, None)
    with pytest.raises(ShipError) as raised:
        installer.ensure(shipper)  # type: ignore[arg-type]
    assert raised.value.retryable and installer.detects_histogram
    installer.ensure(shipper)  # type: ignore[arg-type]
    assert [_histogram_of(c) is not None for c in shipper.calls] == [True, True]
    assert installer.histogram_mapped.is_set()


def test_another_refusal_is_reported_as_a_refused_template(
    caplog: pytest.LogCaptureFixture,
) -> None:
    installer = TemplateInstaller(_templates(), Reporter(), histogram=True)
    shipper = ScriptedShipper(ClientError(403, "security_exception", "no privilege"))
    installer.ensure(shipper)  # type: ignore[arg-type]
    assert len(shipper.calls) == 1 and not installer.histogram_mapped.is_set()
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_without_aggregation_the_plain_templates_are_tried_once() -> None:
    installer = TemplateInstaller(_templates(), Reporter())
    shipper = ScriptedShipper(None)
    installer.ensure(shipper)  # type: ignore[arg-type]
    assert _histogram_of(shipper.calls[0]) is None and not installer.histogram_mapped.is_set()


def test_only_a_400_naming_the_histogram_type_counts_as_lacking_it() -> None:
    assert lacks_histogram_type(ClientError(400, "mapper_parsing_exception", ES_REFUSAL))
    assert lacks_histogram_type(ClientError(400, "mapper_parsing_exception", OS_REFUSAL))
    assert not lacks_histogram_type(ClientError(400, "mapper_parsing_exception", "other"))
    assert not lacks_histogram_type(ClientError(500, "x", ES_REFUSAL))


def test_the_reason_of_a_refused_document_names_the_error_type_and_cause() -> None:
    error = {
        "type": "document_parsing_exception",
        "reason": "[1:62] failed to parse: time series index @timestamp value [x] ...",
        "caused_by": {
            "type": "illegal_argument_exception",
            "reason": "time series index @timestamp value [x] must be larger than y",
        },
    }
    assert refusal_reason(400, error) == (
        "refused by the cluster: HTTP 400 document_parsing_exception (illegal_argument_exception:"
        " time series index @timestamp value [x] must be larger than y)"
    )
    assert refusal_reason(400, {"type": "t", "reason": "r"}) == (
        "refused by the cluster: HTTP 400 t: r"
    )
    assert refusal_reason(404, None) == "refused by the cluster: HTTP 404"


class AcceptingShipper:
    """A cluster that maps ``histogram``: takes the templates, stores every bulk body."""

    def __init__(self) -> None:
        self.templates: list[Any] = []
        self.bodies: list[bytes] = []

    def put_templates(self, templates: Any) -> None:
        self.templates.append(templates)

    def bulk(self, body: bytes, count: int) -> BulkResult:
        self.bodies.append(body)
        return BulkResult(done=count)

    def check(self) -> bool:
        return True

    def close(self) -> None:
        pass


def test_the_handler_installs_the_histogram_template_before_building_the_first_interval() -> None:
    """The sender installs the templates as it starts; the first interval's timer document,
    shipped on close, carries metrics.histogram."""
    shipper = AcceptingShipper()

    class Handler(ElasticECSHandler):
        def _make_shipper(self) -> Any:
            return shipper

    handler = Handler(
        hosts=["http://localhost:9200"], install_template=True, aggregation_interval=3600
    )
    log = logging.getLogger("histogram.wiring")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        for i in range(10):
            log.info("t", extra=metric("latency", i + 1, type="timer"))
        installed = handler._worker._sender._templates.histogram_mapped
        assert installed.wait(30)  # set on the sender thread, before anything is built
    finally:
        log.removeHandler(handler)
        handler.close()
    assert [_histogram_of(t) for t in shipper.templates] == [{"type": "histogram"}]
    sources = [orjson.loads(line) for line in b"".join(shipper.bodies).splitlines()[1::2]]
    (doc,) = sources
    assert (
        doc["metrics"]["histogram"]["counts"] and sum(doc["metrics"]["histogram"]["counts"]) == 10
    )
