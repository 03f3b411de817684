"""Test-suite side of ``scripts/nodes.py``: which servers a run needs, started once per session.

Loaded by ``tests/conftest.py`` (by file path, as ``ecsmh_test_servers``); the node machinery
itself (fetch, configure, start, stop) lives in ``scripts/nodes.py`` (``ecsmh_nodes``).

Policy when a server cannot be provided (no Java, no Maven, fetch or start failed): the tests
that need it are *skipped* with the reason, unless servers are required (``CI=true`` in the
environment, or ``pytest --require-servers``), in which case they *fail* with the reason.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import importlib.util
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _load_nodes() -> Any:
    if "ecsmh_nodes" in sys.modules:
        return sys.modules["ecsmh_nodes"]
    spec = importlib.util.spec_from_file_location("ecsmh_nodes", REPO / "scripts" / "nodes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ecsmh_nodes"] = module
    spec.loader.exec_module(module)
    return module


nodes = _load_nodes()
NodesError = nodes.NodesError
NodeHandle = nodes.Cluster

TRUTHY = {"1", "true", "yes", "on"}


def servers_required(option: bool, environ: Mapping[str, str] | None = None) -> bool:
    """True when an unavailable server must fail the run (CI=true or --require-servers)."""
    env = os.environ if environ is None else environ
    return bool(option) or env.get("CI", "").strip().lower() in TRUTHY


def unavailable_outcome(reason: str, required: bool) -> tuple[str, str]:
    """("fail" | "skip", message) for a server that cannot be provided."""
    message = f"test server unavailable: {reason}"
    if required:
        return "fail", message + " (servers are required: CI=true or --require-servers)"
    return "skip", message


def client_es_major() -> int:
    """Major version of the installed elasticsearch-py (``ECSMH_ES_MAJOR`` overrides)."""
    override = os.environ.get("ECSMH_ES_MAJOR")
    if override:
        return int(override)
    try:
        import elasticsearch
    except ImportError as err:  # pragma: no cover - the tests extra installs it
        raise NodesError(f"the elasticsearch client is not installed ({err})") from None
    version = elasticsearch.__versionstr__  # type: ignore[attr-defined]
    return int(str(version).split(".")[0])


@dataclasses.dataclass
class ExternalServer:
    """A server the user runs (ELASTICSEARCH_URL / OPENSEARCH_URL); nothing is started."""

    kind: str
    url: str
    version: str
    auth: tuple[str, str] | None = None
    ca_file: str | None = None
    external: bool = True
    data_dir: Path | None = None
    log_file: Path | None = None

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def urls(self) -> list[str]:
        return [self.url]


def external_server(kind: str, raw_url: str) -> ExternalServer:
    """Describe the server at ``raw_url`` (``scheme://[user:password@]host:port``)."""
    parts = urllib.parse.urlsplit(raw_url.strip().rstrip("/"))
    auth = None
    if parts.username is not None:
        auth = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    url = urllib.parse.urlunsplit((parts.scheme or "http", netloc, parts.path, "", ""))
    ca_file = (
        os.environ.get(
            "ELASTICSEARCH_CA_CERTS" if kind == "elasticsearch" else "OPENSEARCH_CA_CERTS"
        )
        or None
    )
    try:
        resp = nodes.http(url + "/_nodes/_local", auth=auth, ca_file=ca_file, timeout=10)
    except OSError as err:
        raise NodesError(f"{kind} at {url} does not answer: {err}") from None
    if resp.status != 200:
        raise NodesError(f"{kind} at {url} answered HTTP {resp.status} to GET /_nodes/_local")
    versions = {n["version"] for n in resp.json()["nodes"].values()}
    return ExternalServer(
        kind=kind, url=url, version=sorted(versions)[0], auth=auth, ca_file=ca_file
    )


@dataclasses.dataclass(frozen=True)
class Spec:
    kind: str = "elasticsearch"
    major: int | None = None
    nodes: int = 1
    tiny_queue: bool = False
    secured: bool = False
    kerberos: bool = False  # secured + a Kerberos realm with its own KDC (scripts/kdc.py)

    @property
    def label(self) -> str:
        label = f"{nodes.SHORT[self.kind]}{self.major or ''}"
        if self.nodes > 1:
            label += f"-{self.nodes}n"
        if self.tiny_queue:
            label += "-tq"
        if self.kerberos:
            label += "-krb"
        elif self.secured:
            label += "-sec"
        return label


# fixture name -> (key of the session's shared server, how to start it)
SHARED_SERVERS: dict[str, tuple[str, Spec]] = {
    "es_server": ("es", Spec("elasticsearch")),
    "es_client": ("es", Spec("elasticsearch")),
    "os_server": ("os", Spec("opensearch")),
    "os_client": ("os", Spec("opensearch")),
    "tiny_queue_es": ("es-tq", Spec("elasticsearch", tiny_queue=True)),
    "three_node_es": ("es-3n", Spec("elasticsearch", nodes=3)),
    "secured_es": ("es-sec", Spec("elasticsearch", secured=True)),
    "kerberos_es": ("es-krb", Spec("elasticsearch", kerberos=True)),
    "secured_os": ("os-sec", Spec("opensearch", secured=True)),
}


def server_unavailable(config: Any, reason: str) -> None:
    """Skip the current test with ``reason``, or fail it when servers are required
    (``config`` is the pytest config; reads its ``--require-servers`` option)."""
    import pytest

    required = servers_required(bool(config.getoption("--require-servers", default=False)))
    outcome, message = unavailable_outcome(reason, required)
    if outcome == "fail":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def es_client_for(server: Any, **kwargs: Any) -> Any:
    """An ``Elasticsearch`` client for a server handle (auth and CA taken from the handle)."""
    from elasticsearch import Elasticsearch  # the client under test, not a dependency here

    if getattr(server, "auth", None) and "api_key" not in kwargs:
        kwargs.setdefault("basic_auth", server.auth)
    if getattr(server, "ca_file", None):
        kwargs.setdefault("ca_certs", server.ca_file)
    kwargs.setdefault("request_timeout", 30)
    return Elasticsearch(list(server.urls), **kwargs)


@dataclasses.dataclass
class StartRecord:
    name: str
    label: str
    seconds: float
    rss_mib: float
    url: str


def kdc_start_record(cluster: Any) -> StartRecord:
    """The start of a Kerberos cluster's KDC (its own line in the servers summary)."""
    kdc = cluster.kdc
    return StartRecord(
        name=cluster.name,
        label=f"MIT KDC {kdc.realm}",
        seconds=kdc.start_seconds or 0.0,
        rss_mib=kdc.rss_bytes() / 2**20,
        url=f"tcp://127.0.0.1:{kdc.port}",
    )


class ServerPool:
    """Every server of one pytest session.  Thread-safe (prestarts run in worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._clusters: list[Any] = []
        self._shared: dict[str, concurrent.futures.Future[Any]] = {}
        self._counter = 0
        self._closed = False
        self._reaped = False
        # JVM start-up is CPU-bound: on small machines, starting one cluster at a time is as fast
        workers = int(os.environ.get("ECSMH_PARALLEL_STARTS", "1") or 1)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="server-start"
        )
        self.starts: list[StartRecord] = []
        self.problems: dict[str, str] = {}  # reason -> detail (log tail), for the summary
        atexit.register(self.close)

    # ---- starting

    def _name(self, spec: Spec) -> str:
        with self._lock:
            self._counter += 1
            return f"pytest{os.getpid()}-{spec.label}-{self._counter}"

    def _reap_orphans(self) -> None:
        with self._lock:
            if self._reaped:
                return
            self._reaped = True
        for name in nodes.reap_orphans():
            print(f"[servers] removed leftover cluster {name} of a dead session", file=sys.stderr)

    def resolve(self, spec: Spec) -> Spec:
        if spec.major is not None:
            return spec
        major = client_es_major() if spec.kind == "elasticsearch" else None
        pin = nodes.get_pin(spec.kind, major)
        return dataclasses.replace(spec, major=pin.major)

    def start(self, spec: Spec) -> Any:
        """Create and start a new cluster (NodeHandle); raises NodesError."""
        if self._closed:
            raise NodesError("the test session is closing")
        self._reap_orphans()
        spec = self.resolve(spec)
        cluster = nodes.Cluster.create(
            spec.kind,
            spec.major,
            nodes=spec.nodes,
            tiny_queue=spec.tiny_queue,
            secured=spec.secured,
            kerberos=spec.kerberos,
            name=self._name(spec),
            owner_pid=os.getpid(),
        )
        with self._lock:
            self._clusters.append(cluster)
        started = time.monotonic()
        try:
            cluster.start_all()
        except NodesError as err:
            with self._lock:
                self.problems.setdefault(str(err), err.detail)
            cluster.destroy(keep_logs=True)
            raise
        label = f"{cluster.kind} {cluster.version}"
        label += f" x{len(cluster.nodes)}" if len(cluster.nodes) > 1 else ""
        label += " tiny-queue" if cluster.tiny_queue else ""
        label += " secured" if cluster.secured else ""
        label += " kerberos" if cluster.kerberos else ""
        self.starts.append(
            StartRecord(
                name=cluster.name,
                label=label,
                seconds=time.monotonic() - started,
                rss_mib=cluster.rss_bytes() / 2**20,
                url=cluster.url,
            )
        )
        if cluster.kerberos:
            self.starts.append(kdc_start_record(cluster))
        return cluster

    def shared(self, key: str, spec: Spec) -> concurrent.futures.Future[Any]:
        """The session's one cluster for ``key``, started once (maybe in the background)."""
        with self._lock:
            future = self._shared.get(key)
            if future is None:
                future = self._executor.submit(self._start_or_external, key, spec)
                self._shared[key] = future
            return future

    def _start_or_external(self, key: str, spec: Spec) -> Any:
        env_var = {"es": "ELASTICSEARCH_URL", "os": "OPENSEARCH_URL"}.get(key)
        if env_var and os.environ.get(env_var):
            return external_server(spec.kind, os.environ[env_var])
        try:
            return self.start(spec)
        except NodesError as err:
            with self._lock:
                self.problems.setdefault(str(err), err.detail)
            raise

    def forget(self, cluster: Any) -> None:
        with self._lock:
            if cluster in self._clusters:
                self._clusters.remove(cluster)

    # ---- stopping

    def close(self) -> None:
        """Stop every node this session started (idempotent; safe from a signal handler)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clusters = list(self._clusters)
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            clusters = list(dict.fromkeys(clusters + self._clusters))
        for cluster in clusters:
            try:
                cluster.destroy(keep_logs=True)
            except Exception as err:  # keep going: every node must go
                print(f"[servers] stopping {cluster.name} failed: {err}", file=sys.stderr)


def load_helper(name: str) -> Any:
    """Import ``tests/_servers/<name>.py`` (as ``ecsmh_test_servers_<name>``), once."""
    module_name = f"ecsmh_test_servers_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, Path(__file__).parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
