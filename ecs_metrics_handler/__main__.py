"""``python -m ecs_metrics_handler``: see :mod:`ecs_metrics_handler.cli`."""

import sys

from .cli import main

sys.exit(main())
