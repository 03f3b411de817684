"""Index-name rules: what Elasticsearch accepts as an index, index prefix or data stream name."""

from __future__ import annotations

from typing import Final

from .exceptions import ConfigurationError

__all__ = [
    "DEFAULT_INDEX_NAME",
    "ELASTIC_DATA_STREAM_TYPES",
    "INDEX_DATE_SUFFIX_BYTES",
    "MAX_INDEX_NAME_BYTES",
    "elastic_data_stream_parts",
    "validate_data_stream_name",
    "validate_index_name",
    "validate_index_prefix",
]

#: The default index prefix (option ``es_index_name``).
DEFAULT_INDEX_NAME: Final = "python_metrics"
#: Elasticsearch refuses index names longer than this many bytes of UTF-8.
MAX_INDEX_NAME_BYTES: Final = 255
#: Bytes an index prefix must leave free for the longest date suffix, ``"-YYYY.MM.DD"``.
INDEX_DATE_SUFFIX_BYTES: Final = 11
#: Bytes a data stream name must leave free for its backing indices,
#: ``".ds-" + name + "-YYYY.MM.DD-000001"``.
_DATA_STREAM_RESERVED_BYTES: Final = 22
#: The ``data_stream.type`` values of Elastic's data stream naming scheme.
ELASTIC_DATA_STREAM_TYPES: Final = frozenset(
    {"logs", "metrics", "traces", "synthetics", "profiling"}
)
_INDEX_FORBIDDEN_CHARS: Final = ("\\", "/", "*", "?", '"', "<", ">", "|", ",", "#", ":", " ")


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


def validate_data_stream_name(option: str, name: object) -> str:
    """Check a data stream name: :func:`validate_index_name` leaving room for its backing indices.

    So the name is at most 233 bytes of UTF-8, and it may not start with ``.ds-`` (the prefix of
    backing index names).
    """
    checked = validate_index_name(option, name, reserved_bytes=_DATA_STREAM_RESERVED_BYTES)
    if checked.startswith(".ds-"):
        raise ConfigurationError(option, "a data stream name not starting with '.ds-'", checked)
    return checked


def elastic_data_stream_parts(name: str) -> tuple[str, str, str] | None:
    """``(type, dataset, namespace)`` of a name in Elastic's ``<type>-<dataset>-<namespace>``
    scheme (``metrics-shop.db-production``), else None.

    The scheme: a known type, then a dataset and a namespace, each non-empty, without ``-``
    and at most 100 bytes. Pure.
    """
    parts = name.split("-")
    if len(parts) != 3 or parts[0] not in ELASTIC_DATA_STREAM_TYPES:
        return None
    kind, dataset, namespace = parts
    if not dataset or not namespace or len(dataset.encode()) > 100 or len(namespace.encode()) > 100:
        return None
    return kind, dataset, namespace
