"""Installing the index templates from the worker, once, without mistaking a refusal for an outage.

:class:`TemplateInstaller` runs before each request of the sender (live batches and replays)
until the templates are in: a cluster that cannot be reached or is busy (no answer, ``429``,
``5xx``) raises a retryable :class:`~._bulk_outcome.ShipError`, which the delivery logic treats like
any failed request; a cluster that answers and refuses (``401``/``403``: a writer without the
template privilege; ``400``: a template it does not accept) is reported once with what to do,
and documents ship without the templates. Used from the sender thread only.

With ``histogram=True`` (aggregation on) it first tries the component template with
``metrics.histogram`` mapped as Elasticsearch's ``histogram`` type
(:func:`~._templates.with_histogram`). A cluster without that type (OpenSearch, an
Elasticsearch without the x-pack analytics module) answers ``400 mapper_parsing_exception``
(:func:`lacks_histogram_type`): the plain templates are installed instead, with one info
line. :attr:`TemplateInstaller.histogram_mapped` is set once the histogram variant is in;
the batcher thread reads it (a :class:`threading.Event`, safe across threads) to decide
whether aggregate documents carry ``metrics.histogram``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ._bulk_outcome import ShipError, describe_error
from ._report import Reporter
from ._shipper import Shipper
from ._templates import with_histogram

__all__ = ["TemplateInstaller", "http_status", "lacks_histogram_type"]


class TemplateInstaller:
    """Install ``templates`` (None: nothing to do) through the shipper on first use.

    ``histogram``: try the ``metrics.histogram`` variant first (see the module docstring).
    """

    def __init__(
        self, templates: Mapping[str, Any] | None, reporter: Reporter, *, histogram: bool = False
    ) -> None:
        self._templates = templates
        self._reporter = reporter
        self._histogram = histogram and templates is not None
        #: set (once, on the sender thread) when the cluster took the histogram mapping
        self.histogram_mapped = threading.Event()

    @property
    def detects_histogram(self) -> bool:
        """Whether the templates wait to be installed with the histogram detection."""
        return self._templates is not None and self._histogram

    def ensure(self, shipper: Shipper) -> None:
        """Install the templates unless done; raise a retryable ShipError if the cluster is away."""
        templates = self._templates
        if templates is None:
            return
        try:
            if self._histogram and not self._put_histogram_variant(shipper, templates):
                self._histogram = False
                shipper.put_templates(templates)
            elif not self._histogram:
                shipper.put_templates(templates)
        except Exception as e:
            self._refused(e)
            return
        self._templates = None
        if self._histogram:
            self.histogram_mapped.set()
            self._reporter.info(
                "ecs_metrics_handler: index template installed (metrics.histogram mapped)"
            )
        else:
            self._reporter.info("ecs_metrics_handler: index template installed")

    def _put_histogram_variant(self, shipper: Shipper, templates: Mapping[str, Any]) -> bool:
        """Install the histogram variant; False when the cluster has no histogram type."""
        variant = dict(templates)
        variant["component"] = with_histogram(dict(templates["component"]))
        try:
            shipper.put_templates(variant)
        except Exception as e:
            if not lacks_histogram_type(e):
                raise
            self._reporter.info(
                "ecs_metrics_handler: the cluster has no 'histogram' field type (%s); "
                "aggregate documents carry plain fields only",
                describe_error(e)[:200],
            )
            return False
        return True

    def _refused(self, e: Exception) -> None:
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


#: Phrases of a refused ``histogram`` mapping: Elasticsearch 8.19/9.5 say "The mapper type
#: [histogram] declared on field [histogram] does not exist", OpenSearch 2.19 "No handler for
#: type [histogram] declared on field [histogram]".
_NO_HISTOGRAM_TYPE = ("mapper type [histogram]", "no handler for type [histogram]")


def lacks_histogram_type(error: BaseException) -> bool:
    """Whether ``error`` is a cluster's ``400`` refusing the ``histogram`` field type."""
    if http_status(error) != 400:
        return False
    texts = (str(error), str(getattr(error, "body", "")), str(getattr(error, "info", "")))
    return any(phrase in text.lower() for text in texts for phrase in _NO_HISTOGRAM_TYPE)


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a client error (elasticsearch-py or opensearch-py), if it has one."""
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "meta", None), "status", None)
    return status if isinstance(status, int) else None
