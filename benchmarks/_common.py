"""Shared pieces of the benchmark scripts.

Standard library only at import time: the peer drivers import this module from
their own virtual environments, where neither orjson nor ``ecs_metrics_handler``
is installed.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENVS_DIR = BENCH_DIR / ".venvs"

#: The message and payload every benchmark logs; the same literal in every variant.
MESSAGE = "db query"
METRIC_NAME = "db.query"


def emit_metrics(logger: logging.Logger, n: int, start: int = 0) -> None:
    """Log ``n`` metrics the way an application does (the workload of every variant)."""
    info = logger.info
    for i in range(start, start + n):
        info(
            MESSAGE, extra={"metric": {"name": METRIC_NAME, "value": i % 1000 * 0.5, "unit": "ms"}}
        )


def bench_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A fresh, non-propagating INFO logger with exactly one handler."""
    logger = logging.getLogger(name)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


def handler_options(**base: Any) -> dict[str, Any]:
    """Keyword arguments for ``ElasticECSHandler``: ``base`` plus ``$BENCH_HANDLER_OPTS`` (JSON).

    The smoke run uses the variable to shorten the retry schedule; full runs leave
    every other option at its default.
    """
    extra = os.environ.get("BENCH_HANDLER_OPTS")
    return {**base, **(json.loads(extra) if extra else {})}


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[k])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg": [round(x, 2) for x in load],
        "compiled": list(_compiled_modules()),
    }


def _compiled_modules() -> tuple[str, ...]:
    """The modules of the handler under test that run compiled (``()``: pure Python)."""
    try:
        from ecs_metrics_handler import COMPILED_MODULES
    except ImportError:  # an older tree (before/after comparisons)
        return ()
    return COMPILED_MODULES


# --------------------------------------------------------------------------- processes


def run_json_child(cmd: Sequence[str], *, timeout: float, env: dict[str, str] | None = None) -> Any:
    """Run a child process and return the JSON document on its last stdout line.

    Raises ``RuntimeError`` with the child's stderr when it fails.
    """
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(REPO_ROOT),
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"child {' '.join(cmd)!r} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}"
        )
    return json.loads(lines[-1])


def emit_json(obj: Any) -> None:
    """The child side of ``run_json_child``."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def venv_python(name: str) -> Path:
    return VENVS_DIR / name / "bin" / "python"


def ensure_venv(name: str, requirements: Path, *, quiet: bool = True) -> Path:
    """Create ``benchmarks/.venvs/NAME`` from a requirements file (once); return its python.

    A ``.installed`` marker holding the requirements' text makes later calls free;
    editing the requirements file reinstalls.
    """
    py = venv_python(name)
    marker = VENVS_DIR / name / ".installed"
    wanted = requirements.read_text()
    if py.exists() and marker.exists() and marker.read_text() == wanted:
        return py
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENVS_DIR / name)], check=True)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    marker.write_text(wanted)
    return py


def closed_port() -> int:
    """A local TCP port with nothing listening on it (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def bulk_endpoint() -> Iterator[str]:
    """Start ``bulk_endpoint.py`` in its own process; yield its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "bulk_endpoint.py"), "--port", "0", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"bulk endpoint did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- HTTP admin


def http_json(
    base: str, method: str, path: str, body: Any = None, *, timeout: float = 30.0
) -> tuple[int, Any]:
    """A small stdlib HTTP call for setup and checks (never on a measured path)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def endpoint_docs(base: str, prefix: str) -> int:
    """Documents the local bulk endpoint acknowledged for indices starting with ``prefix``."""
    _, stats = http_json(base, "GET", "/_bench/stats")
    return sum(n for idx, n in stats["by_index"].items() if idx.startswith(prefix))


def es_count(base: str, prefix: str) -> int:
    """Documents in a real node's indices ``prefix*`` after a refresh."""
    http_json(base, "POST", f"/{prefix}*/_refresh?ignore_unavailable=true&allow_no_indices=true")
    status, body = http_json(
        base, "GET", f"/{prefix}*/_count?ignore_unavailable=true&allow_no_indices=true"
    )
    if status != 200:
        raise RuntimeError(f"_count failed: {status} {body}")
    return int(body["count"])


def es_delete(base: str, prefix: str) -> None:
    http_json(base, "DELETE", f"/{prefix}*?ignore_unavailable=true&allow_no_indices=true")


def is_endpoint(base: str) -> bool:
    status, body = http_json(base, "GET", "/_bench/stats", timeout=5)
    return status == 200 and isinstance(body, dict) and "by_index" in body


def delivered(base: str, prefix: str) -> int:
    return endpoint_docs(base, prefix) if is_endpoint(base) else es_count(base, prefix)


def unique_prefix(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- real node


ES_CLUSTER_NAME = "bench-es9"


def find_es_url(*, start: bool = True) -> str | None:
    """A real Elasticsearch 9.x node for the benchmarks, or None.

    ``ELASTICSEARCH_URL`` wins when set and answering. Otherwise
    ``scripts/nodes.py start --name bench-es9`` (a single plain node of the pinned
    9.x version, reused when already running) prints its URL. ``stop_es`` stops it.
    """
    env = os.environ.get("ELASTICSEARCH_URL")
    if env and _es_alive(env):
        return env.rstrip("/")
    nodes = REPO_ROOT / "scripts" / "nodes.py"
    if not (start and nodes.exists()):
        return None
    try:
        proc = subprocess.run(
            [sys.executable, str(nodes), "start", "--name", ES_CLUSTER_NAME],
            capture_output=True,
            text=True,
            timeout=400,
            cwd=str(REPO_ROOT),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    url = _first_url(proc.stdout)
    if proc.returncode == 0 and url and _es_alive(url):
        return url
    sys.stderr.write(f"scripts/nodes.py start failed ({proc.returncode}):\n{proc.stderr[-2000:]}\n")
    return None


def stop_es() -> None:
    """Stop the benchmarks' own node (``bench-es9``), keeping its data folder."""
    nodes = REPO_ROOT / "scripts" / "nodes.py"
    if nodes.exists() and not os.environ.get("ELASTICSEARCH_URL"):
        subprocess.run(
            [sys.executable, str(nodes), "stop", ES_CLUSTER_NAME],
            capture_output=True,
            timeout=120,
            cwd=str(REPO_ROOT),
            check=False,
        )


def _first_url(text: str) -> str | None:
    for raw in text.replace(",", " ").split():
        token = raw.strip("\"'()[]{}<>")
        if token.startswith(("http://", "https://")):
            return token.rstrip("/")
    return None


def _es_alive(url: str) -> bool:
    try:
        status, _ = http_json(url, "GET", "/_cluster/health?timeout=2s", timeout=5)
    except (OSError, ValueError):
        return False
    return status == 200


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
