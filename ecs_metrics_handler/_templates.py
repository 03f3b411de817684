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
    "load_templates",
    "read_template_file",
    "template_name",
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


def load_templates(prefix: str, *, data_stream: bool) -> dict[str, dict[str, Any]]:
    """``{"component": body, "index": body}`` for indices named after ``prefix``.

    ``data_stream=True``: ``prefix`` is the data stream's name and the index template declares
    ``"data_stream": {}`` and matches exactly that name. Otherwise the index template matches
    ``{prefix}-*`` (dated indices) and ``{prefix}`` (frequency NEVER). Both reference the
    component template by :func:`template_name`. ``prefix`` is assumed validated.
    """
    component = read_template_file(COMPONENT_TEMPLATE_FILE)
    if data_stream:
        index = read_template_file(DATA_STREAM_TEMPLATE_FILE)
        index["index_patterns"] = [prefix]
    else:
        index = read_template_file(INDEX_TEMPLATE_FILE)
        index["index_patterns"] = [f"{prefix}-*", prefix]
    index["composed_of"] = [template_name(prefix)]
    return {"component": component, "index": index}
