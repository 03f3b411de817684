"""The exceptions this package raises.

Every exception derives from :class:`EcsMetricsHandlerError`; leaf classes also derive from
the matching builtin so that callers who only know the standard library still catch them
(``ConfigurationError`` is a ``ValueError``, ``MissingDependencyError`` an ``ImportError``).
Each carries its data as attributes and survives pickling.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "EcsMetricsHandlerError",
    "InvalidMetricError",
    "MissingDependencyError",
]


class EcsMetricsHandlerError(Exception):
    """Base class of every error raised by ``ecs_metrics_handler``."""


class ConfigurationError(EcsMetricsHandlerError, ValueError):
    """An option given to the handler is wrong.

    Raised at construction, never later. ``option`` names the option, ``expected`` says what
    it accepts and ``given`` holds the value that was passed, redacted: a credential option's
    strings show as ``'***'`` and the password of a URL as ``user:***@`` (see ``_redact.py``),
    so neither the message nor the attributes ever carry a secret.
    """

    def __init__(self, option: str, expected: str, given: Any) -> None:
        from ._redact import redact_given

        self.option = option
        self.expected = expected
        self.given = redact_given(option, given)
        super().__init__(f"option {option!r}: expected {expected}, got {self.given!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.option, self.expected, self.given))


class MissingDependencyError(EcsMetricsHandlerError, ImportError):
    """An optional feature was asked for but the package it needs is not installed.

    ``extra`` names the extra that installs it: ``pip install ecs-metrics-handler[<extra>]``.
    """

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the {package!r} package: pip install 'ecs-metrics-handler[{extra}]'"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.feature, self.package, self.extra))


class InvalidMetricError(EcsMetricsHandlerError, ValueError):
    """A metric payload cannot become a document (no name, a value that is not a finite number...).

    Never raised into the application: the handler reports it, counts it as ``invalid`` and
    writes the record to the dead-letter file when a failure folder is configured.
    """

    def __init__(self, reason: str, payload: Any = None) -> None:
        self.reason = reason
        self.payload = payload
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.payload))
