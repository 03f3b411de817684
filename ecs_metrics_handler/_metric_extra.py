"""What the application's threads call to describe a metric or an error.

:func:`metric` builds the ``extra`` mapping of one metric; :func:`exception_type_name` names
an exception's type for ``error.type``. Both check nothing and accept whatever they are given,
as pure Python does: this module is never compiled (``setup.py`` compiles :mod:`._metric`,
whose functions check their arguments' annotated types at run time). Pure and thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._metric import METRIC_KEY, LabelValue, MetricType

__all__ = ["exception_type_name", "metric"]


def metric(
    name: str,
    value: float | int | None = None,
    *,
    unit: str | None = None,
    type: MetricType | str = "gauge",
    labels: Mapping[str, LabelValue] | None = None,
    key: str = METRIC_KEY,
) -> dict[str, dict[str, Any]]:
    """Build the ``extra`` mapping that carries one metric: ``extra=metric("db.query", 12.5)``.

    Returns ``{key: {"name": ..., "value": ..., "unit": ..., "type": ..., "labels": {...}}}``
    without the entries that are ``None`` (labels copied). Cheap: it checks nothing; the
    handler validates on its worker thread and reports bad payloads without raising into the
    application. ``key`` must match the handler's ``metric_key`` option.
    """
    payload: dict[str, Any] = {
        "name": name,
        "type": type.value if isinstance(type, MetricType) else type,
    }
    if value is not None:
        payload["value"] = value
    if unit is not None:
        payload["unit"] = unit
    if labels:
        payload["labels"] = dict(labels)
    return {key: payload}


def exception_type_name(exc_type: type[BaseException]) -> str:
    """``"ValueError"`` for builtins, ``"module.Qualified.Name"`` for everything else."""
    module = exc_type.__module__
    if module in ("builtins", "__main__", None):
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"
