"""`benchmarks/train_throughput.py --quick`: both implementations measured, table printed, JSON written."""

from __future__ import annotations

import json
import subprocess
import sys


def test_train_throughput_quick(repo_root, tmp_path):
    out = tmp_path / "throughput.json"
    proc = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "train_throughput.py"), "--quick", "--threads", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=repo_root,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "images/s" in proc.stdout and "transformers" in proc.stdout
    report = json.loads(out.read_text())
    rows = {row["impl"]: row for row in report["results"]}
    assert set(rows) == {"ours", "transformers"}
    for row in rows.values():
        assert row["images_per_second"] > 0 and row["step_ms"] > 0 and row["peak_memory_mib"] >= 0
    # Same architecture on both sides: parameter counts agree to within a few percent.
    ours, theirs = rows["ours"]["params_millions"], rows["transformers"]["params_millions"]
    assert abs(ours - theirs) / ours < 0.05, (ours, theirs)
    assert report["options"]["resolution"] == 64 and report["options"]["batch_size"] == 2
