"""The enumerated option values: authentication, index dating and mode, client backend."""

from __future__ import annotations

import enum

__all__ = ["AuthType", "Backend", "IndexMode", "IndexNameFrequency", "IndexTimezone"]


class AuthType(enum.Enum):
    """How the handler authenticates. The names are the API (``"basic_auth"`` also accepted)."""

    NO_AUTH = "no_auth"
    BASIC_AUTH = "basic_auth"
    API_KEY = "api_key"
    KERBEROS_AUTH = "kerberos_auth"
    AWS_SIGNED_AUTH = "aws_signed_auth"


class IndexNameFrequency(enum.Enum):
    """How often the target index changes: the date suffix appended to the index prefix."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"
    NEVER = "never"


class Backend(enum.Enum):
    """Which client library talks to the cluster."""

    ELASTICSEARCH = "elasticsearch"
    OPENSEARCH = "opensearch"


class IndexTimezone(enum.Enum):
    """The calendar used to date index names: UTC (the default) or the process's local time."""

    UTC = "utc"
    LOCAL = "local"


class IndexMode(enum.Enum):
    """How the installed template stores documents: ordinary indices, or time-series indices."""

    STANDARD = "standard"
    TIME_SERIES = "time_series"
