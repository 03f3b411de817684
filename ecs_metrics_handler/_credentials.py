"""Credential options: ``auth_details`` and the AWS keys, whose rules depend on ``auth_type``."""

from __future__ import annotations

from ._coerce import coerce_optional_str
from ._enums import AuthType
from .exceptions import ConfigurationError

__all__ = ["coerce_auth_details", "coerce_aws_credential"]


def _pair_of_strings(value: object) -> tuple[str, str] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        first, second = value
        if isinstance(first, str) and isinstance(second, str):
            return (first, second)
    return None


def coerce_auth_details(
    option: str, value: object, auth_type: AuthType
) -> tuple[str, str] | str | None:
    """``auth_details`` for ``auth_type``: what BASIC_AUTH and API_KEY need, else ignored.

    BASIC_AUTH: a ``(user, password)`` pair of strings (a two-item list from JSON/YAML), the
    user not empty. API_KEY: the encoded key (surrounding spaces dropped) or an ``(id, key)``
    pair. Other types: None, a string or a pair, with ``("", "")`` (the original library's
    default) meaning None.
    """
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


def coerce_aws_credential(option: str, value: object, auth_type: AuthType) -> str | None:
    """A key id, secret key or region: optional, but required by ``AWS_SIGNED_AUTH``."""
    credential = coerce_optional_str(option, value)
    if auth_type is AuthType.AWS_SIGNED_AUTH and not credential:
        raise ConfigurationError(
            option, "a non-empty string when auth_type is AWS_SIGNED_AUTH", value
        )
    return credential
