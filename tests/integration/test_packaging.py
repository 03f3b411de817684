"""The package as users install it: sdist and wheel built without warnings, ``twine check``
clean, and the wheel, installed into a fresh virtual environment outside the source tree,
running the demo and an example against the real node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-3000:]}"
    return output


def _count(es_client: Any, pattern: str) -> int:
    es_client.indices.refresh(index=pattern, ignore_unavailable=True, allow_no_indices=True)
    return int(es_client.count(index=pattern)["count"])


def test_the_built_wheel_installs_alone_and_runs_the_demo_and_an_example(
    es_server: Any, es_client: Any, unique_name: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    dist = tmp_path / "dist"
    build_log = _run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], tmp_path, env
    )
    warnings = [line for line in build_log.splitlines() if re.search(r"warn", line, re.I)]
    assert not warnings, "\n".join(warnings)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], tmp_path)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    import elasticsearch  # the client major must match the node's: install the suite's own

    client = f"elasticsearch=={elasticsearch.__versionstr__}"
    _run([python, "-m", "pip", "install", "-q", str(wheel), client], tmp_path, env, timeout=600)
    where = _run(
        [python, "-c", "import ecs_metrics_handler; print(ecs_metrics_handler.__file__)"], tmp_path
    )
    assert str(venv) in where and str(ROOT) not in where  # the wheel's copy, not the tree

    demo = _run(
        [
            python,
            "-m",
            "ecs_metrics_handler",
            "demo",
            "--hosts",
            es_server.url,
            "--index",
            unique_name,
        ],
        tmp_path,
        env,
    )
    indexed = re.search(r"demo: (\d+) documents indexed", demo)
    assert indexed, demo
    assert _count(es_client, f"{unique_name}-*") == int(indexed.group(1)) > 0
    assert f"report: {unique_name}-* from " in demo  # the demo ends with its report
    assert re.search(r"^db\.query +timer +ms +raw +5 ", demo, re.M), demo

    example_prefix = f"{unique_name}-ex"
    _run(
        [python, str(ROOT / "examples" / "basic.py")],
        tmp_path,
        {**env, "ELASTICSEARCH_URL": es_server.url, "ECSMH_EXAMPLE_INDEX": example_prefix},
    )
    assert _count(es_client, f"{example_prefix}-*") == 4
