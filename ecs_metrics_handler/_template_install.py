"""Installing the index templates from the worker, once, without mistaking a refusal for an outage.

:class:`TemplateInstaller` runs before each request of the sender (live batches and replays)
until the templates are in: a cluster that cannot be reached or is busy (no answer, ``429``,
``5xx``) raises a retryable :class:`~._shipper.ShipError`, which the delivery logic treats like
any failed request; a cluster that answers and refuses (``401``/``403``: a writer without the
template privilege; ``400``: a template it does not accept) is reported once with what to do,
and documents ship without the templates. Used from the sender thread only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._report import Reporter
from ._shipper import ShipError, Shipper, describe_error

__all__ = ["TemplateInstaller", "http_status"]


class TemplateInstaller:
    """Install ``templates`` (None: nothing to do) through the shipper on first use."""

    def __init__(self, templates: Mapping[str, Any] | None, reporter: Reporter) -> None:
        self._templates = templates
        self._reporter = reporter

    def ensure(self, shipper: Shipper) -> None:
        """Install the templates unless done; raise a retryable ShipError if the cluster is away."""
        if self._templates is None:
            return
        try:
            shipper.put_templates(self._templates)
        except Exception as e:
            status = http_status(e)
            if status is None or status == 429 or status >= 500:
                raise ShipError(
                    f"cannot install the index template: {describe_error(e)}", retryable=True
                ) from e
            self._templates = None
            self._reporter.error(
                "template",
                "ecs_metrics_handler: the index template was refused (HTTP %s: %s); documents "
                "are shipped without it. Install it once as an administrator "
                "(handler.install_template() or 'python -m ecs_metrics_handler "
                "install-template'), then set install_template=False",
                status,
                describe_error(e)[:300],
            )
            return
        self._templates = None
        self._reporter.info("ecs_metrics_handler: index template installed")


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a client error (elasticsearch-py or opensearch-py), if it has one."""
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "meta", None), "status", None)
    return status if isinstance(status, int) else None
