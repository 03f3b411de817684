"""TLS options checked at construction, plain http with credentials, verification causes."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from _certs import Pki, handshake_error, make_pki

from ecs_metrics_handler import ElasticECSHandler
from ecs_metrics_handler._config import HandlerOptions
from ecs_metrics_handler._tls import plain_http_warning, tls_failure_cause, verification_cause
from ecs_metrics_handler.exceptions import ConfigurationError


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _error(**kwargs: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        HandlerOptions.from_kwargs(**kwargs)
    return caught.value


def test_good_tls_files_are_accepted(pki: Pki) -> None:
    """A CA bundle, a certificate and its key load; the paths are kept as given."""
    options = HandlerOptions.from_kwargs(
        ca_certs=pki.ca, client_cert=pki.cert, client_key=str(pki.key)
    )
    assert (options.ca_certs, options.client_cert, options.client_key) == (
        str(pki.ca),
        str(pki.cert),
        str(pki.key),
    )


def test_a_certificate_file_holding_its_key_needs_no_client_key(pki: Pki, tmp_path: Path) -> None:
    """client_cert alone may hold the certificate and the key."""
    both = tmp_path / "both.pem"
    both.write_bytes(pki.cert.read_bytes() + pki.key.read_bytes())
    assert HandlerOptions.from_kwargs(client_cert=both).client_key is None
    error = _error(client_cert=pki.cert)
    assert (error.option, error.given) == ("client_cert", str(pki.cert))
    assert "private key" in str(error)


@pytest.mark.parametrize("option", ["ca_certs", "client_cert", "client_key"])
def test_a_missing_tls_file_names_its_option(option: str, pki: Pki, tmp_path: Path) -> None:
    """No such file, a directory, a file that is not PEM: ConfigurationError naming the option."""
    extra: dict[str, Any] = {"client_cert": pki.cert} if option == "client_key" else {}
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    for bad, words in (
        (tmp_path / "absent.pem", "no such file"),
        (tmp_path, "directory"),
        (not_pem, ""),
    ):
        error = _error(**{**extra, option: bad})
        assert error.option == option, str(error)
        assert error.given == str(bad)
        assert words in str(error)


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root reads anything",
)
def test_an_unreadable_tls_file_names_its_option(pki: Pki, tmp_path: Path) -> None:
    """Permission denied is said."""
    copy = tmp_path / "ca.pem"
    copy.write_bytes(pki.ca.read_bytes())
    copy.chmod(0)
    assert "readable" in str(_error(ca_certs=copy))


def test_a_key_of_another_certificate_or_encrypted_is_refused(pki: Pki, tmp_path: Path) -> None:
    """The key must match the certificate and be usable without a password."""
    other = make_pki(tmp_path, name="other")
    error = _error(client_cert=pki.cert, client_key=other.key)
    assert (error.option, error.given) == ("client_key", str(other.key))
    assert "private key of client_cert" in str(error)
    locked = make_pki(tmp_path, name="locked", key_password=b"pw")
    error = _error(client_cert=locked.cert, client_key=locked.key)
    assert (error.option, error.given) == ("client_key", str(locked.key))
    assert "unencrypted" in str(error)


def test_a_ca_file_without_certificates_is_refused(pki: Pki) -> None:
    """A key where the CA bundle belongs fails at construction."""
    error = _error(ca_certs=pki.key)
    assert error.option == "ca_certs"
    assert "no certificate" in str(error)


def test_use_ssl_with_an_http_url_is_refused() -> None:
    """TLS was asked for; the host named would not get it."""
    error = _error(use_ssl=True, hosts=["https://es1:9200", "http://es2:9200"])
    assert (error.option, error.given) == ("hosts", "http://es2:9200")
    assert "use_ssl" in str(error)
    error = _error(use_ssl=True, hosts=[{"host": "es3", "scheme": "http"}])
    assert error.given == "http://es3:9200"
    assert HandlerOptions.from_kwargs(use_ssl=True, hosts="es1").hosts == ("https://es1:9200",)


@pytest.mark.parametrize(
    ("kwargs", "warned"),
    [
        ({"auth_type": "basic_auth", "auth_details": ("u", "p"), "hosts": "http://es1"}, True),
        ({"auth_type": "api_key", "auth_details": "k", "hosts": ["https://a", "http://b"]}, True),
        ({"auth_type": "api_key", "auth_details": "k", "hosts": "https://es1"}, False),
        ({"hosts": "http://es1"}, False),
    ],
)
def test_credentials_over_plain_http_are_warned_about(kwargs: dict[str, Any], warned: bool) -> None:
    """A warning (not an error: local clusters run so) names the plain http hosts."""
    warning = plain_http_warning(HandlerOptions.from_kwargs(**kwargs))
    assert (warning is not None) is warned
    if warning:
        assert "http://" in warning
        assert "unencrypted" in warning


def test_the_handler_warns_once_at_construction(caplog: pytest.LogCaptureFixture) -> None:
    """One WARNING on the package logger, without the password."""
    with caplog.at_level(logging.WARNING, logger="ecs_metrics_handler"):
        handler = ElasticECSHandler(
            hosts="http://127.0.0.1:9", auth_type="basic_auth", auth_details=("u", "pw-canary")
        )
        handler.close()
    warnings = [r for r in caplog.records if "unencrypted" in r.getMessage()]
    assert len(warnings) == 1
    assert "http://127.0.0.1:9" in warnings[0].getMessage()
    assert "pw-canary" not in caplog.text


def test_unknown_ca_hostname_mismatch_and_expiry_are_named(pki: Pki, tmp_path: Path) -> None:
    """Real handshakes (in memory) give real verification errors; each cause is named."""
    trusted = handshake_error(pki, trust=pki.ca, server_hostname="localhost")
    assert trusted is None
    cases = [
        (handshake_error(pki, trust=None, server_hostname="localhost"), "unknown CA"),
        (handshake_error(pki, trust=pki.ca, server_hostname="elsewhere.test"), "hostname mismatch"),
        (
            handshake_error(
                make_pki(tmp_path, expired=True, name="old"),
                trust=tmp_path / "old-ca.pem",
                server_hostname="localhost",
            ),
            "certificate expired",
        ),
    ]
    for error, cause in cases:
        assert isinstance(error, ssl.SSLCertVerificationError)
        wrapped = RuntimeError("TLS error")
        wrapped.__cause__ = error
        described = tls_failure_cause(wrapped)
        assert described is not None
        assert described.startswith("TLS certificate verification failed: " + cause), described


def test_verification_causes_of_other_codes() -> None:
    """Codes without a known cause keep OpenSSL's message."""
    assert verification_cause(18, "self-signed certificate").startswith("unknown CA or self-signed")
    assert verification_cause(9, "not yet valid").startswith("certificate not yet valid")
    assert verification_cause(999, "odd") == "code 999 (odd)"
    assert tls_failure_cause(ValueError("x")) is None
