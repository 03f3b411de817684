"""No secret is ever printed, and TLS failures say why: against a refusing port and the real
secured node (``secured_es``: TLS with the suite's CA, a user, API keys).

A canary secret goes through every option that can carry one; every output channel is then
searched for it: option errors, reprs, the handler's stats, every logger at DEBUG (the
clients' ``elasticsearch``/``elastic_transport``/``urllib3``/``opensearch`` loggers included),
the command line's stdout/stderr, and every file of the failure folder.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecs_metrics_handler import ElasticECSHandler, metric, replay
from ecs_metrics_handler.exceptions import ConfigurationError

CANARY = f"canary-{uuid.uuid4().hex}"
# Loggers that do not propagate to the root, or that a DEBUG run should show in full.
_CLIENT_LOGGERS = (
    "elasticsearch",
    "elastic_transport",
    "elastic_transport.node",
    "urllib3",
    "opensearch",
    "opensearchpy.trace",
    "requests",
    "requests_aws4auth",
    "ecs_metrics_handler",
)


def _forms(secret: str, user: str = "elastic", key_id: str = "key-id") -> list[str]:
    """The secret and the forms an Authorization header would carry it in."""
    return [
        secret,
        base64.b64encode(f"{user}:{secret}".encode()).decode(),
        base64.b64encode(f"{key_id}:{secret}".encode()).decode(),
    ]


def _assert_absent(texts: dict[str, str], *secrets: str) -> None:
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} shows in {where}: {text[:2000]}"


def _folder_texts(folder: Path) -> dict[str, str]:
    return {
        str(path): path.read_bytes().decode("utf-8", "replace")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything every logger writes at DEBUG, with tracebacks, into one text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in _CLIENT_LOGGERS}
    saved_root = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # These two do not propagate: they get the handler themselves.
    isolated = [logging.getLogger(n) for n in ("opensearchpy.trace", "elastic_transport.node")]
    for log in isolated:
        log.addHandler(handler)
    for name in _CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    for log in isolated:
        log.removeHandler(handler)
    root.setLevel(saved_root)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def refusing_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _ship_and_close(handler: ElasticECSHandler, logger: logging.Logger, flush: float) -> str:
    """Log two metrics through ``handler``, flush, close; return what it showed of itself."""
    logger.addHandler(handler)
    logger.info("m", extra=metric("canary.test", 1))
    logger.info("m", extra=metric("canary.test", 2))
    handler.flush(flush)
    shown = "\n".join(
        (repr(handler), str(handler), repr(handler.options), json.dumps(handler.stats()))
    )
    logger.removeHandler(handler)
    handler.close()
    return shown


def _credential_cases() -> list[dict[str, Any]]:
    return [
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
        {"auth_type": "basic_auth", "auth_details": ("elastic", CANARY), "backend": "opensearch"},
        {"auth_type": "api_key", "auth_details": CANARY, "backend": "opensearch"},
    ]


def test_a_canary_secret_never_shows_during_an_outage(
    refusing_url: str, debug_log: io.StringIO, logger: logging.Logger, tmp_path: Path
) -> None:
    """Every credential option, a refusing port, DEBUG logging, the failure folder, a replay:
    the canary shows nowhere."""
    texts: dict[str, str] = {}
    for n, credentials in enumerate(_credential_cases()):
        folder = tmp_path / f"folder-{n}"
        handler = ElasticECSHandler(
            hosts=[refusing_url],
            flush_failure_folder=str(folder),
            flush_frequency_in_sec=0.05,
            max_retries=1,
            retry_backoff_initial=0.01,
            install_template=True,
            **credentials,
        )
        texts[f"handler {n}"] = _ship_and_close(handler, logger, flush=10)
        assert any(folder.glob("segment-*.ndjson")), f"case {n}: nothing spooled"
        result = replay(folder, hosts=[refusing_url], max_retries=0, **credentials)
        texts[f"replay {n}"] = repr(result)
        assert result.left > 0
        texts.update(_folder_texts(folder))
    # wrong options: every ConfigurationError, and its repr
    wrong: list[dict[str, Any]] = [
        {"auth_type": "basic_auth", "auth_details": ("", CANARY)},
        {"auth_type": "basic_auth", "auth_details": CANARY},
        {"auth_type": "api_key", "auth_details": [CANARY, 5]},
        {"auth_type": "aws_signed_auth", "aws_secret_key": CANARY, "aws_region": ""},
        {"aws_session_token": [CANARY]},
        {"hosts": f"http://elastic:{CANARY}@127.0.0.1:9200"},
        {"hosts": f"elastic:{CANARY}@127.0.0.1:9200"},
        {"auth_detail": ("elastic", CANARY)},
    ]
    for n, kwargs in enumerate(wrong):
        with pytest.raises(ConfigurationError) as caught:
            ElasticECSHandler(**kwargs)
        texts[f"error {n}"] = f"{caught.value}\n{caught.value!r}\n{caught.value.given!r}"
    texts["debug log"] = debug_log.getvalue()
    assert "Connection refused" in texts["debug log"] or "refused" in texts["debug log"].lower()
    _assert_absent(texts, *_forms(CANARY))


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ELASTICSEARCH_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ecs_metrics_handler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )


def test_the_command_line_never_prints_a_canary_secret(refusing_url: str, tmp_path: Path) -> None:
    """demo, replay and install-template with the canary in ELASTICSEARCH_URL, the password
    and API key variables, and a wrong URL: stdout, stderr and the folder stay clean."""
    folder = tmp_path / "demo"
    host = refusing_url.removeprefix("http://")
    runs = {
        "demo": _cli(
            "demo",
            "--folder",
            str(folder),
            env={"ELASTICSEARCH_URL": f"http://elastic:{CANARY}@{host}"},
        ),
        "replay": _cli(
            "replay",
            str(folder),
            "--index",
            "ecs-metrics-demo",  # the demo's prefix: replay sends only what its handler writes
            env={"ELASTICSEARCH_URL": f"http://elastic:{CANARY}@{host}"},
        ),
        "replay api key": _cli(
            "replay",
            str(folder),
            "--index",
            "ecs-metrics-demo",
            "--hosts",
            refusing_url,
            env={"ELASTICSEARCH_API_KEY": CANARY},
        ),
        "install-template": _cli(
            "install-template",
            "--user",
            "elastic",
            "--hosts",
            refusing_url,
            env={"ELASTICSEARCH_PASSWORD": CANARY},
        ),
        "wrong url": _cli("replay", str(folder), "--hosts", f"elastic:{CANARY}@{host}", env={}),
    }
    assert "demo: " in runs["demo"].stdout and any(folder.glob("segment-*")), runs["demo"]
    assert "unencrypted over plain http" in runs["demo"].stderr
    assert runs["replay"].returncode == 1 and "left for later" in runs["replay"].stdout
    assert runs["install-template"].returncode == 1
    assert "\nerror: ConnectionError" in runs["install-template"].stderr
    assert "Traceback" not in runs["install-template"].stderr
    assert runs["wrong url"].returncode == 2 and "elastic:***@" in runs["wrong url"].stderr
    texts = {
        f"{name} {stream}": getattr(run, stream)
        for name, run in runs.items()
        for stream in ("stdout", "stderr")
    }
    texts.update(_folder_texts(folder))
    _assert_absent(texts, *_forms(CANARY))


def test_secrets_of_a_real_secured_node_never_show(
    secured_es: Any, debug_log: io.StringIO, logger: logging.Logger, tmp_path: Path
) -> None:
    """The real password and API key at DEBUG (Authorization never logged), and the canary as
    a wrong password (401): spooled, reported, replayed, and shown nowhere."""
    api_key = secured_es.api_key(name=f"canary-{uuid.uuid4().hex[:6]}")
    prefix = f"canary-{uuid.uuid4().hex[:8]}"
    common = {"hosts": [secured_es.url], "ca_certs": secured_es.ca_file, "es_index_name": prefix}
    good = [
        {"auth_type": "basic_auth", "auth_details": (secured_es.username, secured_es.password)},
        {"auth_type": "api_key", "auth_details": api_key},
    ]
    texts: dict[str, str] = {}
    for n, credentials in enumerate(good):
        handler = ElasticECSHandler(flush_frequency_in_sec=0.05, **common, **credentials)
        texts[f"good {n}"] = _ship_and_close(handler, logger, flush=30)
    folder = tmp_path / "folder"
    wrong = {"auth_type": "basic_auth", "auth_details": (secured_es.username, CANARY)}
    handler = ElasticECSHandler(
        flush_failure_folder=str(folder), flush_frequency_in_sec=0.05, **common, **wrong
    )
    texts["wrong"] = _ship_and_close(handler, logger, flush=10)
    cli_folder = tmp_path / "cli-folder"
    shutil.copytree(folder, cli_folder)
    result = replay(folder, max_retries=0, **common, **wrong)
    texts["replay"] = repr(result)
    texts.update(_folder_texts(folder))
    log = debug_log.getvalue()
    texts["debug log"] = log
    assert "> Authorization: Basic <hidden>" in log  # elastic_transport logs each request
    assert re.search(r"\b401\b", log)  # the status, not a random port's digits
    # Refused credentials (401) are not the documents' fault: they stay for a later replay.
    assert (result.left, result.quarantined) == (2, 0), result
    assert any(folder.glob("segment-*")) and not any(folder.glob("*.reason"))
    cli = _cli(
        "replay",
        str(cli_folder),
        "--index",
        prefix,
        "--user",
        secured_es.username,
        "--ca-certs",
        secured_es.ca_file,
        env={"ELASTICSEARCH_URL": secured_es.url, "ELASTICSEARCH_PASSWORD": CANARY},
    )
    assert re.search(r"\b401\b", cli.stdout + cli.stderr), cli
    texts["cli stdout"], texts["cli stderr"] = cli.stdout, cli.stderr
    texts.update(_folder_texts(folder))
    texts.update(_folder_texts(cli_folder))
    user = secured_es.username
    _assert_absent(
        texts,
        *_forms(CANARY, user=user),
        *_forms(secured_es.password, user=user),
        api_key,
        *[base64.b64decode(api_key).decode().partition(":")[2]],
    )


# ---------------------------------------------------------------------------- TLS causes


class _Relay:
    """A TCP relay from ``127.0.0.2:<port>`` to a node: the same certificate, reached by an
    address it does not name. Bytes only; the TLS is the node's."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.0.2", 0))
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._server.close()


def _report_of_one_metric(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture, **kw: Any
) -> str:
    handler = ElasticECSHandler(flush_frequency_in_sec=0.05, max_retries=0, **kw)
    with caplog.at_level(logging.WARNING, logger="ecs_metrics_handler"):
        logger.addHandler(handler)
        logger.info("m", extra=metric("tls.test", 1))
        handler.flush(10)
        logger.removeHandler(handler)
        handler.close()
    return caplog.text


def test_an_unknown_ca_is_named_in_reports_and_on_the_command_line(
    secured_es: Any, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ca_certs the node's certificate comes from an unknown CA: said, with the fix."""
    auth = {"auth_type": "basic_auth", "auth_details": (secured_es.username, secured_es.password)}
    text = _report_of_one_metric(logger, caplog, hosts=[secured_es.url], **auth)
    assert "TLS certificate verification failed: unknown CA or self-signed certificate" in text
    assert "set ca_certs" in text
    cli = _cli(
        "install-template",
        "--user",
        secured_es.username,
        env={"ELASTICSEARCH_URL": secured_es.url, "ELASTICSEARCH_PASSWORD": secured_es.password},
    )
    assert cli.returncode == 1
    assert "unknown CA or self-signed certificate" in cli.stderr, cli.stderr
    assert "Traceback" not in cli.stderr


def test_a_hostname_mismatch_is_named_in_reports_and_on_the_command_line(
    secured_es: Any, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """The node's certificate names 127.0.0.1 and localhost; reached as 127.0.0.2 it mismatches."""
    port = int(secured_es.url.rsplit(":", 1)[1].split("/")[0])
    relay = _Relay(("127.0.0.1", port))
    try:
        url = f"https://127.0.0.2:{relay.port}"
        auth = {
            "auth_type": "basic_auth",
            "auth_details": (secured_es.username, secured_es.password),
        }
        text = _report_of_one_metric(
            logger, caplog, hosts=[url], ca_certs=secured_es.ca_file, **auth
        )
        assert "TLS certificate verification failed: hostname mismatch" in text, text
        cli = _cli(
            "install-template",
            "--ca-certs",
            secured_es.ca_file,
            env={
                "ELASTICSEARCH_URL": f"https://{secured_es.username}:{secured_es.password}@127.0.0.2:{relay.port}"
            },
        )
        assert cli.returncode == 1
        assert "hostname mismatch" in cli.stderr, cli.stderr
        assert secured_es.password not in cli.stdout + cli.stderr
    finally:
        relay.close()
