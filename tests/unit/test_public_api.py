"""The public surface: what ``import ecs_metrics_handler`` offers, and what it leaves alone."""

from __future__ import annotations

import subprocess
import sys

import ecs_metrics_handler


def test_all_is_sorted_and_every_name_is_importable() -> None:
    names = ecs_metrics_handler.__all__

    def isort_style(name: str) -> tuple[int, str]:  # constants, classes, then functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(names) == sorted(names, key=isort_style)
    for name in names:
        assert getattr(ecs_metrics_handler, name) is not None, name


def test_version_is_the_installed_distribution_version() -> None:
    from importlib.metadata import version

    assert ecs_metrics_handler.__version__ == version("ecs-metrics-handler")


def test_importing_the_package_changes_no_logging_state() -> None:
    code = (
        "import logging\n"
        "before = (logging.root.handlers[:], logging.root.level,"
        " dict(logging.Logger.manager.loggerDict),"
        " logging.getLoggerClass(), logging.getLogRecordFactory())\n"
        "import ecs_metrics_handler\n"
        "after = (logging.root.handlers[:], logging.root.level, logging.getLoggerClass(),"
        " logging.getLogRecordFactory())\n"
        "assert before[0] == after[0] and before[1] == after[1], 'root changed'\n"
        "assert before[3] is after[2] and before[4] is after[3], 'factories changed'\n"
        "for name, obj in logging.Logger.manager.loggerDict.items():\n"
        "    if isinstance(obj, logging.Logger) and name not in before[2]:\n"
        "        assert not obj.handlers and obj.level == logging.NOTSET and obj.propagate, name\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_original_class_attributes_are_kept() -> None:
    from ecs_metrics_handler import ElasticECSHandler, ElasticECSMetricsLogger

    for cls in (ElasticECSHandler, ElasticECSMetricsLogger):
        assert {m.name for m in cls.AuthType} >= {
            "NO_AUTH",
            "BASIC_AUTH",
            "KERBEROS_AUTH",
            "AWS_SIGNED_AUTH",
        }
        assert {m.name for m in cls.IndexNameFrequency} == {
            "DAILY",
            "WEEKLY",
            "MONTHLY",
            "YEARLY",
            "NEVER",
        }
