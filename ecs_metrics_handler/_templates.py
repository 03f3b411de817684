"""The index templates that map every field the handler writes.

The JSON bodies ship inside the package (``ecs_metrics_handler/templates/``, identical to the
repository's ``mappings/`` folder, whose README shows how to install them with ``curl``). They
are written for the default prefix ``python_metrics``; :func:`load_templates` fills in another
prefix. Two templates are installed per prefix, both named :func:`template_name`:

* a component template holding the mappings (ECS types; the custom ``metrics.*`` fields;
  ``labels.*`` as keywords; ``dynamic: true`` so additional fields still index);
* a composable index template with ``priority`` 200 (above the built-in ``logs``/``metrics``
  templates) matching ``{prefix}-*`` and ``{prefix}``, or, for a data stream, exactly the data
  stream's name with ``"data_stream": {}``.

Pure; the files are read once and each call returns fresh copies.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from typing import Any, Final

__all__ = [
    "COMPONENT_TEMPLATE_FILE",
    "DATA_STREAM_TEMPLATE_FILE",
    "DEFAULT_PREFIX",
    "INDEX_TEMPLATE_FILE",
    "ROUTING_PATH",
    "TIME_SERIES_DIMENSIONS",
    "TIME_SERIES_METRICS",
    "load_templates",
    "make_time_series",
    "read_template_file",
    "template_name",
    "with_histogram",
]

COMPONENT_TEMPLATE_FILE: Final = "ecs-metrics-component-template.json"
INDEX_TEMPLATE_FILE: Final = "ecs-metrics-index-template.json"
DATA_STREAM_TEMPLATE_FILE: Final = "ecs-metrics-data-stream-template.json"
#: The prefix the shipped JSON files are written for.
DEFAULT_PREFIX: Final = "python_metrics"
_PACKAGE: Final = __name__.rpartition(".")[0]


def template_name(prefix: str) -> str:
    """The name of both the component and the index template for ``prefix``."""
    return f"{prefix}-ecs-metrics"


@functools.cache
def _read(file_name: str) -> dict[str, Any]:
    resource = importlib.resources.files(_PACKAGE) / "templates" / file_name
    body: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return body


def read_template_file(file_name: str) -> dict[str, Any]:
    """A fresh copy of one shipped template file, as written (default prefix)."""
    return copy.deepcopy(_read(file_name))


def load_templates(
    prefix: str, *, data_stream: bool, time_series: bool = False
) -> dict[str, dict[str, Any]]:
    """``{"component": body, "index": body}`` for indices named after ``prefix``.

    ``data_stream=True``: ``prefix`` is the data stream's name and the index template declares
    ``"data_stream": {}`` and matches exactly that name. Otherwise the index template matches
    ``{prefix}-*`` (dated indices) and ``{prefix}`` (frequency NEVER). Both reference the
    component template by :func:`template_name`. ``prefix`` is assumed validated.
    ``time_series=True`` (``index_mode="time_series"``): see :func:`make_time_series`.
    """
    component = read_template_file(COMPONENT_TEMPLATE_FILE)
    if data_stream:
        index = read_template_file(DATA_STREAM_TEMPLATE_FILE)
        index["index_patterns"] = [prefix]
    else:
        index = read_template_file(INDEX_TEMPLATE_FILE)
        index["index_patterns"] = [f"{prefix}-*", prefix]
    index["composed_of"] = [template_name(prefix)]
    if time_series:
        make_time_series(component, index)
    return {"component": component, "index": index}


#: The dimensions of a time-series index: the series key, plus what keeps processes apart.
TIME_SERIES_DIMENSIONS: Final = (
    "metrics.name",
    "metrics.type",
    "metrics.unit",
    "metrics.part",
    "service.name",
    "host.name",
    "agent.ephemeral_id",
    "process.pid",
)
#: The numbers of an aggregate document; each is a gauge (a counter's sum is a delta).
TIME_SERIES_METRICS: Final = ("count", "sum", "min", "max", "last", "p50", "p90", "p99")
#: Keyword dimensions that route documents to shards (``labels.*`` through its dynamic rule).
ROUTING_PATH: Final = (
    "metrics.name",
    "service.name",
    "host.name",
    "agent.ephemeral_id",
    "labels.*",
)


def make_time_series(component: dict[str, Any], index: dict[str, Any]) -> None:
    """Turn the two template bodies into those of time-series indices, in place.

    The index template gets ``index.mode: time_series`` and ``index.routing_path``; the
    component marks :data:`TIME_SERIES_DIMENSIONS` and every ``labels.*`` field
    ``time_series_dimension`` and the numbers of aggregate documents ``time_series_metric:
    gauge``. The cluster then derives each document's ``_id`` from its dimensions and
    ``@timestamp``: the same series, process, part and interval twice is a ``409``.
    """
    mappings = component["template"]["mappings"]
    for path in TIME_SERIES_DIMENSIONS:
        _field(mappings, path)["time_series_dimension"] = True
    for rule in mappings["dynamic_templates"]:
        if "labels" in rule:
            rule["labels"]["mapping"]["time_series_dimension"] = True
    for name in TIME_SERIES_METRICS:
        _field(mappings, f"metrics.{name}")["time_series_metric"] = "gauge"
    settings = index.setdefault("template", {}).setdefault("settings", {})
    settings["index"] = {"mode": "time_series", "routing_path": list(ROUTING_PATH)}
    index["_meta"]["description"] += " (time-series indices)"


def with_histogram(component: dict[str, Any]) -> dict[str, Any]:
    """A copy of the component template body that maps ``metrics.histogram`` as ``histogram``.

    The ``histogram`` field type comes with Elasticsearch's x-pack analytics module: a cluster
    without it (OpenSearch, the ``integ-test-zip`` distributions) refuses this body with a
    ``400 mapper_parsing_exception``; see :func:`~._template_install.lacks_histogram_type`.
    """
    body = copy.deepcopy(component)
    metrics = body["template"]["mappings"]["properties"]["metrics"]["properties"]
    metrics["histogram"] = {"type": "histogram"}
    return body


def _field(mappings: dict[str, Any], path: str) -> dict[str, Any]:
    node: dict[str, Any] = mappings
    for part in path.split("."):
        node = node["properties"][part]
    return node
