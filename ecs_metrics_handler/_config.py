"""Handler options: the enums, the coercion rules and their validation.

:meth:`HandlerOptions.from_kwargs` is the single place where keyword options (from Python code or
from :func:`logging.config.dictConfig`, where every value may arrive as a string) are checked and
normalised. Every mistake raises :class:`~ecs_metrics_handler.exceptions.ConfigurationError`,
which is also a :class:`ValueError`, naming the option, what it accepts and what was given.

Everything here is pure: no network, no file system, no global state. All objects are immutable
and therefore safe to share between threads.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import ipaddress
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

from .exceptions import ConfigurationError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_INDEX_NAME",
    "DEFAULT_PORT",
    "INDEX_DATE_SUFFIX_BYTES",
    "MAX_INDEX_NAME_BYTES",
    "OPTION_NAMES",
    "AuthType",
    "Backend",
    "FrozenDict",
    "HandlerOptions",
    "IndexNameFrequency",
    "IndexTimezone",
    "coerce_bool",
    "coerce_enum",
    "coerce_float",
    "coerce_int",
    "iter_leaves",
    "parse_hosts",
    "thaw",
    "validate_index_name",
    "validate_index_prefix",
]


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


E = TypeVar("E", bound=enum.Enum)

DEFAULT_PORT: Final = 9200
DEFAULT_HOST: Final = "localhost"
DEFAULT_INDEX_NAME: Final = "python_metrics"
#: Elasticsearch refuses index names longer than this many bytes of UTF-8.
MAX_INDEX_NAME_BYTES: Final = 255
#: Bytes an index prefix must leave free for the longest date suffix, ``"-YYYY.MM.DD"``.
INDEX_DATE_SUFFIX_BYTES: Final = 11
#: Bytes a data stream name must leave free for its backing indices,
#: ``".ds-" + name + "-YYYY.MM.DD-000001"``.
_DATA_STREAM_RESERVED_BYTES: Final = 22
_INDEX_FORBIDDEN_CHARS: Final = ("\\", "/", "*", "?", '"', "<", ">", "|", ",", "#", ":", " ")
_SCHEMES: Final = ("http", "https")
_HOSTNAME_RE: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_TRUE_STRINGS: Final = frozenset({"true", "yes", "y", "on", "1"})
_FALSE_STRINGS: Final = frozenset({"false", "no", "n", "off", "0"})
#: Attributes of :class:`logging.LogRecord`; ``extra`` may not overwrite them.
_RESERVED_RECORD_KEYS: Final = frozenset(
    {
        "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName",
        "levelname", "levelno", "lineno", "message", "module", "msecs", "msg", "name",
        "pathname", "process", "processName", "relativeCreated", "stack_info", "taskName",
        "thread", "threadName",
    }
)  # fmt: skip


# --------------------------------------------------------------------------- scalar coercions


def coerce_enum(option: str, value: object, enum_cls: type[E]) -> E:
    """Return the member of ``enum_cls`` that ``value`` designates.

    Accepted: a member of ``enum_cls``; a string equal to a member's name or value, ignoring
    case and surrounding spaces (``"daily"``, ``" DAILY "``); a member of another enum class of
    the same class name whose ``name`` matches (so ``ElasticECSMetricsLogger.AuthType.NO_AUTH``
    from the original library works). Anything else raises :class:`ConfigurationError` listing
    the accepted names.
    """
    if isinstance(value, enum_cls):
        return value
    key: str | None = None
    if isinstance(value, str):
        key = value.strip().upper()
    elif isinstance(value, enum.Enum) and type(value).__name__ == enum_cls.__name__:
        key = value.name.upper()
    if key is not None:
        for member in enum_cls:
            if key in (member.name, str(member.value).upper()):
                return member
    names = ", ".join(member.name for member in enum_cls)
    raise ConfigurationError(option, f"one of {names} (case-insensitive)", value)


def coerce_bool(option: str, value: object) -> bool:
    """Return ``value`` as a bool.

    Accepted: a bool, the ints 0 and 1, and the strings ``true/false``, ``yes/no``, ``y/n``,
    ``on/off``, ``1/0`` in any case (what ini and YAML files give to dictConfig).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_STRINGS:
            return True
        if text in _FALSE_STRINGS:
            return False
    raise ConfigurationError(option, "a boolean (true/false, yes/no, 1/0)", value)


def _describe_bound(minimum: float | None, exclusive: bool) -> str:
    if minimum is None:
        return ""
    word = ">" if exclusive else ">="
    bound = int(minimum) if float(minimum).is_integer() else minimum
    return f" {word} {bound}"


def _check_bound(
    option: str, number: float, given: object, kind: str, *, minimum: float | None, exclusive: bool
) -> None:
    if minimum is None:
        return
    if number < minimum or (exclusive and number == minimum):
        raise ConfigurationError(option, f"{kind}{_describe_bound(minimum, exclusive)}", given)


def coerce_int(
    option: str, value: object, *, minimum: int | None = None, exclusive: bool = False
) -> int:
    """Return ``value`` as an int, optionally checked against a lower bound.

    Accepted: an int, a float with no fractional part, or a string holding either (``"1000"``,
    ``"1e3"``). A bool is refused: ``True`` is not a number of records. ``exclusive=True``
    makes the bound strict (``> minimum``).
    """
    kind = "an integer"
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = int(value)
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                number = None
            else:
                if math.isfinite(as_float) and as_float.is_integer():
                    number = int(as_float)
    if number is None:
        raise ConfigurationError(option, f"{kind}{_describe_bound(minimum, exclusive)}", value)
    _check_bound(option, number, value, kind, minimum=minimum, exclusive=exclusive)
    return number


def coerce_float(
    option: str, value: object, *, minimum: float | None = None, exclusive: bool = False
) -> float:
    """Return ``value`` as a finite float, optionally checked against a lower bound.

    Accepted: an int, a float, or a numeric string. A bool, NaN and infinities are refused.
    """
    kind = "a finite number"
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigurationError(option, f"{kind}{_describe_bound(minimum, exclusive)}", value)
    _check_bound(option, number, value, kind, minimum=minimum, exclusive=exclusive)
    return number


def _coerce_optional_str(option: str, value: object, *, allow_empty: bool = False) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and (allow_empty or value.strip()):
        return value
    raise ConfigurationError(option, "a non-empty string or None", value)


def _coerce_str(option: str, value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise ConfigurationError(option, "a non-empty string", value)


def _coerce_path(option: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str) and path:
            return path
    raise ConfigurationError(option, "a file system path (str or os.PathLike) or None", value)


# ------------------------------------------------------------------------------------ hosts


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_hostname(option: str, host: str, given: object) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return str(address)
    if not _HOSTNAME_RE.match(host):
        raise ConfigurationError(option, "a host name or IP address", given)
    return host.lower().rstrip(".") or host


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"/{prefix}" if prefix else ""


def _check_port(option: str, port: object, given: object) -> int:
    if isinstance(port, bool):
        raise ConfigurationError(option, "a port number between 1 and 65535", given)
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port.strip())
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigurationError(option, "a port number between 1 and 65535", given)
    return port


def _parse_host_string(option: str, text: str, default_scheme: str) -> str:
    given = text
    text = text.strip()
    if not text:
        raise ConfigurationError(option, "a host URL such as 'http://localhost:9200'", given)
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise ConfigurationError(option, "a URL with the scheme http or https", given)
        to_split = text
    else:
        scheme = default_scheme
        bare = text.split("/", 1)[0]
        # A bare IPv6 address ("::1", "fe80::1") has no port: bracket it before splitting.
        if bare.count(":") > 1 and not bare.startswith("["):
            try:
                ipaddress.ip_address(bare)
            except ValueError:
                raise ConfigurationError(option, "a host name or IP address", given) from None
            text = f"[{bare}]" + text[len(bare) :]
        to_split = f"//{text}"
    try:
        parts = urllib.parse.urlsplit(to_split)
        port = parts.port
    except ValueError as error:
        raise ConfigurationError(
            option, "a host URL with a port number between 1 and 65535", given
        ) from error
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            option, "a host URL without credentials (put them in auth_details)", given
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(option, "a host URL without query or fragment", given)
    if port == 0:
        raise ConfigurationError(option, "a port number between 1 and 65535", given)
    hostname = parts.hostname
    if not hostname:
        raise ConfigurationError(option, "a host URL such as 'http://localhost:9200'", given)
    hostname = _check_hostname(option, hostname, given)
    return (
        f"{scheme}://{_format_host(hostname)}:{port or DEFAULT_PORT}{_normalise_prefix(parts.path)}"
    )


_HOST_DICT_KEYS: Final = frozenset(
    {"host", "port", "scheme", "url_prefix", "path_prefix", "use_ssl"}
)


def _parse_host_dict(
    option: str, entry: Mapping[Any, Any], default_scheme: str, use_ssl: bool
) -> str:
    unknown = set(entry) - _HOST_DICT_KEYS
    if unknown:
        keys = ", ".join(sorted(_HOST_DICT_KEYS))
        raise ConfigurationError(option, f"a host mapping with only the keys {keys}", dict(entry))
    host = entry.get("host")
    if not isinstance(host, str) or not host.strip() or "://" in host or "/" in host:
        raise ConfigurationError(
            option, "a host mapping whose 'host' is a host name or IP address", dict(entry)
        )
    port = _check_port(option, entry.get("port", DEFAULT_PORT), dict(entry))
    scheme = default_scheme
    if "use_ssl" in entry:
        scheme = "https" if coerce_bool(option, entry["use_ssl"]) else "http"
    if entry.get("scheme") is not None:
        scheme = str(entry["scheme"]).strip().lower()
        if scheme not in _SCHEMES:
            raise ConfigurationError(
                option, "a host mapping with scheme http or https", dict(entry)
            )
    prefix = entry.get("url_prefix", entry.get("path_prefix")) or ""
    if not isinstance(prefix, str):
        raise ConfigurationError(option, "a host mapping whose url_prefix is a string", dict(entry))
    hostname = _check_hostname(option, host.strip().strip("[]"), dict(entry))
    return f"{scheme}://{_format_host(hostname)}:{port}{_normalise_prefix(prefix)}"


def parse_hosts(option: str, hosts: object, *, use_ssl: bool) -> tuple[str, ...]:
    """Normalise the ``hosts`` option into a tuple of URLs ``"scheme://host:port[/prefix]"``.

    Accepted: a URL (``"http://h:9200"``), ``"h:9200"``, ``"h"``, several of those separated by
    commas, a mapping ``{"host": ..., "port": ..., "scheme"?: ..., "url_prefix"?: ...}`` (the
    original library's form), or a list/tuple of any of these. The port defaults to 9200; the
    scheme to ``https`` when ``use_ssl`` else ``http``, but a scheme written in a URL wins. IPv6
    addresses come back in brackets. Duplicates are dropped, order is kept.

    Raises :class:`ConfigurationError` (naming ``option``) for an empty list, a port outside
    1..65535, a scheme other than http/https, credentials inside a URL, or a string that does not
    parse as a host.
    """
    default_scheme = "https" if use_ssl else "http"
    entries: list[object]
    if isinstance(hosts, str):
        entries = [part for part in hosts.split(",") if part.strip()]
    elif isinstance(hosts, Mapping):
        entries = [hosts]
    elif isinstance(hosts, (list, tuple)):
        entries = list(hosts)
    else:
        raise ConfigurationError(option, "a host URL, a {'host', 'port'} mapping or a list", hosts)
    urls: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            parsed = [
                _parse_host_string(option, part, default_scheme)
                for part in entry.split(",")
                if part.strip()
            ]
            if not parsed:
                raise ConfigurationError(
                    option, "a host URL such as 'http://localhost:9200'", entry
                )
        elif isinstance(entry, Mapping):
            parsed = [_parse_host_dict(option, entry, default_scheme, use_ssl)]
        else:
            raise ConfigurationError(option, "a host URL or a {'host', 'port'} mapping", entry)
        urls.extend(url for url in parsed if url not in urls)
    if not urls:
        raise ConfigurationError(option, "at least one host", hosts)
    return tuple(urls)


# ------------------------------------------------------------------------------ index names


def validate_index_name(option: str, name: object, *, reserved_bytes: int = 0) -> str:
    """Check ``name`` against Elasticsearch's index-name rules and return it.

    The rules: a non-empty string, lower case only, none of ``\\ / * ? " < > | , # :`` nor a
    space, not starting with ``-``, ``_`` or ``+``, not ``.`` or ``..``, and at most
    ``255 - reserved_bytes`` bytes of UTF-8 (room for what gets appended to it). The error
    names the rule that is broken.
    """
    limit = MAX_INDEX_NAME_BYTES - reserved_bytes

    def broken(rule: str) -> ConfigurationError:
        return ConfigurationError(option, f"an index name Elasticsearch accepts ({rule})", name)

    if not isinstance(name, str):
        raise broken("a string")
    if not name:
        raise broken("not empty")
    if name != name.lower():
        raise broken("lower case only")
    for char in _INDEX_FORBIDDEN_CHARS:
        if char in name:
            shown = "a space" if char == " " else repr(char)
            raise broken(f"without {shown}")
    if name[0] in "-_+":
        raise broken("not starting with '-', '_' or '+'")
    if name in (".", ".."):
        raise broken("not '.' or '..'")
    if len(name.encode("utf-8")) > limit:
        raise broken(f"at most {limit} bytes of UTF-8")
    return name


def validate_index_prefix(option: str, name: object) -> str:
    """Check an index *prefix*: :func:`validate_index_name` leaving room for ``"-YYYY.MM.DD"``.

    So the prefix is at most 244 bytes of UTF-8.
    """
    return validate_index_name(option, name, reserved_bytes=INDEX_DATE_SUFFIX_BYTES)


# ------------------------------------------------------------------------ additional fields


def _expand_fields(option: str, fields: object, *, leaves_are_env_names: bool) -> dict[str, Any]:
    """Copy a nested mapping into plain dicts, expanding dotted keys (``"a.b"`` -> a -> b)."""
    if not isinstance(fields, Mapping):
        raise ConfigurationError(option, "a mapping (nested dict) or None", fields)
    result: dict[str, Any] = {}
    for key, given in fields.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ConfigurationError(option, "field names that are non-empty strings", key)
        path = key.split(".")
        value: object
        if isinstance(given, Mapping):
            value = _expand_fields(option, given, leaves_are_env_names=leaves_are_env_names)
        elif leaves_are_env_names:
            if not isinstance(given, str) or not given:
                raise ConfigurationError(
                    option, f"an environment variable name for field {key!r}", given
                )
            value = given
        else:
            value = _copy_value(given)
        target = result
        for part in path[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigurationError(option, f"no conflicting values for field {key!r}", fields)
            target = child
        last = path[-1]
        if last in target:
            if isinstance(target[last], dict) and isinstance(value, dict):
                _merge_plain(target[last], value, option, key)
                continue
            raise ConfigurationError(option, f"no conflicting values for field {key!r}", fields)
        target[last] = value
    return result


def _merge_plain(target: dict[str, Any], source: dict[str, Any], option: str, key: str) -> None:
    for name, value in source.items():
        if name in target:
            if isinstance(target[name], dict) and isinstance(value, dict):
                _merge_plain(target[name], value, option, key)
                continue
            raise ConfigurationError(option, f"no conflicting values for field {key!r}", source)
        target[name] = value


def _copy_value(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _copy_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy_value(v) for v in value]
    return value


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes: the read-only nested mappings held by the options.

    Still a ``dict`` (orjson, ``json`` and ``copy`` handle it), picklable, and its copies are
    itself since it cannot change.
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


_EMPTY: Final = FrozenDict()


def _freeze(value: object) -> Any:
    """Read-only copy of a tree of plain dicts/lists (FrozenDict / tuple)."""
    if isinstance(value, dict):
        return FrozenDict({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: object) -> Any:
    """Plain, independent dicts and lists from a frozen tree (the inverse of the freezing)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def _empty_mapping() -> Mapping[str, Any]:
    return _EMPTY


def _default_service_name() -> str:
    """The main script's stem; the package's name under ``python -m package``; else "python"."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if argv0 in ("-c", "-m", "-"):
        return "python"
    path = Path(argv0)
    if path.stem == "__main__":
        return path.parent.name or "python"
    return path.stem or "python"


# ---------------------------------------------------------------------------------- options


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HandlerOptions:
    """Every option of :class:`~ecs_metrics_handler.ElasticECSHandler`, validated and normalised.

    Build it with :meth:`from_kwargs`, which checks and coerces every value; the plain
    constructor trusts its arguments. Immutable: nested mappings are read-only views holding
    private copies, so an instance is safe to share between threads and between documents.
    Units: seconds for every ``*_sec``/timeout/backoff option, bytes for ``*_bytes``.
    """

    hosts: tuple[str, ...] = (f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",)
    auth_type: AuthType = AuthType.NO_AUTH
    #: BASIC_AUTH: ``(user, password)``; API_KEY: the encoded key or ``(id, key)``.
    auth_details: tuple[str, str] | str | None = None
    aws_access_key: str | None = None
    aws_secret_key: str | None = None
    aws_session_token: str | None = None
    aws_region: str | None = None
    aws_service: str = "es"
    use_ssl: bool = False
    verify_ssl: bool = True
    #: Path to a PEM bundle of CA certificates.
    ca_certs: str | None = None
    #: Path to a PEM client certificate (and ``client_key`` to its key when separate).
    client_cert: str | None = None
    client_key: str | None = None
    #: Records waiting in the buffer that wake the worker up (> 0).
    buffer_size: int = 1000
    #: Seconds between two periodic flushes (> 0).
    flush_frequency_in_sec: float = 1.0
    #: Index prefix; the date suffix depends on ``index_name_frequency``.
    es_index_name: str = DEFAULT_INDEX_NAME
    index_name_frequency: IndexNameFrequency = IndexNameFrequency.DAILY
    index_name_timezone: IndexTimezone = IndexTimezone.UTC
    #: When set, every document goes to this data stream instead of dated indices.
    data_stream: str | None = None
    #: Nested fields deep-merged into every document (dotted keys expanded).
    es_additional_fields: Mapping[str, Any] = dataclasses.field(default_factory=_empty_mapping)
    #: Nested fields whose leaves are environment variable NAMES, read at each document.
    es_additional_fields_in_env: Mapping[str, Any] = dataclasses.field(
        default_factory=_empty_mapping
    )
    flush_failure_folder: str | None = None
    #: Bytes the failure folder may hold before the oldest files are dropped (> 0; 1 GiB).
    flush_failure_folder_max_bytes: int = 1 << 30
    #: Ship ordinary records (no metric payload) as ECS log events too.
    ship_log_records: bool = False
    #: The ``extra`` key that carries a metric payload.
    metric_key: str = "metric"
    service_name: str | None = None
    service_version: str | None = None
    service_environment: str | None = None
    event_dataset: str | None = None
    backend: Backend = Backend.ELASTICSEARCH
    #: Seconds one HTTP request may take (> 0).
    request_timeout: float = 10.0
    #: Retries of retryable item failures (>= 0).
    max_retries: int = 5
    #: First retry delay in seconds (> 0), doubled up to ``retry_backoff_max``.
    retry_backoff_initial: float = 0.5
    retry_backoff_max: float = 30.0
    #: Records held in memory before the handler drops (and counts) new ones (>= buffer_size).
    max_queue_records: int = 50_000
    #: Serialised bytes held in memory waiting to ship or to be spooled (16 MiB).
    max_pending_bytes: int = 16 << 20
    #: Seconds ``flush()`` and ``close()`` may block (> 0).
    flush_timeout: float = 5.0
    #: Install the index (or data stream) template when the worker starts.
    install_template: bool = False

    @property
    def resolved_service_name(self) -> str:
        """``service_name``, else the stem of ``sys.argv[0]``, else ``"python"``."""
        return self.service_name or _default_service_name()

    @property
    def resolved_event_dataset(self) -> str:
        """``event_dataset``, else ``f"{resolved_service_name}.metrics"``."""
        return self.event_dataset or f"{self.resolved_service_name}.metrics"

    @property
    def target_prefix(self) -> str:
        """The data stream name when one is set, else the index prefix."""
        return self.data_stream or self.es_index_name

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> HandlerOptions:
        """Validate and coerce keyword options; the only place that does.

        Unknown names raise :class:`ConfigurationError` suggesting the closest known name.
        Booleans accept bools and ``"true"/"false"/"yes"/"no"/"1"/"0"``; numbers accept ints,
        floats and numeric strings but never a bool; enums accept names or values in any case.
        """
        for name, value in kwargs.items():
            if name not in OPTION_NAMES:
                close = difflib.get_close_matches(name, sorted(OPTION_NAMES), n=3, cutoff=0.6)
                hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
                raise ConfigurationError(name, f"a known option{hint}", value)
        return _build_options(kwargs)


OPTION_NAMES: Final = frozenset(field.name for field in dataclasses.fields(HandlerOptions))

_DEFAULTS: Final = HandlerOptions()


def _pair_of_strings(value: object) -> tuple[str, str] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        first, second = value
        if isinstance(first, str) and isinstance(second, str):
            return (first, second)
    return None


def _coerce_auth_details(auth_type: AuthType, value: object) -> tuple[str, str] | str | None:
    option = "auth_details"
    pair = _pair_of_strings(value)
    if auth_type is AuthType.BASIC_AUTH:
        if pair is None or not pair[0]:
            raise ConfigurationError(
                option, "a (user, password) pair of strings for BASIC_AUTH", value
            )
        return pair
    if auth_type is AuthType.API_KEY:
        if isinstance(value, str) and value.strip():
            return value.strip()
        if pair is not None and pair[0] and pair[1]:
            return pair
        raise ConfigurationError(
            option, "an encoded API key string or an (id, key) pair for API_KEY", value
        )
    # Other auth types ignore auth_details; the original library's default was ("", "").
    if value is None or pair == ("", ""):
        return None
    if pair is not None:
        return pair
    if isinstance(value, str):
        return value
    raise ConfigurationError(option, "None, a string or a pair of strings", value)


def _get(kwargs: Mapping[str, Any], name: str) -> Any:
    return kwargs.get(name, getattr(_DEFAULTS, name))


def _build_options(kwargs: Mapping[str, Any]) -> HandlerOptions:
    use_ssl = coerce_bool("use_ssl", _get(kwargs, "use_ssl"))
    hosts_value = kwargs.get("hosts")
    hosts = parse_hosts(
        "hosts", DEFAULT_HOST if hosts_value is None else hosts_value, use_ssl=use_ssl
    )

    auth_type = coerce_enum("auth_type", _get(kwargs, "auth_type"), AuthType)
    auth_details = _coerce_auth_details(auth_type, kwargs.get("auth_details"))
    aws = {
        name: _coerce_optional_str(name, kwargs.get(name))
        for name in ("aws_access_key", "aws_secret_key", "aws_session_token", "aws_region")
    }
    if auth_type is AuthType.AWS_SIGNED_AUTH:
        for name in ("aws_access_key", "aws_secret_key", "aws_region"):
            if not aws[name]:
                raise ConfigurationError(
                    name, "a non-empty string when auth_type is AWS_SIGNED_AUTH", kwargs.get(name)
                )

    client_cert = _coerce_path("client_cert", kwargs.get("client_cert"))
    client_key = _coerce_path("client_key", kwargs.get("client_key"))
    if client_key is not None and client_cert is None:
        raise ConfigurationError("client_key", "to be given together with client_cert", client_key)

    buffer_size = coerce_int("buffer_size", _get(kwargs, "buffer_size"), minimum=0, exclusive=True)
    max_queue_records = coerce_int(
        "max_queue_records", _get(kwargs, "max_queue_records"), minimum=1
    )
    if max_queue_records < buffer_size:
        raise ConfigurationError(
            "max_queue_records", f"an integer >= buffer_size ({buffer_size})", max_queue_records
        )
    backoff_initial = coerce_float(
        "retry_backoff_initial", _get(kwargs, "retry_backoff_initial"), minimum=0, exclusive=True
    )
    backoff_max = coerce_float("retry_backoff_max", _get(kwargs, "retry_backoff_max"), minimum=0)
    if backoff_max < backoff_initial:
        raise ConfigurationError(
            "retry_backoff_max",
            f"a number >= retry_backoff_initial ({backoff_initial})",
            kwargs.get("retry_backoff_max", backoff_max),
        )

    es_index_name = validate_index_prefix("es_index_name", _get(kwargs, "es_index_name"))
    data_stream: str | None = None
    if kwargs.get("data_stream") is not None:
        data_stream = validate_index_name(
            "data_stream", kwargs["data_stream"], reserved_bytes=_DATA_STREAM_RESERVED_BYTES
        )
        if data_stream.startswith(".ds-"):
            raise ConfigurationError(
                "data_stream", "a data stream name not starting with '.ds-'", data_stream
            )
        if es_index_name != DEFAULT_INDEX_NAME:
            raise ConfigurationError(
                "data_stream",
                "not to be combined with es_index_name (a data stream replaces dated indices)",
                data_stream,
            )

    metric_key = _coerce_str("metric_key", _get(kwargs, "metric_key"))
    if metric_key in _RESERVED_RECORD_KEYS:
        raise ConfigurationError(
            "metric_key", "a key that is not a LogRecord attribute", metric_key
        )

    def fields(name: str, *, env: bool) -> Mapping[str, Any]:
        value = kwargs.get(name)
        if value is None:
            return _empty_mapping()
        frozen: Mapping[str, Any] = _freeze(_expand_fields(name, value, leaves_are_env_names=env))
        return frozen

    return HandlerOptions(
        hosts=hosts,
        auth_type=auth_type,
        auth_details=auth_details,
        aws_access_key=aws["aws_access_key"],
        aws_secret_key=aws["aws_secret_key"],
        aws_session_token=aws["aws_session_token"],
        aws_region=aws["aws_region"],
        aws_service=_coerce_str("aws_service", _get(kwargs, "aws_service")),
        use_ssl=use_ssl,
        verify_ssl=coerce_bool("verify_ssl", _get(kwargs, "verify_ssl")),
        ca_certs=_coerce_path("ca_certs", kwargs.get("ca_certs")),
        client_cert=client_cert,
        client_key=client_key,
        buffer_size=buffer_size,
        flush_frequency_in_sec=coerce_float(
            "flush_frequency_in_sec",
            _get(kwargs, "flush_frequency_in_sec"),
            minimum=0,
            exclusive=True,
        ),
        es_index_name=es_index_name,
        index_name_frequency=coerce_enum(
            "index_name_frequency", _get(kwargs, "index_name_frequency"), IndexNameFrequency
        ),
        index_name_timezone=coerce_enum(
            "index_name_timezone", _get(kwargs, "index_name_timezone"), IndexTimezone
        ),
        data_stream=data_stream,
        es_additional_fields=fields("es_additional_fields", env=False),
        es_additional_fields_in_env=fields("es_additional_fields_in_env", env=True),
        flush_failure_folder=_coerce_path(
            "flush_failure_folder", kwargs.get("flush_failure_folder")
        ),
        flush_failure_folder_max_bytes=coerce_int(
            "flush_failure_folder_max_bytes",
            _get(kwargs, "flush_failure_folder_max_bytes"),
            minimum=0,
            exclusive=True,
        ),
        ship_log_records=coerce_bool("ship_log_records", _get(kwargs, "ship_log_records")),
        metric_key=metric_key,
        service_name=_coerce_optional_str("service_name", kwargs.get("service_name")),
        service_version=_coerce_optional_str("service_version", kwargs.get("service_version")),
        service_environment=_coerce_optional_str(
            "service_environment", kwargs.get("service_environment")
        ),
        event_dataset=_coerce_optional_str("event_dataset", kwargs.get("event_dataset")),
        backend=coerce_enum("backend", _get(kwargs, "backend"), Backend),
        request_timeout=coerce_float(
            "request_timeout", _get(kwargs, "request_timeout"), minimum=0, exclusive=True
        ),
        max_retries=coerce_int("max_retries", _get(kwargs, "max_retries"), minimum=0),
        retry_backoff_initial=backoff_initial,
        retry_backoff_max=backoff_max,
        max_queue_records=max_queue_records,
        max_pending_bytes=coerce_int(
            "max_pending_bytes", _get(kwargs, "max_pending_bytes"), minimum=0, exclusive=True
        ),
        flush_timeout=coerce_float(
            "flush_timeout", _get(kwargs, "flush_timeout"), minimum=0, exclusive=True
        ),
        install_template=coerce_bool("install_template", _get(kwargs, "install_template")),
    )


def iter_leaves(
    tree: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterable[tuple[tuple[str, ...], Any]]:
    """Yield ``(path, leaf)`` for every non-mapping value of a nested mapping, in order."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from iter_leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value
