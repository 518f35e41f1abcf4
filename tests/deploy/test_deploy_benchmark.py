"""benchmarks/infer_latency.py --quick runs and writes its JSON (PyTorch and ONNX Runtime rows; TensorRT rows
timed or skipped with a reason)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_infer_latency_quick(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("infer_latency", REPO_ROOT / "benchmarks" / "infer_latency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["infer_latency"] = module
    spec.loader.exec_module(module)
    out = tmp_path / "latency.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {row["runtime"]: row for row in report["rows"]}
    assert set(rows) == {"pytorch", "onnxruntime", "tensorrt-fp32", "tensorrt-fp16"}
    for name in ("pytorch", "onnxruntime"):
        assert rows[name]["latency_ms_median"] > 0 and rows[name]["throughput_img_s"] > 0
    for name in ("tensorrt-fp32", "tensorrt-fp16"):
        assert "latency_ms_median" in rows[name] or rows[name]["skipped"]
    assert report["export"]["max_abs_diff"] < 1e-3
    assert report["config"]["height"] == report["config"]["width"] == 64
    assert "Inference latency" in capsys.readouterr().out
