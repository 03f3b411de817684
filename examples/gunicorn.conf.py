"""gunicorn settings for examples/gunicorn_app.py: the logging comes from ``logconfig_dict``.

gunicorn applies it in the arbiter before any worker is forked, so one handler is configured
once and every worker inherits it; the handler notices each fork and starts afresh in the
worker (empty buffer, its own threads and connection). A worker that gunicorn recycles
(``--max-requests``) or stops (``SIGTERM``) leaves through ``sys.exit()``, so
``logging.shutdown()`` closes the handler and ships what the worker still holds.

gunicorn merges this dictionary into its own defaults one key deep, so ``handlers`` here
replaces its handlers: the loggers ``gunicorn.error`` and ``gunicorn.access`` are given again.
"""

import os

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "metrics": {
            "class": "ecs_metrics_handler.ElasticECSHandler",
            "hosts": [os.environ.get("ELASTICSEARCH_URL", "http://localhost:9200")],
            "es_index_name": os.environ.get("ECSMH_EXAMPLE_INDEX", "examples-metrics"),
            "service_name": "storefront",
        },
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
    "root": {"level": "INFO", "handlers": ["metrics"]},
}
