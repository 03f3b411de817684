"""Redaction: no credential shows in a repr, an option error or a report."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecs_metrics_handler import ElasticECSHandler
from ecs_metrics_handler._config import OPTION_NAMES, HandlerOptions
from ecs_metrics_handler._redact import (
    REDACTED,
    is_secret_name,
    mask,
    redact,
    redact_option,
    redact_text,
    redact_url,
)
from ecs_metrics_handler._report import Reporter
from ecs_metrics_handler.exceptions import ConfigurationError

CANARY = "canary-S3CRET-4f1d"
# Long enough and marked so that it cannot occur by chance in a message.
# No ":" in a secret: in a URL's userinfo the part before a ":" is the user name, which is
# shown on purpose (``http://elastic:***@host``), so a "secret" holding one would be half shown.
secrets = st.text(min_size=1, max_size=30).map(lambda s: f"Zq9{s}".replace(":", "."))


def test_the_credential_options_are_exactly_the_secret_named_ones() -> None:
    """Every option that can carry a credential is masked; no other option is (so their
    errors stay helpful)."""
    assert {name for name in OPTION_NAMES if is_secret_name(name)} == {
        "auth_details",
        "aws_access_key",
        "aws_secret_key",
        "aws_session_token",
    }


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://elastic:pw@host:9200", f"http://elastic:{REDACTED}@host:9200"),
        ("https://tok@host", f"https://{REDACTED}@host"),
        ("error at http://u:p@ss@h:1/x?mail=a@b", f"error at http://u:{REDACTED}@h:1/x?mail=a@b"),
        ("http://host:9200/a@b", "http://host:9200/a@b"),
        ("no url here: user@example.com", "no url here: user@example.com"),
        ("two: http://a:1@x, https://b:2@y", f"two: http://a:{REDACTED}@x, https://b:{REDACTED}@y"),
    ],
)
def test_url_userinfo_in_a_text_keeps_the_user_and_hides_the_password(
    text: str, shown: str
) -> None:
    """Only the password (or a bare token) of a URL's userinfo goes."""
    assert redact_text(text) == shown


@given(secret=secrets)
def test_a_url_given_hides_any_password_whole(secret: str) -> None:
    """A password with @, /, ?, # or spaces in it, as a person may type it, is hidden whole."""
    shown = redact_url(f" https://elastic:{secret}@es1:9200/prefix")
    assert shown == f" https://elastic:{REDACTED}@es1:9200/prefix"
    token = secret.replace(":", "")  # a token holding ":" reads as user:password
    assert redact_url(f"http://{token}@es1") == f"http://{REDACTED}@es1"


def test_mask_keeps_the_shape_and_hides_every_string() -> None:
    """('', 'pw') still shows that the user is empty."""
    assert mask(("", "pw")) == ("", REDACTED)
    assert mask(["key", 5, None, True]) == [REDACTED, 5, None, True]
    assert mask({"k": "v"}) == {"k": REDACTED}
    assert repr(mask(object())) == "<object>"
    assert redact({"host": "h", "password": "pw"}) == {"host": "h", "password": REDACTED}
    assert redact_option("auth_details", ("elastic", "pw")) == ("elastic", REDACTED)
    assert redact_option("auth_details", "encoded") == REDACTED
    assert redact_option("hosts", ("http://h:9200",)) == ("http://h:9200",)


@given(secret=secrets)
def test_no_configuration_error_shows_a_credential(secret: str) -> None:
    """Every wrong credential option, and a URL with a password, fails without echoing it."""
    cases: list[dict[str, Any]] = [
        {"auth_type": "basic_auth", "auth_details": ("", secret)},
        {"auth_type": "basic_auth", "auth_details": secret},
        {"auth_type": "basic_auth", "auth_details": (secret, 5)},
        {"auth_type": "api_key", "auth_details": ("id", "")},
        {"auth_type": "api_key", "auth_details": [secret, 5]},
        {"auth_type": "api_key", "auth_details": (secret,)},
        {"auth_details": {"password": secret}},
        {"aws_session_token": [secret]},
        {"auth_type": "aws_signed_auth", "aws_access_key": secret, "aws_secret_key": ""},
        {"auth_type": "aws_signed_auth", "aws_secret_key": secret, "aws_region": ""},
        {"hosts": f"http://elastic:{secret}@localhost:9200"},
        {"hosts": [f"https://{secret}@es1:9200"]},
        {"hosts": [{"host": "es1", "password": secret}]},
        {"hosts": f"elastic:{secret}@es1:9200"},
        {"hosts": {"host": f"elastic:{secret}@es1"}},
        {"auth_detail": ("elastic", secret)},  # a misspelt option name
        {"api_key": secret},
    ]
    for kwargs in cases:
        with pytest.raises(ConfigurationError) as caught:
            HandlerOptions.from_kwargs(**kwargs)
        error = caught.value
        for text in (
            str(error),
            repr(error),
            repr(error.given),
            repr(pickle.loads(pickle.dumps(error))),
        ):
            assert secret not in text, (kwargs, text)


def test_a_url_error_keeps_the_user_and_the_host() -> None:
    """The person still sees which URL is wrong."""
    with pytest.raises(ConfigurationError) as caught:
        HandlerOptions.from_kwargs(hosts=f"http://elastic:{CANARY}@es1:9200")
    assert f"'http://elastic:{REDACTED}@es1:9200'" in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth_type": "basic_auth", "auth_details": ("elastic", CANARY)},
        {"auth_type": "api_key", "auth_details": CANARY},
        {"auth_type": "api_key", "auth_details": ("key-id", CANARY)},
        {
            "auth_type": "aws_signed_auth",
            "aws_access_key": CANARY + "-id",
            "aws_secret_key": CANARY,
            "aws_session_token": CANARY + "-token",
            "aws_region": "eu-west-1",
        },
        {"auth_details": ("user", CANARY)},  # ignored without an auth_type, still hidden
    ],
)
def test_options_and_handler_reprs_hide_credentials(kwargs: dict[str, Any]) -> None:
    """repr/str of the options and of the handler never carry a credential."""
    options = HandlerOptions.from_kwargs(**kwargs)
    assert CANARY not in repr(options)
    assert CANARY not in str(options)
    handler = ElasticECSHandler(**kwargs)
    try:
        for text in (repr(handler), str(handler), repr(handler.options), str(handler.options)):
            assert CANARY not in text
    finally:
        handler.close()


def test_the_options_repr_still_shows_the_user_and_every_other_option() -> None:
    """Only the secret half goes."""
    options = HandlerOptions.from_kwargs(
        auth_type="basic_auth", auth_details=("elastic", CANARY), buffer_size=7
    )
    text = repr(options)
    assert f"auth_details=('elastic', '{REDACTED}')" in text
    assert "buffer_size=7" in text
    assert text.startswith("HandlerOptions(hosts=('http://localhost:9200',), ")


def test_reports_hide_url_passwords(caplog: pytest.LogCaptureFixture) -> None:
    """A client error that quotes a URL with its password is reported without it."""
    logger = logging.getLogger("tests.redact.reporter")
    reporter = Reporter(logger, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger=logger.name):
        reporter.warning("k", "failed: %s (%d)", ValueError(f"http://u:{CANARY}@h:1"), 3)
        reporter.info("info %s", f"https://u:{CANARY}@h")
    assert CANARY not in caplog.text
    assert f"failed: http://u:{REDACTED}@h:1 (3)" in caplog.text
