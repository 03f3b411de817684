"""The benchmark scripts still run: ``benchmarks/run_all.py --smoke`` (tiny sizes, no figures).

Speed is measured by the scripts themselves, never asserted here; this only proves they work.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_smoke_run_succeeds() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "smoke: all benchmarks ran" in proc.stdout
