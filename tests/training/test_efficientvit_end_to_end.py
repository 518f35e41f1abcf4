"""A tiny EfficientViT Mask2Former through the CLI: train 1 epoch on synthetic coco_panoptic data (mIoU
recorded; one step in the instance and semantic modes too), evaluate and infer in the three modes, export
to ONNX at 960x544 (verified against ONNX Runtime), evaluate and infer with that ONNX file on the deploy
side (ONNX Runtime), and quantize."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mask2former.cli import main
from mask2former.export.onnx_export import run_onnxruntime
from skillkit.status.writer import read_status
from tests.training.training_support import write_spec_file

pytestmark = pytest.mark.slow

EFFICIENTVIT = {"model.backbone.type": "efficientvit", "model.backbone.efficientvit.name": "b0",
                "train.num_epochs": 1}


@pytest.fixture(scope="module")
def efficientvit_run(panoptic_data, tmp_path_factory) -> tuple[Path, Path]:
    """(spec file, results dir) of one 1-epoch EfficientViT-B0 training run."""
    tmp = tmp_path_factory.mktemp("efficientvit")
    spec = write_spec_file(tmp / "spec.yaml", panoptic_data, tmp / "run", **EFFICIENTVIT)
    assert main(["train", "-e", str(spec)]) == 0
    return spec, tmp / "run"


def test_train_one_epoch_records_miou_and_an_efficientvit_checkpoint(efficientvit_run) -> None:
    _, results = efficientvit_run
    lines = read_status(results)
    assert lines[-1]["status"] == "SUCCESS"
    assert any("mIoU" in (line.get("kpi") or {}) for line in lines)
    checkpoint = torch.load(results / "mask2former_model_latest.pth", map_location="cpu", weights_only=False)
    assert checkpoint["spec"]["model"]["backbone"]["type"] == "efficientvit"
    assert "model.backbone.stages.3.op_list.1.context_module.main.qkv.conv.weight" in checkpoint["state_dict"]


@pytest.mark.parametrize(("mode", "native"), [("instance", "AP"), ("semantic", "mIoU")])
def test_trains_in_the_other_modes(mode: str, native: str, panoptic_data, tmp_path) -> None:
    """One step in each remaining mode (the panoptic run is the fixture): its own targets and metrics."""
    spec = write_spec_file(tmp_path / "spec.yaml", panoptic_data, tmp_path / "run",
                           **{**EFFICIENTVIT, "model.mode": mode, "train.iters_per_epoch": 1})
    assert main(["train", "-e", str(spec)]) == 0
    lines = read_status(tmp_path / "run")
    assert lines[-1]["status"] == "SUCCESS"
    assert any(native in (line.get("kpi") or {}) for line in lines), [line.get("kpi") for line in lines]


def test_evaluate_and_inference_run_from_the_checkpoint(efficientvit_run, tmp_path, capsys) -> None:
    spec, results = efficientvit_run
    checkpoint = results / "mask2former_model_latest.pth"
    for mode, native in (("panoptic", "PQ"), ("instance", "AP"), ("semantic", "mIoU")):
        out = tmp_path / f"eval-{mode}"
        assert main(["evaluate", "-e", str(spec), f"evaluate.checkpoint={checkpoint}", f"model.mode={mode}",
                     f"results_dir={out}"]) == 0, capsys.readouterr().err
        report = json.loads((out / "evaluation.json").read_text())
        assert {"mIoU", native} <= set(report["metrics"]), (mode, sorted(report["metrics"]))
    for mode in ("panoptic", "instance", "semantic"):
        out = tmp_path / f"infer-{mode}"
        assert main(["inference", "-e", str(spec), f"inference.checkpoint={checkpoint}", f"model.mode={mode}",
                     f"results_dir={out}"]) == 0, capsys.readouterr().err
        assert json.loads((out / "inference.json").read_text())["mode"] == mode


@pytest.fixture(scope="module")
def efficientvit_onnx(efficientvit_run, tmp_path_factory) -> tuple[Path, dict]:
    """(ONNX file, export.json) of the run's checkpoint exported at TAO's default 960x544."""
    _, results = efficientvit_run
    tmp = tmp_path_factory.mktemp("efficientvit-export")
    onnx_file = tmp / "model.onnx"
    spec = {"model": {"mode": "panoptic"},
            "export": {"checkpoint": str(results / "mask2former_model_latest.pth"), "onnx_file": str(onnx_file),
                       "batch_size": 1},
            "results_dir": str(tmp / "out")}
    (tmp / "export.yaml").write_text(yaml.safe_dump(spec))
    assert main(["export", "-e", str(tmp / "export.yaml")]) == 0
    return onnx_file, json.loads((tmp / "out" / "export.json").read_text())


def test_export_runs_in_onnx_runtime(efficientvit_onnx) -> None:
    """At TAO's default 960x544 (LiteMLA in its linear form on every attention stage)."""
    onnx_file, report = efficientvit_onnx
    assert report["input"]["shape"] == [1, 3, 544, 960]
    assert report["verification"]["passed"]  # ONNX Runtime matched PyTorch on the export's own check
    outputs = run_onnxruntime(onnx_file, np.random.default_rng(0).random((1, 3, 544, 960), dtype=np.float32))
    assert outputs["prob_masks"].shape[-2:] == (544, 960) and np.isfinite(outputs["prob_masks"]).all()


def test_deploy_evaluate_and_inference_run_the_onnx_file(efficientvit_run, efficientvit_onnx, tmp_path) -> None:
    """`evaluate.trt_engine` / `inference.trt_engine` set to the exported file: the deploy side in ONNX Runtime."""
    spec, _ = efficientvit_run
    onnx_file, _ = efficientvit_onnx
    assert main(["evaluate", "-e", str(spec), f"evaluate.trt_engine={onnx_file}", "evaluate.checkpoint=",
                 f"results_dir={tmp_path / 'eval'}"]) == 0
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["backend"] == "onnxruntime" and report["num_images"] > 0
    assert {"mIoU", "PQ"} <= set(report["metrics"])
    assert read_status(tmp_path / "eval")[-1]["status"] == "SUCCESS"
    assert main(["inference", "-e", str(spec), f"inference.trt_engine={onnx_file}", "inference.checkpoint=",
                 f"results_dir={tmp_path / 'infer'}"]) == 0
    summary = json.loads((tmp_path / "infer" / "inference.json").read_text())
    assert summary["backend"] == "onnxruntime" and summary["num_images"] > 0
    assert any((tmp_path / "infer" / "panoptic").iterdir())


def test_quantize_torchao_int8(efficientvit_run, tmp_path) -> None:
    pytest.importorskip("torchao")
    spec, results = efficientvit_run
    assert main(["quantize", "-e", str(spec), f"quantize.model_path={results / 'mask2former_model_latest.pth'}",
                 "quantize.backend=torchao", "quantize.device=cpu", f"results_dir={tmp_path / 'q'}"]) == 0
    report = json.loads((tmp_path / "q" / "quantize_report.json").read_text())
    assert report["size_ratio"] < 1 and "mIoU" in report["metrics"]["quantized"]


def test_quantize_onnxruntime_static_int8(efficientvit_run, efficientvit_onnx, panoptic_data, tmp_path) -> None:
    """ONNX Runtime static int8 of the 960x544 graph quantizes the backbone's convolutions (torchao's weight-only
    int8 takes nn.Linear layers only, and EfficientViT has none). No size assertion: in this tiny model the
    folded 960x544 constants of the head outweigh its weights, so the int8 file is not smaller."""
    import onnx
    from onnx import numpy_helper

    spec, _ = efficientvit_run
    onnx_file, _ = efficientvit_onnx
    assert main(["quantize", "-e", str(spec), f"quantize.model_path={onnx_file}", "quantize.backend=onnxruntime",
                 "quantize.mode=static_ptq", "quantize.device=cpu", f"results_dir={tmp_path / 'q'}",
                 f"dataset.quant_calibration_dataset.images_dir={panoptic_data / 'train' / 'images.tar.gz'}"]) == 0
    report = json.loads((tmp_path / "q" / "quantize_report.json").read_text())
    assert "mIoU" in report["metrics"]["quantized"] and report["quantization"]["quantized_nodes"] > 50
    graph = onnx.load(report["quantized_model"]).graph
    int8 = {t.name for t in graph.initializer if numpy_helper.to_array(t).dtype.name == "int8"}
    dequantized_int8 = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8}
    backbone_convs = [n for n in graph.node if n.op_type == "Conv" and "/backbone/" in n.name]
    assert len(backbone_convs) > 40  # b0: stem, MBConvs, LiteMLA qkv/aggregation/proj
    assert all(n.input[1] in dequantized_int8 for n in backbone_convs), "a backbone conv kept float weights"
