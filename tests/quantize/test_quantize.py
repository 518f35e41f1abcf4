"""`mask2former quantize`: torchao weight-only int8 and ONNX Runtime static int8 produce loadable models and a
report of the size and metric change; every settings rule has its error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import onnx
import pytest
import torch

from skillkit.errors import SpecError, UserError
from skillkit.status.writer import read_status
from tests.deploy.deploy_fixtures import (
    SMALL_SIZE,
    exported,
    synthetic_data,
    tiny_checkpoint,
    tiny_spec,
    with_data,
    write_spec,
)

METRICS = {"mIoU", "pixel_acc"}


def _spec(tmp_path: Path, **quantize) -> Path:
    data = synthetic_data()
    spec = with_data(tiny_spec(mode="semantic"), train=data["train"], val=data["val"], size=SMALL_SIZE)
    spec["results_dir"] = str(tmp_path / "out")
    spec["quantize"].update({"device": "cpu", **quantize})
    return write_spec(tmp_path / "quantize.yaml", spec)


def _run(path: Path, *overrides: str) -> int:
    from mask2former.cli import main

    return main(["quantize", "-e", str(path), *overrides])


def test_torchao_weight_only_int8_is_loadable_and_reported(tmp_path: Path) -> None:
    pytest.importorskip("torchao")
    from mask2former.quantize.torchao_backend import load_quantized_model
    from mask2former.training.checkpoint_io import load_model_from_checkpoint

    assert _run(_spec(tmp_path, backend="torchao", model_path=str(tiny_checkpoint()),
                      skip_names=["sem_seg_head.predictor.class_embed"])) == 0
    report = json.loads((tmp_path / "out" / "quantize_report.json").read_text())
    assert report["backend"] == "torchao" and report["size_ratio"] < 0.5
    modules = report["quantization"]["modules"]
    assert "sem_seg_head.predictor.class_embed" not in modules and any(m.startswith("backbone.") for m in modules)
    assert not any(m.endswith("out_proj") for m in modules)  # MultiheadAttention projections stay float
    assert METRICS <= set(report["metrics"]["float"]) and METRICS <= set(report["metrics"]["quantized"])
    assert set(report["metrics"]["change"]) >= METRICS and report["num_images"] == 4
    print("torchao size float/int8 MiB:", report["size_bytes"], "metric change:", report["metrics"]["change"])

    quantized, spec = load_quantized_model(report["quantized_model"])
    float_model, _ = load_model_from_checkpoint(tiny_checkpoint())
    weight = dict(quantized.named_modules())["backbone.layers.0.blocks.0.attn.qkv"].weight
    assert type(weight).__name__ != "Parameter" and "Int8" in type(weight).__name__
    images = torch.rand(2, 3, SMALL_SIZE, SMALL_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want = quantized(images), float_model(images)
    error = (got["pred_logits"] - want["pred_logits"]).abs().max()
    assert 0 < error < 0.5  # quantized (not identical), and close
    last = read_status(tmp_path / "out")[-1]
    assert last["status"] == "SUCCESS" and last["kpi"]["size_ratio"] == pytest.approx(report["size_ratio"])


def test_onnxruntime_static_int8_is_loadable_and_reported(tmp_path: Path) -> None:
    from mask2former.deploy.backends import OnnxRuntimeBackend

    source = exported("semantic").onnx_file
    assert _run(_spec(tmp_path, backend="onnxruntime", mode="static_ptq", model_path=str(source))) == 0
    report = json.loads((tmp_path / "out" / "quantize_report.json").read_text())
    assert report["size_ratio"] < 0.6
    assert report["quantization"]["calibration_images"] == 4 and report["quantization"]["quantized_nodes"] > 10
    graph = onnx.load(report["quantized_model"])
    ops = {node.op_type for node in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "GridSample"} <= ops
    postprocessing = [n for n in graph.graph.node if n.op_type == "QuantizeLinear" and "/model/" not in n.name
                      and not n.input[0].startswith("/model/")]
    assert not [n for n in postprocessing if "MatMul" in n.name]  # exported post-processing stays float
    with OnnxRuntimeBackend(report["quantized_model"]) as backend:
        assert backend.metadata["quantization"]["backend"] == "onnxruntime"
        out = backend.predict(torch.rand(1, 3, SMALL_SIZE, SMALL_SIZE))
        assert torch.isfinite(out["pred_masks"]).all()
    assert METRICS <= set(report["metrics"]["quantized"])
    print("onnxruntime size float/int8 bytes:", report["size_bytes"], "metric change:", report["metrics"]["change"])


@pytest.mark.parametrize("quantize, message", [
    ({"backend": "torchao", "mode": "static_ptq"}, "torchao backend does weight-only"),
    ({"backend": "torchao", "algorithm": "entropy"}, "use algorithm minmax"),
    ({"backend": "onnxruntime", "mode": "weight_only_ptq"}, "set quantize.mode=static_ptq"),
    ({"backend": "onnxruntime", "mode": "static_ptq", "algorithm": "awq_lite"}, "minmax, max"),
    ({"backend": "torchao", "device": "trt"}, "only for quantize.backend=modelopt.onnx"),
    ({"backend": "torchao", "layers": [{"weights": {"dtype": "int8"}}]}, "non-empty 'module_name'"),
    ({"backend": "torchao", "layers": [{"module_name": "Linear", "weights": {"dtype": "fp8_e4m3fn"}}]},
     "not supported here"),
    ({"backend": "torchao", "layers": [{"module_name": "Linear", "bias": {}}]}, "unknown keys"),
    ({"backend": "torchao", "model_path": "model.onnx"}, "quantizes a .pth training checkpoint"),
    ({"backend": "onnxruntime", "mode": "static_ptq", "model_path": "model.pth"}, "quantizes an .onnx file"),
    ({"backend": "torchao", "model_path": ""}, "quantize.model_path is empty"),
    ({"backend": "torchao", "skip_names": ["*"]}, "leave no nn.Linear"),
    ({"backend": "torchao", "backend_kwargs": {"no_such_arg": 1}}, "not arguments of torchao"),
])
def test_quantize_settings_errors(tmp_path: Path, capsys, quantize: dict, message: str) -> None:
    if quantize.get("backend") == "torchao" and ("skip_names" in quantize or "backend_kwargs" in quantize):
        pytest.importorskip("torchao")
    quantize = {"model_path": str(tiny_checkpoint()), **quantize}
    code = _run(_spec(tmp_path, **quantize))
    assert code == SpecError.exit_code
    assert message in capsys.readouterr().err
    assert read_status(tmp_path / "out")[-1]["error_class"] == "spec"


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is not None, reason="ModelOpt is installed here")
@pytest.mark.parametrize("backend", ["modelopt.onnx", "modelopt.pytorch"])
def test_modelopt_without_the_package_points_to_onnxruntime(tmp_path: Path, capsys, backend: str) -> None:
    model_path = str(exported("semantic").onnx_file) if backend == "modelopt.onnx" else str(tiny_checkpoint())
    assert _run(_spec(tmp_path, backend=backend, mode="static_ptq", model_path=model_path)) == UserError.exit_code
    err = capsys.readouterr().err
    assert "nvidia-modelopt" in err and "quantize.backend=onnxruntime" in err


def test_calibration_size_must_match_the_graph(tmp_path: Path, capsys) -> None:
    path = _spec(tmp_path, backend="onnxruntime", mode="static_ptq", model_path=str(exported("semantic").onnx_file))
    assert _run(path, "dataset.test.target_size=[96,96]") == SpecError.exit_code
    assert "calibration must use the graph's size" in capsys.readouterr().err


def test_without_evaluation_data_the_report_has_sizes_only(tmp_path: Path) -> None:
    pytest.importorskip("torchao")
    path = _spec(tmp_path, backend="torchao", model_path=str(tiny_checkpoint()))
    assert _run(path, "dataset.test.panoptic_json=", "dataset.val.panoptic_json=") == 0
    report = json.loads((tmp_path / "out" / "quantize_report.json").read_text())
    assert report["metrics"] is None and report["size_ratio"] < 0.5
    warnings = [line for line in read_status(tmp_path / "out") if line["verbosity"] == "WARNING"]
    assert warnings and "metrics skipped" in warnings[0]["message"]
