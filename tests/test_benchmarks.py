"""The benchmark scripts run and agree with each other; their figures are not asserted here
(speed belongs to benchmarks/, not to timed tests)."""

import re
import subprocess
import sys

import pytest
from helpers import BENCHMARKS_DIR, host_env, load_benchmark_module


@pytest.mark.slow  # about a minute: each shape is measured in fresh processes
def test_loss_speed_runs_and_matches_lightly(tmp_path):
    pytest.importorskip("lightly", reason="the reference needs lightly: pip install .[test]")
    out = tmp_path / "loss.md"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS_DIR / "loss_speed.py"),
            "--shapes",
            "32x16x2,8x64x4",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    differences = [float(x) for x in re.findall(r"\|ours - lightly\| ([0-9.e+-]+)", result.stdout)]
    assert len(differences) == 2 and max(differences) < 1e-4
    table = out.read_text()
    assert "median of 1 repeats" in table and "1 torch threads" in table
    rows = [line for line in table.splitlines() if re.match(r"\| (32|8) \|", line)]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[3]) > 0 and float(cells[-2]) > 0  # our time, ratio to lightly


def test_gpu_check_parts_and_cli(tmp_path):
    gpu_check = load_benchmark_module("gpu_check")
    for smoke in (False, True):
        parts = {part["name"]: part for part in gpu_check.parts(tmp_path, smoke)}
        assert list(parts) == ["loss_speed", "throughput", "step_overhead", "demo_data", "compare"]
        throughput = parts["throughput"]["command"]
        assert throughput[1].endswith("pretrain_throughput.py")
        assert throughput[2:5] == ["--out", str(tmp_path / "throughput"), "--quick"]
        assert ("cuda" in parts["loss_speed"]["command"]) != smoke
    assert sum(part["limit"] for part in gpu_check.parts(tmp_path, False)) < 8 * 60
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS_DIR / "gpu_check.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--smoke" in result.stdout
