"""Host parsing: the ``hosts`` option, in any of the forms the original library accepted.

:func:`parse_hosts` turns URLs, ``"host:port"`` strings, ``{"host": ..., "port": ...}`` mappings
and lists of them into a tuple of normalised URLs ``"scheme://host:port[/prefix]"``.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

from ._coerce import coerce_bool
from .exceptions import ConfigurationError

__all__ = ["DEFAULT_HOST", "DEFAULT_HOSTS", "DEFAULT_PORT", "coerce_hosts", "parse_hosts"]

#: The port of a host given without one.
DEFAULT_PORT: Final = 9200
#: The host used when the ``hosts`` option is absent or None.
DEFAULT_HOST: Final = "localhost"
#: The ``hosts`` option's default: :data:`DEFAULT_HOST` on :data:`DEFAULT_PORT` over http.
DEFAULT_HOSTS: Final = (f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",)
_SCHEMES: Final = ("http", "https")
_HOSTNAME_RE: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)


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
    if "@" in text:
        # Refused before parsing: a password holding "/", "?" or "#" would otherwise end the
        # userinfo early and pass, in clear, as a host name or URL prefix.
        raise ConfigurationError(
            option, "a host URL without credentials (put them in auth_details)", given
        )
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


def _parse_host_dict(option: str, entry: Mapping[Any, Any], default_scheme: str) -> str:
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
    1..65535, a scheme other than http/https, credentials inside a URL (any ``@``), or a string
    that does not parse as a host.
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
            parsed = [_parse_host_dict(option, entry, default_scheme)]
        else:
            raise ConfigurationError(option, "a host URL or a {'host', 'port'} mapping", entry)
        urls.extend(url for url in parsed if url not in urls)
    if not urls:
        raise ConfigurationError(option, "at least one host", hosts)
    return tuple(urls)


def coerce_hosts(option: str, value: object, use_ssl: bool) -> tuple[str, ...]:
    """The ``hosts`` option: :func:`parse_hosts`, where None means :data:`DEFAULT_HOST`.

    So an absent ``hosts`` follows ``use_ssl``: ``("https://localhost:9200",)`` when it is set.
    With ``use_ssl`` a host whose URL (or mapping) says ``http`` is refused: TLS was asked for
    and that host would not get it.
    """
    urls = parse_hosts(option, DEFAULT_HOST if value is None else value, use_ssl=use_ssl)
    plain = [url for url in urls if url.startswith("http://")]
    if use_ssl and plain:
        raise ConfigurationError(
            option, "https hosts when use_ssl is True (write https:// or drop use_ssl)", plain[0]
        )
    return urls
