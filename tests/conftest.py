"""Suite-wide pytest configuration: markers, ``unique_name``, and the test-server pool.

The real Elasticsearch/OpenSearch nodes are started by ``scripts/nodes.py`` through the pool in
``tests/_servers``; the fixtures that hand them to tests live in ``tests/integration/conftest.py``.
Servers that the selected tests need are started in the background as soon as collection ends,
so that they boot while the unit tests run (``ECSMH_PRESTART=0`` turns that off).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import runpy
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

_TESTS = Path(__file__).resolve().parent

# Property tests: a CI run (CI=true) tries the same examples every time, so that whether it
# passes depends on the code alone; a local run draws new ones each time, and
# HYPOTHESIS_PROFILE=explore draws ten times as many.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=1000, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "default")
)


def _load_servers_module() -> Any:
    if "ecsmh_test_servers" in sys.modules:
        return sys.modules["ecsmh_test_servers"]
    spec = importlib.util.spec_from_file_location(
        "ecsmh_test_servers", _TESTS / "_servers" / "__init__.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ecsmh_test_servers"] = module
    spec.loader.exec_module(module)
    return module


servers = _load_servers_module()

POOL_KEY = pytest.StashKey[Any]()

SHARED_SERVERS = servers.SHARED_SERVERS
OPENSEARCH_FIXTURES = {"os_server", "os_client", "secured_os"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-servers",
        action="store_true",
        default=False,
        help="fail (instead of skip) the tests whose Elasticsearch/OpenSearch server cannot be "
        "started; implied by CI=true in the environment",
    )


#: Set by ``scripts/run-tests`` for its run of the compiled build: the suite must then test
#: the compiled modules, never the source tree's pure-Python ones by accident.
EXPECT_COMPILED = os.environ.get("ECSMH_EXPECT_COMPILED", "") == "1"


def _check_the_build_under_test() -> None:
    import ecs_metrics_handler

    if not EXPECT_COMPILED:
        return
    # setup.py's list is the one definition of what the compiled build compiles
    listed = runpy.run_path(str(_TESTS.parent / "setup.py"), run_name="setup_under_test")
    expected = tuple(path.removesuffix(".py").replace("/", ".") for path in listed["COMPILED"])
    where = Path(ecs_metrics_handler.__file__).resolve().parent
    compiled = ecs_metrics_handler.COMPILED_MODULES
    if compiled != expected:
        raise pytest.UsageError(
            f"ECSMH_EXPECT_COMPILED=1 but {where} runs {compiled or 'no'} compiled modules "
            "(install it with ECS_METRICS_HANDLER_COMPILE=1; run pytest, not python -m pytest)"
        )


def pytest_report_header(config: pytest.Config) -> str:
    import ecs_metrics_handler

    compiled = ", ".join(ecs_metrics_handler.COMPILED_MODULES) or "none (pure Python)"
    return f"ecs_metrics_handler: {Path(ecs_metrics_handler.__file__).parent}; compiled: {compiled}"


def pytest_configure(config: pytest.Config) -> None:
    _check_the_build_under_test()
    config.addinivalue_line(
        "markers", "opensearch: needs an OpenSearch node (deselected by ECSMH_SKIP_OPENSEARCH=1)"
    )
    pool = servers.ServerPool()
    config.stash[POOL_KEY] = pool
    _POOLS.append(pool)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _stop_servers_then_die)


_POOLS: list[Any] = []


def _stop_servers_then_die(signum: int, frame: object) -> None:
    """SIGTERM/SIGHUP (a CI timeout, a closed terminal): stop the nodes, then die as asked."""
    for pool in list(_POOLS):
        pool.close()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_unconfigure(config: pytest.Config) -> None:
    pool = config.stash.get(POOL_KEY, None)
    if pool is not None:
        pool.close()


def servers_required(config: pytest.Config) -> bool:
    return bool(servers.servers_required(config.getoption("--require-servers", default=False)))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration_dir = _TESTS / "integration"
    skip_os = os.environ.get("ECSMH_SKIP_OPENSEARCH", "").strip().lower() in servers.TRUTHY
    kept, deselected = [], []
    for item in items:
        path = Path(str(item.path)).resolve()
        if integration_dir in path.parents:
            item.add_marker(pytest.mark.integration)
        fixturenames = set(getattr(item, "fixturenames", ()))
        if fixturenames & OPENSEARCH_FIXTURES:
            item.add_marker(pytest.mark.opensearch)
            if skip_os:
                deselected.append(item)
                continue
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    _prestart(config, items)


def _prestart(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the shared servers the selected tests need, in the order they are first needed."""
    if os.environ.get("ECSMH_PRESTART", "1").strip().lower() not in servers.TRUTHY:
        return
    if config.getoption("collectonly", default=False):
        return
    pool = config.stash[POOL_KEY]
    wanted: dict[str, Any] = {}
    for item in items:
        if item.get_closest_marker("skip"):
            continue
        for name in getattr(item, "fixturenames", ()):
            if name in SHARED_SERVERS:
                key, spec = SHARED_SERVERS[name]
                wanted.setdefault(key, spec)
    for key, spec in wanted.items():
        pool.shared(key, spec)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    pool = config.stash.get(POOL_KEY, None)
    if pool is None or not (pool.starts or pool.problems):
        return
    terminalreporter.section("test servers")
    for rec in pool.starts:
        terminalreporter.write_line(
            f"{rec.label}: healthy in {rec.seconds:.1f} s, RSS {rec.rss_mib:.0f} MiB "
            f"[{rec.name} {rec.url}]"
        )
    required = servers_required(config)
    for reason, detail in pool.problems.items():
        what = "tests FAILED" if required else "tests skipped"
        terminalreporter.write_line(
            f"test server unavailable ({what}): {reason}", red=required, yellow=not required
        )
        if detail and required:
            terminalreporter.write_line(detail)


@pytest.fixture(scope="session")
def server_pool(pytestconfig: pytest.Config) -> Any:
    """The session's ServerPool (tests/_servers); stopped at the end of the session."""
    pool = pytestconfig.stash[POOL_KEY]
    yield pool
    pool.close()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A lowercase, index-safe name unique to this test, e.g. ``t-test-foo-1a2b3c4d``."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"t-{base or 'test'}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A fresh logger at INFO that does not propagate; its handlers are closed afterwards."""
    log = logging.getLogger(f"test.{uuid.uuid4().hex[:10]}")
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
