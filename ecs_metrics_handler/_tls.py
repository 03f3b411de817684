"""TLS: the certificate options checked at construction, plain http with credentials, and
what a failed certificate verification means.

* :func:`coerce_ca_certs`, :func:`coerce_client_cert`, :func:`coerce_client_key` check the
  files named by ``ca_certs``, ``client_cert`` and ``client_key`` when the options are built:
  each must exist, be readable and load as PEM (with :mod:`ssl`, a few milliseconds), and the
  key must match the certificate. A mistake raises
  :class:`~ecs_metrics_handler.ConfigurationError` naming the option, instead of a vague
  ``TLS error`` at the first request.
* ``use_ssl=True`` with a host URL that says ``http://`` is refused (``_hosts.coerce_hosts``):
  the caller asked for TLS and would not get it. Credentials configured with a plain ``http``
  host are only warned about, once per handler (:func:`warn_if_plain_http`): local development
  clusters commonly run that way, and refusing would break them.
* :func:`tls_failure_cause` turns a client's error into what a person can act on: an unknown
  CA or a self-signed certificate, a host name the certificate does not hold, an expired
  certificate, a node that does not speak TLS at all.

Everything but :func:`warn_if_plain_http` (which logs) is pure apart from reading the files.
Thread-safe.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Final

from ._coerce import coerce_path
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._config import HandlerOptions

__all__ = [
    "coerce_ca_certs",
    "coerce_client_cert",
    "coerce_client_key",
    "plain_http_warning",
    "tls_failure_cause",
    "warn_if_plain_http",
]

_logger = logging.getLogger("ecs_metrics_handler")

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h), as ssl.SSLCertVerificationError.verify_code.
_UNKNOWN_CA: Final = frozenset({2, 18, 19, 20, 21})  # issuer unknown, self-signed, no chain
_EXPIRED: Final = frozenset({10, 12})  # certificate, CRL expired
_NOT_YET_VALID: Final = frozenset({9, 11})
_HOSTNAME_MISMATCH: Final = frozenset({62, 63, 64})  # host name, e-mail, IP address mismatch
_REVOKED: Final = 23
_HOSTNAME_MISMATCH_CODE: Final = 62


def _check_readable(option: str, path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ConfigurationError(option, f"an existing {what} (no such file)", path) from None
    except IsADirectoryError:
        raise ConfigurationError(option, f"a {what}, not a directory", path) from None
    except OSError as e:
        raise ConfigurationError(
            option, f"a readable {what} ({e.strerror or type(e).__name__})", path
        ) from e


def coerce_ca_certs(option: str, value: object) -> str | None:
    """``ca_certs``: None, or the path of a readable PEM file holding CA certificates."""
    path = coerce_path(option, value)
    if path is None:
        return None
    what = "PEM file of CA certificates"
    data = _check_readable(option, path, what)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigurationError(option, f"a {what} (no certificate in it)", path)
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as e:
        raise ConfigurationError(option, f"a {what} ({_ssl_reason(e)})", path) from e
    return path


def coerce_client_cert(option: str, value: object) -> str | None:
    """``client_cert``: None, or the path of a readable PEM file holding a certificate."""
    path = coerce_path(option, value)
    if path is None:
        return None
    data = _check_readable(option, path, "PEM certificate file")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigurationError(option, "a PEM certificate file (no certificate in it)", path)
    return path


class _EncryptedKeyError(Exception):
    pass


def _no_password() -> bytes:
    # Called by OpenSSL only for an encrypted key: the clients have no option for its password.
    raise _EncryptedKeyError


def coerce_client_key(option: str, value: object, client_cert: str | None) -> str | None:
    """``client_key``: None or a PEM private key path, only with ``client_cert``.

    The certificate and the key (or the certificate file alone, which must then hold the key
    too) are loaded as the clients will load them: an encrypted key, a key that does not
    match the certificate, or a certificate file without a key raises ConfigurationError.
    """
    key = coerce_path(option, value)
    if key is not None and client_cert is None:
        raise ConfigurationError(option, "to be given together with client_cert", key)
    if client_cert is None:
        return None
    if key is not None:
        _check_readable(option, key, "PEM private key file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(client_cert, key, password=_no_password)
    except _EncryptedKeyError:
        raise ConfigurationError(
            option if key else "client_cert",
            "an unencrypted PEM private key (the clients take no key password)",
            key or client_cert,
        ) from None
    except (ssl.SSLError, ValueError) as e:
        if key is None:
            raise ConfigurationError(
                "client_cert",
                "a PEM file holding the certificate and its private key, or client_key "
                f"naming the key ({_ssl_reason(e)})",
                client_cert,
            ) from e
        raise ConfigurationError(
            option, f"the PEM private key of client_cert ({_ssl_reason(e)})", key
        ) from e
    return key


def _ssl_reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None)
    return str(reason).replace("_", " ").lower() if reason else str(e) or type(e).__name__


# ------------------------------------------------------------------------- plain http


def plain_http_warning(options: HandlerOptions) -> str | None:
    """The warning for credentials sent over plain ``http``, or None. Pure."""
    from ._enums import AuthType

    if options.auth_type is AuthType.NO_AUTH:
        return None
    plain = [url for url in options.hosts if url.startswith("http://")]
    if not plain:
        return None
    return (
        f"ecs_metrics_handler: {options.auth_type.name} credentials go unencrypted over plain "
        f"http to {', '.join(plain)}; anyone on the network can read them. Use https:// URLs "
        "(or use_ssl=True for hosts given without a scheme) unless this is a local cluster"
    )


def warn_if_plain_http(options: HandlerOptions) -> None:
    """Log :func:`plain_http_warning` at WARNING on the ``ecs_metrics_handler`` logger."""
    warning = plain_http_warning(options)
    if warning is not None:
        _logger.warning("%s", warning)


# ------------------------------------------------------------------------- failures


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it wraps (cause, context, and the clients' ``errors`` or
    exception ``args``), each once, outermost first."""
    seen: set[int] = set()
    out: list[BaseException] = []
    todo = [error]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        nested = [e.__cause__, e.__context__, *(getattr(e, "errors", None) or ()), *e.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))
    return out


def verification_cause(verify_code: int, verify_message: str) -> str:
    """What an OpenSSL certificate verification failure means, and what to do. Pure."""
    detail = f" ({verify_message})" if verify_message else ""
    if verify_code in _UNKNOWN_CA:
        return (
            f"unknown CA or self-signed certificate{detail}: set ca_certs to the CA that "
            "signed the cluster's certificate"
        )
    if verify_code in _HOSTNAME_MISMATCH:
        return (
            f"hostname mismatch{detail}: connect by a name or address the certificate holds "
            "(its subject alternative names)"
        )
    if verify_code in _EXPIRED:
        return f"certificate expired{detail}: the cluster needs a renewed certificate"
    if verify_code in _NOT_YET_VALID:
        return f"certificate not yet valid{detail}: check the clocks"
    if verify_code == _REVOKED:
        return f"certificate revoked{detail}"
    return f"code {verify_code}{detail}"


def tls_failure_cause(error: BaseException) -> str | None:
    """What went wrong in the TLS handshake behind a client's ``error``; None if it was not one."""
    chain = _chain(error)
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            cause = verification_cause(e.verify_code, e.verify_message)
            return f"TLS certificate verification failed: {cause}"
        if type(e).__name__ == "CertificateError" and isinstance(e, ValueError):
            # urllib3 checks an IP address host itself, after the handshake, with its own class.
            cause = verification_cause(_HOSTNAME_MISMATCH_CODE, str(e))
            return f"TLS certificate verification failed: {cause}"
    for e in chain:
        if isinstance(e, ssl.SSLError):
            reason = getattr(e, "reason", None)
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL"):
                return (
                    f"TLS handshake failed ({reason}): the node does not speak TLS on this "
                    "port; is its URL http://?"
                )
            return f"TLS handshake failed: {e}"
    return None
