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


def test_backbone_choice_measures_efficientvit_against_swin(repo_root):
    """`--backbone swin --backbone efficientvit`: each spec measured (in-process here, to stay fast), and the
    efficientvit / swin ratios computed from the two rows."""
    import argparse
    import importlib.util

    loader = importlib.util.spec_from_file_location("train_throughput", repo_root / "benchmarks" / "train_throughput.py")
    bench = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(bench)
    args = argparse.Namespace(quick=True, spec=None, override=None, efficientvit_name="b0")
    options = {"device": "cpu", "resolution": 64, "batch_size": 2, "steps": 1, "warmup": 0, "threads": 0,
               "precision": "fp32"}
    rows = []
    for backbone in ("swin", "efficientvit"):
        spec = bench._spec(args, backbone)
        rows.append({**bench._measure_inner("ours", spec, options), "precision": "fp32",
                     "backbone": bench._backbone_label(spec)})
    assert [row["backbone"] for row in rows] == ["swin-tiny", "efficientvit-b0"]
    assert 0.6 < rows[1]["params_millions"] < 1.0 and rows[1]["images_per_second"] > 0  # b0 + the tiny head
    (ratio,) = bench._backbone_ratios(rows)
    assert ratio["backbones"] == "efficientvit-b0 / swin-tiny"
    assert ratio["images_per_second_efficientvit_over_swin"] == rows[1]["images_per_second"] / rows[0]["images_per_second"]
