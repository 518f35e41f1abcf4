"""Deploy specs for ONNX Runtime and, separately, TensorRT; `deploy_<action>_spec.yaml` is the one this machine
can run, and every deploy file says what it runs, what to run first and how to switch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo.promotion import promote
from hpo.promotion import specs as handoff
from skillkit.spec import load_spec
from tests.tracking.synthetic_sweep import default_trials, write_sweep

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("runtime", ["onnxruntime", "tensorrt"])
def test_the_default_deploy_specs_are_the_runtime_this_machine_has(tmp_path, monkeypatch, runtime):
    monkeypatch.setattr(handoff, "deploy_runtime", lambda: runtime)
    sweep_dir = write_sweep(tmp_path, default_trials(), tracking={"enabled": False}, num_classes=7)
    promote(sweep_dir, evaluate=False)
    best = sweep_dir / "best"
    onnx, engine = str(best / "mask2former.onnx"), str(best / "deploy" / "mask2former.engine")
    for action in ("evaluate", "inference"):
        ort = yaml.safe_load((best / f"deploy_{action}_onnxruntime_spec.yaml").read_text())
        trt = yaml.safe_load((best / f"deploy_{action}_tensorrt_spec.yaml").read_text())
        assert ort[action]["trt_engine"] == onnx and trt[action]["trt_engine"] == engine
        assert ort["results_dir"] != trt["results_dir"]
        default_text = (best / f"deploy_{action}_spec.yaml").read_text()
        assert yaml.safe_load(default_text) == (ort if runtime == "onnxruntime" else trt)
        load_spec(best / f"deploy_{action}_spec.yaml", action=action, skill_dir=REPO_ROOT)
        header = [line for line in default_text.splitlines() if line.startswith("#")]
        assert f"# First: mask2former export -e {best / 'export_spec.yaml'}" in header
        if runtime == "onnxruntime":
            assert header[0].startswith(f"# The {action} this machine can run (no TensorRT here: ONNX Runtime)")
            assert any(f"deploy_{action}_tensorrt_spec.yaml" in line and "For TensorRT instead" in line for line in header)
        else:
            assert any("gen_trt_engine -e" in line for line in header)
            assert any(f"Without TensorRT: mask2former {action} -e {best / f'deploy_{action}_onnxruntime_spec.yaml'}"
                       in line for line in header)


def test_without_tensorrt_the_machine_runs_onnxruntime(monkeypatch):
    monkeypatch.setattr(handoff.importlib.util, "find_spec", lambda name: None)
    assert handoff.deploy_runtime() == "onnxruntime"
