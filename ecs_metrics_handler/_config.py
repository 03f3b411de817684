"""Handler options: each declared once, with its default and its coercion.

Every field of :class:`HandlerOptions` is declared with :func:`option` (or
:func:`mapping_option`), which records in the field's metadata how a given value becomes the
field's value. :meth:`HandlerOptions.from_kwargs` is the single place where keyword options (from
Python code or from :func:`logging.config.dictConfig`, where every value may arrive as a string)
are checked and normalised, by one loop over those declarations. Every mistake raises
:class:`~ecs_metrics_handler.exceptions.ConfigurationError`, which is also a :class:`ValueError`,
naming the option, what it accepts and what was given. :class:`HandlerKwargs` types the same
options as keyword arguments, for static checkers.

Everything here is pure apart from reading the TLS files that ``ca_certs``, ``client_cert``
and ``client_key`` name (``_tls.py`` checks them at construction): no network, no global state.
All objects are immutable and therefore safe to share between threads.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypedDict, TypeVar, cast

from ._coerce import (
    Coercer,
    coerce_bool,
    coerce_enum,
    coerce_float,
    coerce_int,
    coerce_optional_str,
    coerce_path,
    coerce_str,
    integer,
    member_of,
    number,
)
from ._credentials import coerce_auth_details, coerce_aws_credential
from ._enums import AuthType, Backend, IndexMode, IndexNameFrequency, IndexTimezone
from ._fields import FrozenDict, coerce_env_fields, coerce_fields, empty_mapping, iter_leaves, thaw
from ._hosts import DEFAULT_HOST, DEFAULT_HOSTS, DEFAULT_PORT, coerce_hosts, parse_hosts
from ._index_names import (
    DEFAULT_INDEX_NAME,
    INDEX_DATE_SUFFIX_BYTES,
    MAX_INDEX_NAME_BYTES,
    elastic_data_stream_parts,
    validate_index_name,
    validate_index_prefix,
)
from ._option_coercions import (
    coerce_aggregation_interval,
    coerce_data_stream,
    coerce_index_mode,
    coerce_max_queue_records,
    coerce_metric_key,
    coerce_retry_backoff_max,
)
from ._redact import mask, redact_option
from ._tls import coerce_ca_certs, coerce_client_cert, coerce_client_key
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
    "Declaration",
    "FrozenDict",
    "HandlerKwargs",
    "HandlerOptions",
    "IndexMode",
    "IndexNameFrequency",
    "IndexTimezone",
    "coerce_bool",
    "coerce_enum",
    "coerce_float",
    "coerce_int",
    "iter_leaves",
    "mapping_option",
    "option",
    "parse_hosts",
    "thaw",
    "validate_index_name",
    "validate_index_prefix",
]

T = TypeVar("T")

#: The key of a :class:`Declaration` in a :class:`HandlerOptions` field's metadata.
_DECLARATION: Final = "ecs_metrics_handler.option"


@dataclasses.dataclass(frozen=True, slots=True)
class Declaration:
    """How :meth:`HandlerOptions.from_kwargs` obtains one option's value.

    ``coerce(name, given, *after_values)`` returns the value or raises
    :class:`ConfigurationError`. ``given`` is the keyword argument, or ``absent`` when the option
    is not passed. ``after`` names the options whose coerced values ``coerce`` also receives, in
    that order; they must be options without an ``after`` of their own.
    """

    coerce: Callable[..., object]
    absent: object
    after: tuple[str, ...] = ()


def option(
    default: T,
    coerce: Callable[..., T],
    *,
    after: tuple[str, ...] = (),
    absent: object = dataclasses.MISSING,
) -> T:
    """Declare a :class:`HandlerOptions` field: its default and how a given value is coerced.

    ``absent`` is what gets coerced when the option is not passed; by default ``default`` itself.
    See :class:`Declaration` for ``coerce`` and ``after``.
    """
    given_when_absent = default if absent is dataclasses.MISSING else absent
    declaration = Declaration(coerce, given_when_absent, after)
    return dataclasses.field(default=default, metadata={_DECLARATION: declaration})


def mapping_option(coerce: Coercer[Mapping[str, Any]]) -> Mapping[str, Any]:
    """Declare a nested-mapping field: empty by default, and None given means empty too."""
    declaration = Declaration(coerce, absent=None)
    return dataclasses.field(default_factory=empty_mapping, metadata={_DECLARATION: declaration})


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


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class HandlerOptions:
    """Every option of :class:`~ecs_metrics_handler.ElasticECSHandler`, validated and normalised.

    Build it with :meth:`from_kwargs`, which checks and coerces every value; the plain
    constructor trusts its arguments. Immutable: nested mappings are read-only views holding
    private copies, so an instance is safe to share between threads and between documents.
    Units: seconds for every ``*_sec``/timeout/backoff option, bytes for ``*_bytes``.
    The repr (and str) never shows a credential: ``auth_details=('elastic', '***')``.
    """

    #: Node URLs ``"scheme://host:port[/prefix]"``; absent means localhost:9200 over
    #: http, or https when ``use_ssl``.
    hosts: tuple[str, ...] = option(
        DEFAULT_HOSTS, coerce_hosts, after=("use_ssl",), absent=DEFAULT_HOST
    )
    #: How requests authenticate; ``auth_details`` or the AWS options complete it.
    auth_type: AuthType = option(AuthType.NO_AUTH, member_of(AuthType))
    #: BASIC_AUTH: ``(user, password)``; API_KEY: the encoded key or ``(id, key)``.
    auth_details: tuple[str, str] | str | None = option(
        None, coerce_auth_details, after=("auth_type",)
    )
    #: AWS_SIGNED_AUTH (required there, with ``aws_secret_key`` and ``aws_region``).
    aws_access_key: str | None = option(None, coerce_aws_credential, after=("auth_type",))
    aws_secret_key: str | None = option(None, coerce_aws_credential, after=("auth_type",))
    #: AWS_SIGNED_AUTH: the session token of temporary credentials.
    aws_session_token: str | None = option(None, coerce_optional_str)
    aws_region: str | None = option(None, coerce_aws_credential, after=("auth_type",))
    #: The AWS service signed for (``"aoss"`` for OpenSearch Serverless).
    aws_service: str = option("es", coerce_str)
    #: Use https for hosts given without a scheme.
    use_ssl: bool = option(False, coerce_bool)
    #: Verify the cluster's TLS certificate.
    verify_ssl: bool = option(True, coerce_bool)
    #: Path to a PEM bundle of CA certificates (checked at construction: exists, loads).
    ca_certs: str | None = option(None, coerce_ca_certs)
    #: Path to a PEM client certificate (and ``client_key`` to its key when separate); both
    #: are loaded at construction, so a missing file or a key that does not match fails then.
    client_cert: str | None = option(None, coerce_client_cert)
    client_key: str | None = option(None, coerce_client_key, after=("client_cert",))
    #: Records waiting in the buffer that wake the worker up (> 0).
    buffer_size: int = option(1000, integer(above=0))
    #: Seconds between two periodic flushes (> 0).
    flush_frequency_in_sec: float = option(1.0, number(above=0))
    #: Index prefix; the date suffix depends on ``index_name_frequency``.
    es_index_name: str = option(DEFAULT_INDEX_NAME, validate_index_prefix)
    #: How often the dated index changes (its date suffix).
    index_name_frequency: IndexNameFrequency = option(
        IndexNameFrequency.DAILY, member_of(IndexNameFrequency)
    )
    #: The calendar of the index date.
    index_name_timezone: IndexTimezone = option(IndexTimezone.UTC, member_of(IndexTimezone))
    #: When set, every document goes to this data stream instead of dated indices.
    data_stream: str | None = option(None, coerce_data_stream, after=("es_index_name",))
    #: Nested fields deep-merged into every document (dotted keys expanded).
    es_additional_fields: Mapping[str, Any] = mapping_option(coerce_fields)
    #: Nested fields whose leaves are environment variable NAMES, read at each document.
    es_additional_fields_in_env: Mapping[str, Any] = mapping_option(coerce_env_fields)
    #: Folder of the documents the cluster could not take; None drops (and counts) them.
    flush_failure_folder: str | None = option(None, coerce_path)
    #: Bytes the failure folder may hold before new documents are dropped (> 0; 1 GiB).
    flush_failure_folder_max_bytes: int = option(1 << 30, integer(above=0))
    #: Use a failure folder other users may write (owned by another user, group- or
    #: world-writable); refused otherwise, since whoever writes it chooses what is replayed.
    flush_failure_folder_allow_insecure: bool = option(False, coerce_bool)
    #: Ship ordinary records (no metric payload) as ECS log events too.
    ship_log_records: bool = option(False, coerce_bool)
    #: The ``extra`` key that carries a metric payload.
    metric_key: str = option("metric", coerce_metric_key)
    #: ``service.name``; None means :attr:`resolved_service_name`.
    service_name: str | None = option(None, coerce_optional_str)
    #: ``service.version`` and ``service.environment`` when set.
    service_version: str | None = option(None, coerce_optional_str)
    service_environment: str | None = option(None, coerce_optional_str)
    #: ``event.dataset``; None means :attr:`resolved_event_dataset`.
    event_dataset: str | None = option(None, coerce_optional_str)
    #: The client library that talks to the cluster.
    backend: Backend = option(Backend.ELASTICSEARCH, member_of(Backend))
    #: Seconds one HTTP request may take (> 0).
    request_timeout: float = option(10.0, number(above=0))
    #: Retries of retryable item failures (>= 0).
    max_retries: int = option(5, integer(at_least=0))
    #: First retry delay in seconds (> 0), doubled up to ``retry_backoff_max``.
    retry_backoff_initial: float = option(0.5, number(above=0))
    #: Longest retry delay in seconds (>= retry_backoff_initial).
    retry_backoff_max: float = option(
        30.0, coerce_retry_backoff_max, after=("retry_backoff_initial",)
    )
    #: Records held in memory before the handler drops (and counts) new ones (>= buffer_size).
    max_queue_records: int = option(30_000, coerce_max_queue_records, after=("buffer_size",))
    #: Serialised bytes held in memory waiting to ship or to be spooled (> 0; 12 MiB).
    max_pending_bytes: int = option(12 << 20, integer(above=0))
    #: Seconds ``flush()`` and ``close()`` may block (> 0).
    flush_timeout: float = option(5.0, number(above=0))
    #: Install the index (or data stream) template when the worker starts.
    install_template: bool = option(False, coerce_bool)
    #: Seconds of one aggregation interval (> 0); None ships one document per metric.
    aggregation_interval: float | None = option(None, coerce_aggregation_interval)
    #: Series per aggregation interval before new ones fold into overflow series (> 0).
    max_series: int = option(10_000, integer(above=0))
    #: ``time_series``: the template makes time-series indices (needs aggregation_interval).
    index_mode: IndexMode = option(
        IndexMode.STANDARD, coerce_index_mode, after=("aggregation_interval", "backend")
    )

    def __repr__(self) -> str:
        shown = (
            f"{field.name}={redact_option(field.name, getattr(self, field.name))!r}"
            for field in dataclasses.fields(self)
        )
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def resolved_service_name(self) -> str:
        """``service_name``, else the stem of ``sys.argv[0]``, else ``"python"``."""
        return self.service_name or _default_service_name()

    @property
    def resolved_event_dataset(self) -> str:
        """``event_dataset``; else the dataset of a ``data_stream`` named the Elastic way
        (``metrics-<dataset>-<namespace>``); else ``f"{resolved_service_name}.metrics"``."""
        if self.event_dataset:
            return self.event_dataset
        parts = self.data_stream_parts
        if parts is not None:
            return parts[1]
        return f"{self.resolved_service_name}.metrics"

    @property
    def data_stream_parts(self) -> tuple[str, str, str] | None:
        """``(type, dataset, namespace)`` when ``data_stream`` follows Elastic's naming, else
        None (then documents carry no ``data_stream.*`` fields)."""
        if self.data_stream is None:
            return None
        return elastic_data_stream_parts(self.data_stream)

    @property
    def target_prefix(self) -> str:
        """The data stream name when one is set, else the index prefix."""
        return self.data_stream or self.es_index_name

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> HandlerOptions:
        """Validate and coerce keyword options; the only place that does.

        Unknown names raise :class:`ConfigurationError` suggesting the closest known name (and
        showing the value's shape only, since a misspelt credential option may hold a secret).
        Booleans accept bools and ``"true"/"false"/"yes"/"no"/"1"/"0"``; numbers accept ints,
        floats and numeric strings but never a bool; enums accept names or values in any case.
        """
        for name, value in kwargs.items():
            if name not in OPTION_NAMES:
                close = difflib.get_close_matches(name, sorted(OPTION_NAMES), n=3, cutoff=0.6)
                hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
                # The value of a misspelt option may be a credential: show its shape only.
                raise ConfigurationError(name, f"a known option{hint}", mask(value))
        return _build_options(kwargs)


class HandlerKwargs(TypedDict, total=False):
    """The handler's options as keyword arguments, with every type they accept.

    One key per :class:`HandlerOptions` field; README.rst documents each with its default.
    """

    hosts: Any
    auth_type: AuthType | str
    auth_details: Any
    aws_access_key: str | None
    aws_secret_key: str | None
    aws_session_token: str | None
    aws_region: str | None
    aws_service: str
    use_ssl: bool | str
    verify_ssl: bool | str
    ca_certs: str | os.PathLike[str] | None
    client_cert: str | os.PathLike[str] | None
    client_key: str | os.PathLike[str] | None
    buffer_size: int | str
    flush_frequency_in_sec: float | str
    es_index_name: str
    index_name_frequency: IndexNameFrequency | str
    index_name_timezone: Any
    data_stream: str | None
    es_additional_fields: Mapping[str, Any]
    es_additional_fields_in_env: Mapping[str, Any]
    flush_failure_folder: str | os.PathLike[str] | None
    flush_failure_folder_max_bytes: int | str
    flush_failure_folder_allow_insecure: bool | str
    ship_log_records: bool | str
    metric_key: str
    service_name: str | None
    service_version: str | None
    service_environment: str | None
    event_dataset: str | None
    backend: Any
    request_timeout: float | str
    max_retries: int | str
    retry_backoff_initial: float | str
    retry_backoff_max: float | str
    max_queue_records: int | str
    max_pending_bytes: int | str
    flush_timeout: float | str
    install_template: bool | str
    aggregation_interval: float | str | None
    max_series: int | str
    index_mode: IndexMode | str


def _declarations_in_coercion_order() -> dict[str, Declaration]:
    """Every option's declaration: those coerced on their own first, then those with ``after``.

    Each group keeps the order of the fields.
    """
    declarations = {
        field.name: cast(Declaration, field.metadata[_DECLARATION])
        for field in dataclasses.fields(HandlerOptions)
    }
    alone = {name: d for name, d in declarations.items() if not d.after}
    for name, declaration in declarations.items():
        if not set(declaration.after) <= alone.keys():
            raise TypeError(f"option {name!r}: 'after' must name options without an 'after'")
    return {**alone, **{name: d for name, d in declarations.items() if d.after}}


#: Name -> declaration, in the order :meth:`HandlerOptions.from_kwargs` coerces them.
_DECLARATIONS: Final[Mapping[str, Declaration]] = _declarations_in_coercion_order()
OPTION_NAMES: Final = frozenset(_DECLARATIONS)


def _build_options(kwargs: Mapping[str, Any]) -> HandlerOptions:
    values: dict[str, Any] = {}
    for name, declaration in _DECLARATIONS.items():
        given = kwargs.get(name, declaration.absent)
        after = (values[other] for other in declaration.after)
        values[name] = declaration.coerce(name, given, *after)
    return HandlerOptions(**values)
