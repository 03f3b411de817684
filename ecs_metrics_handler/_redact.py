"""Redaction: what may be shown of a secret, decided in one place.

Everything this package shows a person goes through these functions: the reprs of the handler
and of :class:`~ecs_metrics_handler._config.HandlerOptions`, the messages of
:class:`~ecs_metrics_handler.ConfigurationError`, the worker's reports, the reasons written to
the failure folder and the command line's output. The rules:

* An option or mapping key whose name says it holds a credential (:func:`is_secret_name`:
  ``auth_details``, ``aws_access_key``, ``aws_secret_key``, ``aws_session_token``, and keys
  such as ``password``, ``token``, ``api_key``, ``authorization``) is shown by its shape only:
  every non-empty string in it becomes :data:`REDACTED` (:func:`mask`); ``('', 'pw')`` shows as
  ``('', '***')``, so a person still sees that the user is empty. A valid stored credential
  keeps its first half when it is a pair (the user name, or the API key's id):
  :func:`redact_option`.
* The userinfo of a URL keeps the user and loses the password: ``http://elastic:***@host:9200``;
  a userinfo without a colon (a token) becomes ``***`` entirely. A string that is one URL
  (:func:`redact_url`, used for option values) loses everything up to its last ``@``, so a
  password holding ``@``, ``/``, ``?`` or spaces is hidden whole; in free text (a client's
  error, :func:`redact_text`) every ``scheme://userinfo@`` is found up to the first ``/``,
  ``?``, ``#`` or space, as a URL the client built (percent-encoded) has them.

Pure and thread-safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "REDACTED",
    "is_secret_name",
    "mask",
    "redact",
    "redact_given",
    "redact_option",
    "redact_text",
    "redact_url",
]

#: What a secret is shown as.
REDACTED: Final = "***"

_SECRET_NAME_RE: Final = re.compile(
    r"auth_details|(?<![a-z])pass(word|wd|phrase)?(?![a-z])|secret|token|"
    r"(api|access|private)[_-]?key|authorization|credential|cookie",
    re.IGNORECASE,
)
# scheme://userinfo@ : greedy up to the last "@" before the path, so a password holding an
# unencoded "@" is hidden whole.
_URL_START_RE: Final = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*://")
_USERINFO_RE: Final = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@"
)


class _Shown:
    """A placeholder whose repr is ``text``: what :func:`mask` shows of an unknown object."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Shown) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Shown, (self.text,))


def is_secret_name(name: object) -> bool:
    """Whether an option or mapping key named ``name`` holds a credential."""
    return isinstance(name, str) and _SECRET_NAME_RE.search(name) is not None


def _hide_userinfo(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{REDACTED}" if colon else REDACTED


def redact_url(value: str) -> str:
    """A string given as a URL, with everything between ``://`` (or its start, for
    ``user:password@host``) and its last ``@`` hidden but the user."""
    start = _URL_START_RE.match(value)
    if start is None:
        if "@" in value:
            userinfo, _, rest = value.rpartition("@")
            return f"{_hide_userinfo(userinfo)}@{rest}"
        return value
    userinfo, at, rest = value[start.end() :].rpartition("@")
    if not at:
        return value
    return f"{value[: start.end()]}{_hide_userinfo(userinfo)}@{rest}"


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced."""
    return _USERINFO_RE.sub(
        lambda match: f"{match['scheme']}{_hide_userinfo(match['userinfo'])}@", text
    )


def mask(value: object) -> Any:
    """``value`` with every non-empty string (or bytes) in it replaced by :data:`REDACTED`.

    Keeps the shape: tuples, lists and mappings (with their keys), ``None``, booleans and
    numbers stay; any other object shows as ``<TypeName>``.
    """
    if isinstance(value, (str, bytes, bytearray)):
        return REDACTED if value else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, tuple):
        return tuple(mask(item) for item in value)
    if isinstance(value, list):
        return [mask(item) for item in value]
    if isinstance(value, Mapping):
        return {key: mask(item) for key, item in value.items()}
    return _Shown(f"<{type(value).__name__}>")


def redact(value: object) -> Any:
    """``value`` safe to show: URLs in strings redacted, secret-named mapping keys masked.

    Containers are copied, anything else is returned as is.
    """
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, Mapping):
        return {
            key: mask(item) if is_secret_name(key) else redact(item) for key, item in value.items()
        }
    return value


def redact_given(option: str, given: object) -> Any:
    """What a :class:`~ecs_metrics_handler.ConfigurationError` shows of ``given`` for ``option``."""
    return mask(given) if is_secret_name(option) else redact(given)


def redact_option(name: str, value: object) -> Any:
    """What a repr shows of the valid, stored value of option ``name``.

    A credential pair keeps its first item (the user, the API key's id); any other credential
    is :func:`mask`-ed; other options are :func:`redact`-ed.
    """
    if not is_secret_name(name):
        return redact(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return (value[0], mask(value[1]))
    return mask(value)
