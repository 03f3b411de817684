"""Options: coercion, defaults and every bad-input case, each a ConfigurationError."""

from __future__ import annotations

import copy
import enum
import pathlib
import pickle
from typing import Any

import pytest
from _certs import make_pki

from ecs_metrics_handler._config import (
    AuthType,
    Backend,
    HandlerOptions,
    IndexNameFrequency,
    IndexTimezone,
    coerce_bool,
    coerce_enum,
    coerce_float,
    coerce_int,
    parse_hosts,
    validate_index_name,
    validate_index_prefix,
)
from ecs_metrics_handler._redact import redact_given
from ecs_metrics_handler.exceptions import ConfigurationError


def _error(**kwargs: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        HandlerOptions.from_kwargs(**kwargs)
    return caught.value


def assert_names(error: ConfigurationError, option: str, given: object, *words: str) -> None:
    """The message names the option, what was expected and what was given (redacted)."""
    message = str(error)
    shown = redact_given(option, given)
    assert isinstance(error, ValueError)
    assert error.option == option
    assert error.given is shown or error.given == shown
    assert repr(option) in message
    assert repr(shown) in message
    for word in words:
        assert word in error.expected, (word, error.expected)
        assert word in message


# ------------------------------------------------------------------------------- defaults


def test_no_options_gives_the_documented_defaults() -> None:
    """from_kwargs() with nothing is a working configuration for a local node."""
    options = HandlerOptions.from_kwargs()
    assert options.hosts == ("http://localhost:9200",)
    assert options.auth_type is AuthType.NO_AUTH
    assert options.auth_details is None
    assert options.buffer_size == 1000
    assert options.flush_frequency_in_sec == 1.0
    assert options.es_index_name == "python_metrics"
    assert options.index_name_frequency is IndexNameFrequency.DAILY
    assert options.index_name_timezone is IndexTimezone.UTC
    assert options.backend is Backend.ELASTICSEARCH
    assert dict(options.es_additional_fields) == {}
    assert options.metric_key == "metric"
    assert options == HandlerOptions()


def test_use_ssl_switches_the_default_scheme_to_https() -> None:
    """Hosts without a scheme follow use_ssl; the default host too."""
    assert HandlerOptions.from_kwargs(use_ssl=True).hosts == ("https://localhost:9200",)
    options = HandlerOptions.from_kwargs(use_ssl="yes", hosts=[{"host": "es1", "port": 9201}])
    assert options.hosts == ("https://es1:9201",)


def test_options_pickle_copy_and_compare_equal() -> None:
    """Options survive pickling (multiprocessing spawn) and copying, nested fields included."""
    options = HandlerOptions.from_kwargs(
        hosts="es1", auth_type="basic_auth", auth_details=("u", "p"),
        es_additional_fields={"a": {"b": [1, 2]}},
        es_additional_fields_in_env={"c": "C"},
    )  # fmt: skip
    for clone in (pickle.loads(pickle.dumps(options)), copy.deepcopy(options), copy.copy(options)):
        assert clone == options
        assert clone.es_additional_fields["a"]["b"] == (1, 2)
        with pytest.raises(TypeError):
            clone.es_additional_fields["a"]["x"] = 1


def test_service_name_defaults_to_the_script_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """No service_name: the stem of sys.argv[0]; event.dataset follows it."""
    monkeypatch.setattr("sys.argv", ["/srv/app/billing_worker.py", "--x"])
    options = HandlerOptions.from_kwargs()
    assert options.resolved_service_name == "billing_worker"
    assert options.resolved_event_dataset == "billing_worker.metrics"
    monkeypatch.setattr("sys.argv", ["-c"])
    assert HandlerOptions.from_kwargs().resolved_service_name == "python"
    named = HandlerOptions.from_kwargs(service_name="shop", event_dataset="shop.timings")
    assert (named.resolved_service_name, named.resolved_event_dataset) == ("shop", "shop.timings")


# ----------------------------------------------------------------------------------- enums


class AuthType_(enum.Enum):  # noqa: N801 - stands for the original library's nested enum
    NO_AUTH = 0
    BASIC_AUTH = 1


AuthType_.__name__ = "AuthType"
AuthType_.__qualname__ = "ElasticECSMetricsLogger.AuthType"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (AuthType.API_KEY, AuthType.API_KEY),
        ("BASIC_AUTH", AuthType.BASIC_AUTH),
        ("basic_auth", AuthType.BASIC_AUTH),
        ("  Kerberos_Auth ", AuthType.KERBEROS_AUTH),
        (AuthType_.BASIC_AUTH, AuthType.BASIC_AUTH),
    ],
)
def test_enums_accept_members_names_values_and_the_original_enum(
    given: object, expected: AuthType
) -> None:
    """Case-insensitive names, values, and the original library's enum members by name."""
    assert coerce_enum("auth_type", given, AuthType) is expected


def test_unknown_auth_type_lists_the_accepted_names() -> None:
    """auth_type='oauth' -> ConfigurationError naming auth_type and every accepted name."""
    error = _error(auth_type="oauth")
    assert_names(error, "auth_type", "oauth", "NO_AUTH", "BASIC_AUTH", "API_KEY", "KERBEROS_AUTH")


def test_unknown_frequency_is_refused() -> None:
    """index_name_frequency='hourly' is not a frequency."""
    error = _error(index_name_frequency="hourly")
    assert_names(error, "index_name_frequency", "hourly", "DAILY", "WEEKLY", "NEVER")


def test_an_enum_of_another_name_is_refused() -> None:
    """A member of an unrelated enum is not taken by its name alone."""

    class Other(enum.Enum):
        DAILY = 1

    with pytest.raises(ConfigurationError):
        coerce_enum("index_name_frequency", Other.DAILY, IndexNameFrequency)
    with pytest.raises(ConfigurationError):
        coerce_enum("index_name_frequency", 1, IndexNameFrequency)


def test_enum_strings_from_dictconfig_are_accepted() -> None:
    """What a YAML file gives: lower-case strings for every enum option."""
    options = HandlerOptions.from_kwargs(
        index_name_frequency="weekly", index_name_timezone="LOCAL", backend="opensearch"
    )
    assert options.index_name_frequency is IndexNameFrequency.WEEKLY
    assert options.index_name_timezone is IndexTimezone.LOCAL
    assert options.backend is Backend.OPENSEARCH


# --------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("given", [0, -1, "0", "-5", 0.0])
def test_buffer_size_must_be_positive(given: object) -> None:
    """Zero or negative buffer sizes are refused, naming the bound."""
    assert_names(_error(buffer_size=given), "buffer_size", given, "integer", "> 0")


@pytest.mark.parametrize("given", [0, -0.5, "0", "-1"])
def test_flush_interval_must_be_positive(given: object) -> None:
    """flush_frequency_in_sec <= 0 is refused."""
    assert_names(_error(flush_frequency_in_sec=given), "flush_frequency_in_sec", given, "> 0")


@pytest.mark.parametrize(
    ("option", "kind"),
    [
        ("buffer_size", "integer"),
        ("flush_frequency_in_sec", "number"),
        ("max_retries", "integer"),
        ("request_timeout", "number"),
    ],
)
def test_a_bool_is_not_a_number(option: str, kind: str) -> None:
    """True is refused where a number is expected (it would silently mean 1)."""
    assert_names(_error(**{option: True}), option, True, kind)


@pytest.mark.parametrize("given", [1.5, "ten", "1.5", float("nan"), None, [1]])
def test_buffer_size_must_be_a_whole_number(given: object) -> None:
    """Fractions, words and NaN are not a number of records."""
    assert_names(_error(buffer_size=given), "buffer_size", given, "integer")


@pytest.mark.parametrize("given", [float("nan"), float("inf"), "inf", "soon"])
def test_intervals_must_be_finite_numbers(given: object) -> None:
    """NaN and infinity are refused for seconds."""
    assert_names(_error(flush_timeout=given), "flush_timeout", given, "finite number")


def test_numeric_strings_are_coerced() -> None:
    """ini files give strings: '500', '2.5' and '1e3' become numbers."""
    options = HandlerOptions.from_kwargs(
        buffer_size="500", flush_frequency_in_sec="2.5", max_queue_records="1e3"
    )
    assert options.buffer_size == 500
    assert options.flush_frequency_in_sec == 2.5
    assert options.max_queue_records == 1000
    assert coerce_int("x", 7.0) == 7
    assert coerce_float("x", "3") == 3.0


def test_max_retries_may_be_zero_but_not_negative() -> None:
    """Zero retries is valid; -1 is not."""
    assert HandlerOptions.from_kwargs(max_retries=0).max_retries == 0
    assert_names(_error(max_retries=-1), "max_retries", -1, ">= 0")


def test_queue_must_hold_a_full_buffer() -> None:
    """max_queue_records below buffer_size could never trigger a flush."""
    assert_names(
        _error(buffer_size=100, max_queue_records=50), "max_queue_records", 50, "buffer_size"
    )


def test_backoff_max_must_not_be_below_initial() -> None:
    """retry_backoff_max < retry_backoff_initial is refused."""
    error = _error(retry_backoff_initial=2, retry_backoff_max=1)
    assert_names(error, "retry_backoff_max", 1, "retry_backoff_initial")


# ---------------------------------------------------------------------------------- bools


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, True), ("true", True), ("YES", True), ("1", True), (1, True), ("off", False),
     ("no", False), (0, False), (False, False)],
)  # fmt: skip
def test_booleans_accept_the_strings_of_config_files(given: object, expected: bool) -> None:
    """Booleans from ini/YAML: true/false, yes/no, on/off, 1/0."""
    assert coerce_bool("use_ssl", given) is expected


@pytest.mark.parametrize("given", ["maybe", 2, None, 1.0])
def test_other_values_are_not_booleans(given: object) -> None:
    """Anything else is refused, naming the option."""
    assert_names(_error(verify_ssl=given), "verify_ssl", given, "boolean")


# ---------------------------------------------------------------------------------- hosts


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://es1:9201", ("http://es1:9201",)),
        ("HTTPS://ES1", ("https://es1:9200",)),
        ("es1:9201", ("http://es1:9201",)),
        ("es1", ("http://es1:9200",)),
        ("es1, es2:9300", ("http://es1:9200", "http://es2:9300")),
        ("http://es1:9200/proxy/es/", ("http://es1:9200/proxy/es",)),
        ({"host": "localhost", "port": 9200}, ("http://localhost:9200",)),
        ({"host": "es1", "port": "9201", "scheme": "https"}, ("https://es1:9201",)),
        ({"host": "es1", "url_prefix": "es"}, ("http://es1:9200/es",)),
        ({"host": "es1", "use_ssl": True}, ("https://es1:9200",)),
        ([{"host": "h1", "port": 9200}, {"host": "h2", "port": 9200}],
         ("http://h1:9200", "http://h2:9200")),
        (["http://a:1", "a:1"], ("http://a:1",)),
        ("::1", ("http://[::1]:9200",)),
        ("[::1]:9201", ("http://[::1]:9201",)),
        ("http://[fe80::1]:9200", ("http://[fe80::1]:9200",)),
        ({"host": "::1", "port": 9200}, ("http://[::1]:9200",)),
        ("10.0.0.7:9200", ("http://10.0.0.7:9200",)),
        ("es_node-1.internal", ("http://es_node-1.internal:9200",)),
    ],
)  # fmt: skip
def test_hosts_are_normalised_to_urls(given: object, expected: tuple[str, ...]) -> None:
    """URLs, host:port, bare hosts, dicts, lists and IPv6 all become scheme://host:port."""
    assert parse_hosts("hosts", given, use_ssl=False) == expected


def test_an_explicit_scheme_wins_over_use_ssl() -> None:
    """http://... stays http even with use_ssl=True."""
    assert parse_hosts("hosts", "http://es1", use_ssl=True) == ("http://es1:9200",)
    assert parse_hosts("hosts", "es1", use_ssl=True) == ("https://es1:9200",)


@pytest.mark.parametrize(
    ("given", "word"),
    [
        ([], "at least one host"),
        ("", "at least one host"),
        ("http://es1:99999", "port"),
        ("es1:0", "port"),
        ("es1:http", "port"),
        ({"host": "es1", "port": 70000}, "port"),
        ({"host": "es1", "port": True}, "port"),
        ("ftp://es1", "http or https"),
        ({"host": "es1", "scheme": "ftp"}, "http or https"),
        ("http://", "host URL"),
        ("not a host", "host name"),
        ("es1!:9200", "host name"),
        ("http://user:secret@es1:9200", "credentials"),
        ("http://es1:9200/?pretty", "query"),
        ({"port": 9200}, "'host'"),
        ({"host": "http://es1"}, "'host'"),
        ({"host": "es1", "prot": 9200}, "only the keys"),
        ([42], "host URL"),
        (9200, "host URL"),
        ("fe80::zz", "host name"),
    ],
)
def test_hosts_that_do_not_parse_are_refused(given: object, word: str) -> None:
    """Every broken host gives a ConfigurationError naming 'hosts' and the expectation."""
    with pytest.raises(ConfigurationError) as caught:
        HandlerOptions.from_kwargs(hosts=given)
    error = caught.value
    assert error.option == "hosts"
    assert word in error.expected
    assert "'hosts'" in str(error)


# ---------------------------------------------------------------------------- index names


@pytest.mark.parametrize("char", [*'\\/*?"<>|,#:', " "])
def test_index_prefix_with_a_forbidden_character_is_refused(char: str) -> None:
    """Each character Elasticsearch forbids in index names is refused, and named."""
    given = f"app{char}metrics"
    error = _error(es_index_name=given)
    shown = "a space" if char == " " else repr(char)
    assert_names(error, "es_index_name", given, shown)


@pytest.mark.parametrize("first", ["-", "_", "+"])
def test_index_prefix_with_a_leading_dash_underscore_or_plus_is_refused(first: str) -> None:
    """Index names may not start with - _ +."""
    given = f"{first}metrics"
    assert_names(_error(es_index_name=given), "es_index_name", given, "not starting with")


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ("App-Metrics", "lower case"),
        ("", "not empty"),
        (".", "not '.'"),
        ("..", "not '.'"),
        (42, "a string"),
        (None, "a string"),
    ],
)
def test_index_prefix_rules(given: object, rule: str) -> None:
    """Upper case, empty, '.', '..' and non-strings are refused, naming the rule."""
    assert_names(_error(es_index_name=given), "es_index_name", given, rule)


def test_index_prefix_leaves_room_for_the_date_suffix() -> None:
    """244 bytes is the longest prefix: with '-YYYY.MM.DD' the name stays within 255 bytes."""
    assert validate_index_prefix("es_index_name", "a" * 244) == "a" * 244
    assert_names(_error(es_index_name="a" * 245), "es_index_name", "a" * 245, "244 bytes")
    # Bytes, not characters: 'é' is two bytes of UTF-8.
    with pytest.raises(ConfigurationError):
        validate_index_prefix("es_index_name", "é" * 123)
    assert validate_index_name("x", "a" * 255) == "a" * 255


def test_data_stream_name_is_validated() -> None:
    """data_stream follows the index-name rules and may not be a backing index name."""
    assert HandlerOptions.from_kwargs(data_stream="metrics-app-default").target_prefix == (
        "metrics-app-default"
    )
    assert_names(_error(data_stream="Metrics"), "data_stream", "Metrics", "lower case")
    assert_names(_error(data_stream=".ds-x"), "data_stream", ".ds-x", ".ds-")


def test_data_stream_cannot_be_combined_with_an_index_prefix() -> None:
    """Writing to a data stream and to dated indices at once is contradictory."""
    error = _error(data_stream="metrics-app-default", es_index_name="app")
    assert_names(error, "data_stream", "metrics-app-default", "es_index_name")


# ---------------------------------------------------------------------------- other options


def test_unknown_option_suggests_the_closest_name() -> None:
    """A typo names the unknown option and suggests the right one."""
    error = _error(bufer_size=10)
    assert_names(error, "bufer_size", 10, "known option", "'buffer_size'")


def test_unknown_option_without_close_match_still_names_it() -> None:
    """A name unlike any option is refused without a suggestion."""
    error = _error(colour="blue")
    assert_names(error, "colour", "***", "known option")  # the value may be a secret
    assert "did you mean" not in str(error)


def test_basic_auth_needs_a_user_password_pair() -> None:
    """BASIC_AUTH takes a tuple or a JSON list of two strings."""
    options = HandlerOptions.from_kwargs(auth_type="basic_auth", auth_details=["elastic", "pw"])
    assert options.auth_details == ("elastic", "pw")
    for given in (None, ("", ""), ("user",), "user:pw", ("user", 5)):
        error = _error(auth_type="BASIC_AUTH", auth_details=given)
        assert_names(error, "auth_details", given, "(user, password)")


def test_api_key_accepts_an_encoded_key_or_an_id_key_pair() -> None:
    """API_KEY takes 'base64' or (id, key)."""
    assert HandlerOptions.from_kwargs(auth_type="api_key", auth_details="a2V5").auth_details == (
        "a2V5"
    )
    pair = HandlerOptions.from_kwargs(auth_type="api_key", auth_details=("id", "key"))
    assert pair.auth_details == ("id", "key")
    assert_names(_error(auth_type="api_key", auth_details=""), "auth_details", "", "API_KEY")


def test_the_original_default_auth_details_is_accepted_without_auth() -> None:
    """The original library's default auth_details=('', '') means nothing with NO_AUTH."""
    options = HandlerOptions.from_kwargs(auth_type="NO_AUTH", auth_details=("", ""))
    assert options.auth_details is None
    with pytest.raises(ConfigurationError):
        HandlerOptions.from_kwargs(auth_details=42)


def test_aws_auth_needs_key_secret_and_region() -> None:
    """AWS_SIGNED_AUTH without a region names aws_region."""
    complete = {"aws_access_key": "AKIA", "aws_secret_key": "s", "aws_region": "eu-west-1"}
    options = HandlerOptions.from_kwargs(auth_type="aws_signed_auth", **complete)
    assert (options.aws_region, options.aws_service) == ("eu-west-1", "es")
    for missing in complete:
        kwargs = {k: v for k, v in complete.items() if k != missing}
        error = _error(auth_type="AWS_SIGNED_AUTH", **kwargs)
        assert_names(error, missing, None, "AWS_SIGNED_AUTH")


def test_paths_accept_pathlike_and_client_key_needs_a_certificate(tmp_path: pathlib.Path) -> None:
    """Paths are kept as str; a client key alone is refused (test_tls.py checks the files)."""
    pki = make_pki(tmp_path)
    both = tmp_path / "both.pem"
    both.write_bytes(pki.cert.read_bytes() + pki.key.read_bytes())
    options = HandlerOptions.from_kwargs(
        flush_failure_folder=tmp_path, ca_certs=pki.ca, client_cert=both
    )
    assert options.flush_failure_folder == str(tmp_path)
    assert options.ca_certs == str(pki.ca)
    assert_names(_error(client_key="k.pem"), "client_key", "k.pem", "client_cert")
    assert_names(_error(flush_failure_folder=3), "flush_failure_folder", 3, "path")


def test_metric_key_may_not_shadow_a_log_record_attribute() -> None:
    """extra={'message': ...} makes logging raise; refuse it up front."""
    assert_names(_error(metric_key="message"), "metric_key", "message", "LogRecord")
    assert HandlerOptions.from_kwargs(metric_key="m").metric_key == "m"


# ------------------------------------------------------------------------ additional fields


def test_additional_fields_are_copied_and_read_only() -> None:
    """The caller's dict can change afterwards without effect, and the options can't be changed."""
    fields: dict[str, Any] = {"cloud": {"region": "eu", "zones": ["a", "b"]}}
    options = HandlerOptions.from_kwargs(es_additional_fields=fields)
    fields["cloud"]["region"] = "us"
    fields["cloud"]["zones"].append("c")
    assert options.es_additional_fields["cloud"]["region"] == "eu"
    assert list(options.es_additional_fields["cloud"]["zones"]) == ["a", "b"]
    with pytest.raises(TypeError):
        options.es_additional_fields["cloud"]["region"] = "x"


def test_dotted_additional_field_names_are_expanded() -> None:
    """{'service.environment': 'prod'} is the nested field service -> environment."""
    options = HandlerOptions.from_kwargs(
        es_additional_fields={"service.environment": "prod", "service": {"node": {"name": "n1"}}}
    )
    assert options.es_additional_fields["service"]["environment"] == "prod"
    assert options.es_additional_fields["service"]["node"]["name"] == "n1"


def test_conflicting_additional_fields_are_refused() -> None:
    """'a' cannot be both a value and an object."""
    error = _error(es_additional_fields={"a": 1, "a.b": 2})
    assert error.option == "es_additional_fields"
    assert "conflicting" in error.expected


def test_env_fields_must_name_environment_variables() -> None:
    """Leaves of es_additional_fields_in_env are variable names (non-empty strings)."""
    options = HandlerOptions.from_kwargs(es_additional_fields_in_env={"app": {"build": "BUILD"}})
    assert options.es_additional_fields_in_env["app"]["build"] == "BUILD"
    error = _error(es_additional_fields_in_env={"app": {"build": 5}})
    assert_names(error, "es_additional_fields_in_env", 5, "environment variable")
    error = _error(es_additional_fields=["not", "a", "dict"])
    assert_names(error, "es_additional_fields", ["not", "a", "dict"], "mapping")
