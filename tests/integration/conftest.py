"""Fixtures giving integration tests real Elasticsearch and OpenSearch nodes.

Session-scoped servers (started once, on demand, stopped at the end of the session):

``es_server``
    The plain Elasticsearch node.  Its major follows the installed client
    (elasticsearch-py 9 -> Elasticsearch 9.x, 8 -> 8.19.x; pins in ``scripts/servers.json``).
    Attributes: ``url``, ``urls``, ``version``, ``major``, ``data_dir``, ``log_file``,
    ``auth`` (None), ``ca_file`` (None), ``external``.  With ``ELASTICSEARCH_URL`` set, that
    server is used instead and nothing is started (``data_dir``/``log_file`` are then None).
``es_client``
    ``elasticsearch.Elasticsearch`` for ``es_server``.
``os_server`` / ``os_client``
    OpenSearch 2.19.x and an ``opensearchpy.OpenSearch`` client; ``OPENSEARCH_URL`` honoured.
``tiny_queue_es``, ``three_node_es``, ``secured_es``
    NodeHandles (see ``node_factory``) of a node with a write pool of one thread and a queue
    of one, of a 3-node cluster, and of a node with security, TLS and a user.
``kerberos_es``
    A secured node of its own with a Kerberos realm (``kerb1``) and its own MIT KDC
    (``.kdc``: ``realm``, ``krb5_conf``, ``client_principal``, ``client_keytab``,
    ``kinit(ccache)``, ``env(ccache)``; see ``scripts/kdc.py``); ``.kerberos_urls`` name the
    node ``https://localhost:<port>`` as the service principal ``HTTP/localhost`` needs.

``writer_role``
    The body of README's ``PUT _security/role/ecs_metrics_writer`` (least-privilege writer,
    index pattern ``python_metrics-*``), parsed from README.rst so that the two cannot drift.

``secured_os``
    A NodeHandle of OpenSearch with its security plugin (TLS, Basic auth, an admin and a
    least-privilege writer; ``node_factory.start(kind="opensearch", secured=True)`` too).

``node_factory.start(kind="elasticsearch", nodes=1, tiny_queue=False, secured=False,
major=None)`` starts a new cluster for tests that break nodes and returns its NodeHandle
(``scripts/nodes.py`` ``Cluster``): ``url``, ``urls``, ``version``, ``major``, ``pids``,
``data_dirs``, ``log_files``, ``kill(i)``, ``stop(i)``, ``start(i)``, ``restart(i)``,
``freeze(i)``, ``thaw(i)``, ``wait_healthy(timeout)``, ``request(method, path, body)``,
``rss_bytes()``, ``close()``; secured: ``ca_file``, ``username``, ``password``, ``auth``,
``api_key()``.  Use it as a context manager (``with node_factory.start() as node:``) to stop it
at the end of the test; otherwise it stops at the end of the session.

A server that cannot be started skips the tests that need it (one line saying why), or fails
them when ``CI=true`` or ``--require-servers``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ecsmh_test_servers as servers  # loaded by tests/conftest.py from tests/_servers
import pytest

SHARED_SERVERS = servers.SHARED_SERVERS
server_unavailable = servers.server_unavailable
es_client_for = servers.es_client_for


def _shared(request: pytest.FixtureRequest, fixture_name: str) -> Any:
    pool = request.getfixturevalue("server_pool")
    key, spec = SHARED_SERVERS[fixture_name]
    try:
        return pool.shared(key, spec).result()
    except servers.NodesError as err:
        server_unavailable(request.config, str(err))


@pytest.fixture(scope="session")
def es_server(request: pytest.FixtureRequest) -> Any:
    """The session's Elasticsearch node (or ``ELASTICSEARCH_URL``)."""
    return _shared(request, "es_server")


@pytest.fixture(scope="session")
def os_server(request: pytest.FixtureRequest) -> Any:
    """The session's OpenSearch node (or ``OPENSEARCH_URL``)."""
    return _shared(request, "os_server")


@pytest.fixture(scope="session")
def tiny_queue_es(request: pytest.FixtureRequest) -> Any:
    """Elasticsearch with ``thread_pool.write.size=1`` and ``queue_size=1`` (429s under load)
    and ``http.max_content_length=1mb`` (413 for larger requests)."""
    return _shared(request, "tiny_queue_es")


@pytest.fixture(scope="session")
def three_node_es(request: pytest.FixtureRequest) -> Any:
    """A 3-node Elasticsearch cluster on loopback (``.urls`` lists the nodes)."""
    return _shared(request, "three_node_es")


@pytest.fixture(scope="session")
def secured_es(request: pytest.FixtureRequest) -> Any:
    """Elasticsearch with security, TLS on HTTP (``.ca_file``), ``.username``/``.password``."""
    return _shared(request, "secured_es")


@pytest.fixture(scope="session")
def kerberos_es(request: pytest.FixtureRequest) -> Any:
    """Elasticsearch with TLS, a user and a Kerberos realm backed by its own KDC (``.kdc``).

    No role mapping is made here: a test maps ``kdc.client_principal`` to the roles it wants
    (``kerberos_es.map_principal(principal, roles)``)."""
    return _shared(request, "kerberos_es")


@pytest.fixture(scope="session")
def secured_os(request: pytest.FixtureRequest) -> Any:
    """OpenSearch 2.19.4 with its security plugin: TLS on HTTP and transport with the suite's
    CA (``.ca_file``), Basic auth, admin ``.username``/``.password`` (``all_access``), and the
    least-privilege writer ``nodes.OS_WRITER_USERNAME``/``OS_WRITER_PASSWORD`` (may only write
    to ``OS_WRITER_INDEX_PATTERN``; see scripts/nodes.py)."""
    return _shared(request, "secured_os")


@pytest.fixture(scope="session")
def es_client(es_server: Any) -> Iterator[Any]:
    """``elasticsearch.Elasticsearch`` for ``es_server`` (session-wide)."""
    client = es_client_for(es_server)
    yield client
    client.close()


@pytest.fixture(scope="session")
def os_client(os_server: Any) -> Iterator[Any]:
    """``opensearchpy.OpenSearch`` for ``os_server`` (session-wide)."""
    from opensearchpy import OpenSearch

    kwargs: dict[str, Any] = {"timeout": 30}
    if os_server.auth:
        kwargs["http_auth"] = os_server.auth
    if os_server.ca_file:
        kwargs.update(use_ssl=True, verify_certs=True, ca_certs=os_server.ca_file)
    client = OpenSearch(hosts=[os_server.url], **kwargs)
    yield client
    client.close()


class NodeFactory:
    """Starts extra clusters for one session; every one is stopped when the session ends."""

    def __init__(self, pool: Any, config: pytest.Config) -> None:
        self._pool = pool
        self._config = config

    def start(
        self,
        kind: str = "elasticsearch",
        nodes: int = 1,
        tiny_queue: bool = False,
        secured: bool = False,
        major: int | None = None,
    ) -> Any:
        """Start a new cluster and wait until healthy; returns its NodeHandle.

        Skips (or fails, when servers are required) the calling test if it cannot start.
        """
        spec = servers.Spec(
            kind=kind, major=major, nodes=nodes, tiny_queue=tiny_queue, secured=secured
        )
        try:
            return self._pool.start(spec)
        except servers.NodesError as err:
            server_unavailable(self._config, str(err))


@pytest.fixture(scope="session")
def node_factory(server_pool: Any, pytestconfig: pytest.Config) -> NodeFactory:
    """Start clusters of your own (to kill, freeze or restart); see the module docstring."""
    return NodeFactory(server_pool, pytestconfig)


README = Path(__file__).resolve().parents[2] / "README.rst"
WRITER_ROLE = "ecs_metrics_writer"


def readme_writer_role(readme: Path = README) -> dict[str, Any]:
    """The body of ``PUT _security/role/ecs_metrics_writer`` as README.rst shows it: the
    indented JSON that follows that line, so that the role tested is the role documented."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    marker = f"PUT _security/role/{WRITER_ROLE}"
    start = next(i for i, line in enumerate(lines) if line.strip() == marker)
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line)
    role: dict[str, Any] = json.loads("\n".join(body))
    return role


@pytest.fixture(scope="session")
def writer_role() -> dict[str, Any]:
    """README's least-privilege writer role (``PUT _security/role/ecs_metrics_writer`` body);
    its index pattern is ``python_metrics-*``."""
    return readme_writer_role()
