"""A Django site whose ``LOGGING`` setting adds the handler; views time themselves.

Django hands ``settings.LOGGING`` to ``logging.config.dictConfig`` at ``django.setup()``: the
handler is one more entry there, and a view logs metrics with ``timed()`` or
``logger.info(..., extra=metric(...))`` like any other code. This script is a whole site in one
file (settings, a view, the URLs) and drives it with Django's test client, as a project's tests
would: 10 requests, each shipping a timer and a counter.

``ELASTICSEARCH_URL`` (default ``http://localhost:9200``) is the cluster, ``ECSMH_EXAMPLE_INDEX``
(default ``examples-metrics``) the index prefix. Ships 20 metrics. Exits 0 only when all of them
were indexed.
"""

from __future__ import annotations

import logging
import os

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

from ecs_metrics_handler import ElasticECSHandler, metric, timed

URL = os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")
PREFIX = os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics")
REQUESTS = 10

# In a project this is settings.py's LOGGING.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "metrics": {
            "class": "ecs_metrics_handler.ElasticECSHandler",
            "hosts": [URL],
            "es_index_name": PREFIX,
            "service_name": "bookshop",
            "es_additional_fields": {"service": {"environment": "example"}},
        },
    },
    "loggers": {
        "bookshop": {"level": "INFO", "handlers": ["metrics"]},
        "ecs_metrics_handler.metrics": {"level": "INFO", "handlers": ["metrics"]},
    },
}

log = logging.getLogger("bookshop")


@timed("view.book_detail", labels={"framework": "django"})
def book_detail(request: HttpRequest, book_id: int) -> HttpResponse:
    log.info("book viewed", extra=metric("books.viewed", 1, type="counter"))
    return HttpResponse(f"book {book_id}")


urlpatterns = [path("books/<int:book_id>/", book_detail)]


def main() -> int:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        LOGGING=LOGGING,
        SECRET_KEY="example-only",  # a throwaway key for a one-file example
    )
    django.setup()  # applies LOGGING

    from django.test import Client

    client = Client()
    statuses = [client.get(f"/books/{n}/").status_code for n in range(REQUESTS)]

    handler = next(h for h in log.handlers if isinstance(h, ElasticECSHandler))
    delivered = handler.flush(timeout=30)
    stats = handler.stats()
    print(f"django_site: {len(statuses)} requests, statuses {sorted(set(statuses))}")
    print(f"django_site: {stats['shipped']} of {stats['emitted']} metrics indexed")
    return 0 if delivered and statuses == [200] * REQUESTS and stats["shipped"] == 20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
