"""`benchmarks/engine_overhead.py` runs in its tiny form and reports every contender."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "engine_overhead.py"


def run(tmp_path: Path, contenders: str) -> dict:
    out = tmp_path / "overhead.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--contenders", contenders, "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Engine overhead: 4 trials x 2 epochs" in done.stdout
    return json.loads(out.read_text())


def test_quick_benchmark_without_ray(tmp_path: Path) -> None:
    report = run(tmp_path, "bare-optuna,ours-optuna")
    rows = {row["contender"]: row for row in report["rows"]}
    assert set(rows) == {"floor", "bare-optuna", "ours-optuna"}
    assert report["trainer_floor_s_per_trial"] > 0.1  # two 0.05 s epochs plus a Python start
    for name in ("bare-optuna", "ours-optuna"):
        assert rows[name]["trials_per_minute"] > 0 and rows[name]["overhead_per_trial_s"] is not None


@pytest.mark.slow
def test_quick_benchmark_with_ray(tmp_path: Path) -> None:
    report = run(tmp_path, "bare-optuna,bare-ray,ours-optuna,ours-ray")
    assert [row["contender"] for row in report["rows"]] == ["floor", "bare-optuna", "bare-ray", "ours-optuna", "ours-ray"]
