"""`python benchmarks/gpu.py --smoke` runs on the CPU and prints its table (CI keeps it working)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_smoke():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    rows = [line.split() for line in lines if line.startswith(("SSA", "CLE", "LNA"))]
    assert [r[0] for r in rows] == ["SSA", "SSA", "CLE(dt=0.05)", "LNA(rtol=1e-4)"]
    assert [int(r[2]) for r in rows] == [100, 1000, 100, 1]
    for r in rows:
        assert float(r[5]) > 0  # a positive, finite rate
    assert any(line.startswith("memory:") for line in lines)
